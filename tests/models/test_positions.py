"""Beat-aware positions: running time, bars, metre changes, and continuing from a saved state."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.models.positions import BeatEmbedding, BeatState, beat_features
from aurl.tokens import vocab
from models.builders import real_table, synthetic_ids

TABLES = {k: v for k, v in real_table().tensors().items() if k in ("time_advance", "bar_start", "bar_steps")}


def features(ids: list[int], state: BeatState | None = None):
    x = torch.tensor([ids])
    return beat_features(x, TABLES, state or BeatState.start(1, 32))


def test_time_bar_and_position_follow_the_tokens() -> None:
    names = ["BOS", "Bar", "TimeSig_3/4", "NoteOn_60", "TimeShift_8", "TimeShift_16", "Bar", "TimeShift_4",
             "Bar", "TimeSig_2/4"]  # fmt: skip
    ids = [vocab.token_id(name) for name in names]
    f = features(ids)
    assert f.time[0].tolist() == [0, 0, 0, 0, 8, 24, 24, 28, 28, 28]
    assert f.bar[0].tolist() == [0, 1, 1, 1, 1, 1, 2, 2, 3, 3]
    assert f.pos_in_bar[0].tolist() == [0, 0, 0, 0, 8, 24, 0, 4, 0, 0]
    assert f.bar_len[0].tolist() == [32, 32, 24, 24, 24, 24, 24, 24, 24, 16]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 100), st.data())
def test_continuing_from_a_state_equals_one_pass(n_bars: int, seed: int, data: st.DataObject) -> None:
    ids = torch.as_tensor(synthetic_ids(n_bars, seed))[None]
    cut = data.draw(st.integers(1, ids.shape[1] - 1))
    whole = beat_features(ids, TABLES, BeatState.start(1, 32))
    first = beat_features(ids[:, :cut], TABLES, BeatState.start(1, 32))
    rest = beat_features(ids[:, cut:], TABLES, first.last())
    for name in ("time", "bar", "pos_in_bar", "bar_len"):
        joined = torch.cat([getattr(first, name), getattr(rest, name)], 1)
        assert torch.equal(joined, getattr(whole, name)), name


def test_real_chorale_never_leaves_its_bar(chorale_ids) -> None:
    f = beat_features(torch.as_tensor(chorale_ids)[None], TABLES, BeatState.start(1, 32))
    assert int(f.bar.max()) > 4
    assert bool((f.pos_in_bar <= f.bar_len).all())


def test_beat_embedding_tells_positions_apart() -> None:
    emb = BeatEmbedding(16, vocab.STEPS_PER_BEAT, bar_period=4)
    f = features([vocab.BOS, vocab.BAR, vocab.token_id("TimeShift_4"), vocab.token_id("TimeShift_8")])
    out = emb(f)[0]
    assert out.shape == (4, 16)
    assert not torch.allclose(out[1], out[2]) and not torch.allclose(out[2], out[3])
