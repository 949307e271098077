import numpy as np
import pytest

from analyze.music import build
from aurl.analyze.meter import (
    bar_starts,
    beat_starts,
    estimate_metre,
    estimate_tempo_bpm,
    file_tempo_bpm,
    segment_index,
    ticks_to_seconds,
)
from aurl.midi.score import TempoMap, TimeSignatureMap


def test_bars_and_beats_follow_time_signature_changes() -> None:
    # 2 bars of 4/4, then 6/8 from beat 8 (bars of 3 quarters, beats of a dotted quarter)
    ts = TimeSignatureMap([0, 8 * 480], [4, 6], [4, 8])
    score = build([(60, 0, 14)], time_signatures=ts)
    assert (bar_starts(score) / 480).tolist() == [0, 4, 8, 11]
    assert (beat_starts(score) / 480).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9.5, 11, 12.5]


def test_without_a_time_signature_the_piece_is_in_four_four() -> None:
    score = build([(60, 0, 9)])
    assert (bar_starts(score) / 480).tolist() == [0, 4, 8]
    assert segment_index(bar_starts(score), np.array([0, 479 * 4, 4 * 480, 9 * 480])).tolist() == [0, 0, 1, 2]


def test_seconds_and_the_file_tempo() -> None:
    tempos = TempoMap([0, 4 * 480], [120.0, 60.0])
    score = build([(60, 0, 8)], tempos=tempos)
    assert ticks_to_seconds(score, np.array([0, 4 * 480, 6 * 480])).tolist() == [0.0, 2.0, 4.0]
    assert file_tempo_bpm(score) in (120.0, 60.0)
    assert file_tempo_bpm(build([(60, 0, 8)], tempos=TempoMap([0, 6 * 480], [90.0, 150.0]))) == 90.0
    assert file_tempo_bpm(build([(60, 0, 8)])) == 120.0


@pytest.mark.parametrize("bpm", [72.0, 100.0, 140.0])
def test_tempo_is_heard_in_a_pulse(bpm: float) -> None:
    rng = np.random.default_rng(int(bpm))
    beats = np.arange(64)
    notes = [(60 + int(rng.integers(0, 12)), float(b), 1.0) for b in beats]
    notes += [(48, float(b), 1.0) for b in beats[::2]]  # accents every other beat
    score = build(notes, tempos=TempoMap([0], [bpm]))
    estimate = estimate_tempo_bpm(score)
    assert estimate is not None and abs(estimate / bpm - 1) < 0.03


def test_too_few_onsets_give_no_tempo_or_metre() -> None:
    score = build([(60, 0, 1), (62, 1, 1)])
    assert estimate_tempo_bpm(score) is None
    assert estimate_metre(score) is None


def test_a_waltz_with_a_pickup() -> None:
    # one-beat pickup, then bars of 3/4: a long bass note on each downbeat, two short chords after
    notes = [(67, 0, 1)]
    for bar in range(8):
        downbeat = 1 + 3 * bar
        notes += [(43, downbeat, 3), (67, downbeat, 1), (71, downbeat + 1, 1), (74, downbeat + 2, 0.5)]
    metre = estimate_metre(build(notes))
    assert metre is not None
    assert (metre.beats_per_bar, metre.first_downbeat_beats) == (3, 1)
    assert 0 < metre.confidence <= 1
