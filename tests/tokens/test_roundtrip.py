import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from aurl.errors import TokenizeError
from aurl.midi.score import Score, TempoMap, TimeSignatureMap
from aurl.tokens import decode, encode, is_valid, quantize, token_id, token_name
from aurl.tokens.grammar import count_invalid
from strategies import scores, token_lists


def names(ids):
    return [token_name(int(i)) for i in ids]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scores())
def test_decode_of_encode_is_the_quantised_score(score):
    ids = encode(score)
    assert ids.dtype == np.uint16
    assert decode(ids) == quantize(score)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scores())
def test_encoded_sequences_are_grammatical_and_reencode_identically(score):
    ids = encode(score)
    assert is_valid(ids)
    assert np.array_equal(encode(decode(ids)), ids)


@settings(max_examples=100, deadline=None)
@given(scores())
def test_quantize_is_idempotent(score):
    assert quantize(quantize(score)) == quantize(score)


@settings(max_examples=300, deadline=None)
@given(token_lists)
def test_decode_is_total_and_counts_what_it_skips(ids):
    score = decode(ids)
    assert isinstance(score, Score)
    skipped = count_invalid(ids)
    if skipped:
        assert score.repairs[0] == f"skipped {skipped} tokens that break the grammar"
    assert (score.duration > 0).all()


def test_voices_sharing_a_pitch_keep_their_own_durations():
    # Alto and tenor sound C4 together; the alto lets go first. A stream keyed by pitch alone swaps them.
    score = Score.from_notes(
        480, {"pitch": [60, 60], "onset": [0, 0], "duration": [480, 960], "track": [1, 2]}
    )
    back = decode(encode(score))
    assert back.track.tolist() == [1, 2] and back.duration.tolist() == [480, 960]


def test_onsets_do_not_drift_across_metre_changes():
    # 3/8 then 5/4 then 7/8: onsets are absolute grid steps, bar lines follow each metre.
    tpq = 480
    score = Score.from_notes(
        tpq,
        {"pitch": [60, 62, 64, 65], "onset": [0, 720, 720 + 2400, 720 + 2400 + 1680], "duration": [240] * 4},
        time_signatures=TimeSignatureMap([0, 720, 3120], [3, 5, 7], [8, 4, 8]),
    )
    back = decode(encode(score))
    assert back.onset.tolist() == [0, 720, 3120, 4800]
    assert names(encode(score)).count("Bar") == 4  # one bar of 3/8, one of 5/4, two of 7/8 reached


def test_mid_bar_metre_change_starts_a_bar():
    score = Score.from_notes(
        480, {"pitch": [60, 62], "onset": [0, 600], "duration": [240, 240]},
        time_signatures=TimeSignatureMap([0, 600], [4, 3], [4, 4]),
    )  # fmt: skip
    tokens = names(encode(score))
    after_first_note = tokens[tokens.index("NoteOff_60") + 1 :]
    assert after_first_note[:3] == ["TimeShift_6", "Bar", "TimeSig_3/4"]  # at step 10, mid-way through 4/4
    assert decode(encode(score)) == quantize(score)


def test_the_header_and_ending_of_a_piece():
    score = Score.from_notes(
        480, {"pitch": [60], "onset": [0], "duration": [480]}, tempos=TempoMap([0], [90])
    )
    assert names(encode(score)) == [
        "BOS", "Bar", "TimeSig_4/4", "Tempo_89.9", "Program_0", "Velocity_62", "NoteOn_60",
        "TimeShift_8", "NoteOff_60", "EOS",
    ]  # fmt: skip
    assert names(encode(Score.empty())) == ["BOS", "Bar", "TimeSig_4/4", "Tempo_120.0", "EOS"]


def test_long_rests_use_the_largest_shifts_then_the_rest():
    score = Score.from_notes(
        8,
        {"pitch": [60, 60], "onset": [0, 300], "duration": [1, 1]},
        time_signatures=TimeSignatureMap([0], [16], [2]),
    )  # a 16/2 bar holds 256 steps, more than one shift can say
    tokens = names(encode(score))
    assert tokens[7:13] == [
        "TimeShift_1",
        "NoteOff_60",
        "TimeShift_128",
        "TimeShift_127",
        "Bar",
        "TimeShift_44",
    ]
    assert decode(encode(score)) == quantize(score)


def test_drums_and_programs_survive():
    score = Score.from_notes(
        480,
        {"pitch": [36, 38, 60], "onset": [0, 240, 0], "duration": [120, 120, 960], "program": [5, 5, 33],
         "is_drum": [True, True, False], "track": [0, 0, 1]},
    )  # fmt: skip
    back = decode(encode(score))
    assert back.is_drum.tolist() == [True, False, True]
    assert back.program.tolist() == [0, 33, 0]


def test_too_long_score_is_refused_clearly():
    score = Score.from_notes(1, {"pitch": [60], "onset": [2**20], "duration": [1]})
    with pytest.raises(TokenizeError, match="outside 0..524288"):
        encode(score)


def test_an_unfinished_sequence_closes_its_notes():
    ids = [
        token_id(n)
        for n in ["BOS", "Bar", "TimeSig_4/4", "Tempo_120.0", "Program_0", "Velocity_62", "NoteOn_60"]
    ]
    score = decode(ids)
    assert score.n_notes == 1 and score.duration[0] == 60
    assert score.repairs == ("closed 1 notes still sounding where the tokens end",)


def test_chorales_round_trip_with_every_note(chorale_dir):
    from aurl.midi import read_midi

    for path in sorted(chorale_dir.glob("*.mid")):
        score = read_midi(path)
        ids = encode(score)
        back = decode(ids)
        assert back == quantize(score), path.name
        assert np.array_equal(encode(back), ids), path.name
        voices = {(t, p, o) for t, p, o in zip(score.track, score.pitch, score.onset, strict=True)}
        assert back.n_notes == len(voices), path.name  # only exact unison doublings within a voice merge
