import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.tokens import decode, encode, vocab
from aurl.tokens.grammar import GrammarState, count_invalid, follow_matrix, is_valid, model_tables


def _closing_token(state: GrammarState) -> int:
    """A token that brings a walk towards its end: end notes, move time on, and finish."""
    mask = state.mask()
    sounding_tracks = [vocab.TRACK.start + t for t in range(vocab.N_TRACKS) if state.n_sounding[t]]
    if state.total_sounding == 0 and not mask[vocab.EOS]:
        # A piece ends on a note-off, so a silent walk plays one short note first.
        policy = [vocab.PROGRAM.start, vocab.VELOCITY.start, *range(vocab.NOTE_ON.start, vocab.NOTE_ON.stop)]
    else:
        policy = [vocab.EOS, *range(vocab.NOTE_OFF.start, vocab.NOTE_OFF.stop), *sounding_tracks]
    policy.append(vocab.TIME_SHIFT.start)
    return next((t for t in policy if mask[t]), int(np.flatnonzero(mask)[0]))


def _finish(state: GrammarState, ids: list[int]) -> None:
    while not state.ended:
        token = _closing_token(state)
        assert state.advance(token)
        ids.append(token)


@st.composite
def grammatical_walks(draw, max_len: int = 120):
    """Complete grammatical sequences: random allowed tokens, then a closing policy."""
    state, ids = GrammarState(), []
    for _ in range(draw(st.integers(0, max_len))):
        allowed = np.flatnonzero(state.mask())
        token = int(allowed[draw(st.integers(0, len(allowed) - 1))])
        if token == vocab.PAD:
            break
        assert state.advance(token)
        ids.append(token)
    _finish(state, ids)
    return ids


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mask_agrees_with_allows_along_random_walks(data):
    state = GrammarState()
    for _ in range(data.draw(st.integers(1, 60))):
        mask = state.mask()
        assert mask.any(), "the grammar must never leave a sequence without a next token"
        assert np.array_equal(mask, [state.allows(t) for t in range(vocab.VOCAB_SIZE)])
        allowed = np.flatnonzero(mask)
        state.advance(int(allowed[data.draw(st.integers(0, len(allowed) - 1))]))


@settings(max_examples=300, deadline=None)
@given(grammatical_walks())
def test_every_grammatical_sequence_reencodes_to_itself(ids):
    assert is_valid(ids)
    assert encode(decode(ids)).tolist() == ids


@settings(max_examples=100, deadline=None)
@given(grammatical_walks())
def test_the_first_order_table_admits_every_grammatical_pair(ids):
    follow = follow_matrix()
    padded = [*ids, vocab.PAD]
    assert all(follow[a, b] for a, b in zip(padded[:-1], padded[1:], strict=True))


def test_the_first_order_table_rules_out_what_never_follows():
    follow = follow_matrix()
    shift_1, shift_128 = vocab.TIME_SHIFT.start, vocab.TIME_SHIFT.stop - 1
    assert follow[shift_128, shift_1] and not follow[shift_1, shift_1]
    assert not follow[vocab.VELOCITY.start, vocab.NOTE_OFF.start] and not follow[vocab.BOS, vocab.EOS]
    assert model_tables()["forbidden"][[vocab.PAD, vocab.BOS, vocab.MASK]].all()


def test_invalid_tokens_are_counted_and_skipped():
    ids = encode(decode([])).tolist()  # an empty piece: BOS, header, EOS
    assert count_invalid(ids) == 0
    broken = ids[:4] + [vocab.NOTE_OFF.start + 60, 9999, vocab.PAD] + ids[4:]
    assert count_invalid(broken) == 3
    assert not is_valid(broken)
    assert decode(broken).repairs == ("skipped 3 tokens that break the grammar",)


def test_time_shift_may_not_cross_a_bar_line():
    state = GrammarState()
    for token in encode(decode([]))[:4]:  # BOS Bar TimeSig_4/4 Tempo_120
        state.advance(int(token))
    shifts = state.mask()[vocab.TIME_SHIFT.start : vocab.TIME_SHIFT.stop]
    assert shifts.sum() == 32 and shifts[:32].all()  # a 4/4 bar is 32 steps
    state.advance(vocab.TIME_SHIFT.start + 31)
    assert np.flatnonzero(state.mask()).tolist() == [vocab.BAR]
