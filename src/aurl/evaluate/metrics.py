"""Per-piece metrics: pure, vectorised functions of a Score.

The first group follows MusPy's published definitions and names (muspy.metrics, v0.5) and gives
MusPy's values on the same notes at the same resolution; times are the score's own ticks, so call
`to_resolution` first to measure on a grid (aurl measures on the tokenizer's 32nd-note grid, 8 steps
per beat: `piece_metrics`). Where MusPy's code and its docstring disagree, the code wins, because
agreeing with published numbers is the point:

- `empty_beat_rate`: a note covers the beats from its onset's to its end's, both included, so a
  note ending exactly on a beat line also fills the next beat.
- `polyphony_rate`: counts time steps with more than `threshold` pitches (default 2, i.e. three or
  more), not "multiple".
- `pitch_range` of a piece whose only notes are drums is 0 (MusPy returns -127 there).

Drums are ignored by the pitch metrics and by polyphony; `empty_beat_rate` and
`groove_consistency` count every note, drums included, like MusPy. A metric without the notes it
needs returns NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Final, Literal

import numpy as np

from aurl.analyze.melody import interval_histogram as melodic_intervals
from aurl.analyze.melody import skyline
from aurl.analyze.meter import ticks_to_seconds, time_signature_segments
from aurl.errors import UsageError
from aurl.midi.score import KeySignatureMap, Score, TempoMap, TimeSignatureMap

GRID_STEPS_PER_BEAT: Final = 8  # the tokenizer's 32nd-note grid
MAJOR_SCALE: Final = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)
MINOR_SCALE: Final = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)  # natural minor
ALL_SCALES: Final = np.stack(
    [np.roll(MAJOR_SCALE, r) for r in range(12)] + [np.roll(MINOR_SCALE, r) for r in range(12)]
).astype(np.int64)  # (24, 12): the 12 major then the 12 minor scales
# Duration classes in beats, 32nd note to two whole notes; a note counts in the nearest (log scale).
DURATION_BINS_BEATS: Final = (0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def to_resolution(score: Score, ticks_per_beat: int) -> Score:
    """The score with every time rescaled to `ticks_per_beat`, rounded half to even.

    Onsets and offsets are rounded separately (a note may shrink to zero length), exactly as
    MusPy's `Music.adjust_resolution(target)` does, so metrics on the result match MusPy's.
    """
    if ticks_per_beat <= 0:
        raise UsageError(f"resolution {ticks_per_beat} ticks per beat is not positive; use e.g. 8")
    factor = ticks_per_beat / score.ticks_per_beat

    def scale(ticks: np.ndarray) -> np.ndarray:
        return np.rint(ticks * factor).astype(np.int64)

    onset = scale(score.onset)
    ts, ks, tempos = score.time_signatures, score.key_signatures, score.tempos
    return replace(
        score,
        ticks_per_beat=ticks_per_beat,
        onset=onset,
        duration=scale(score.offset) - onset,
        tempos=TempoMap(scale(tempos.ticks), tempos.bpm),
        time_signatures=TimeSignatureMap(scale(ts.ticks), ts.numerator, ts.denominator),
        key_signatures=KeySignatureMap(scale(ks.ticks), ks.sharps, ks.minor),
    )


def _pitches(score: Score) -> np.ndarray:
    return score.pitch[~score.is_drum].astype(np.int64)


def _length(score: Score) -> int:
    """MusPy's song length: the latest note end of any track, drums included."""
    return score.end_ticks


def pitch_range(score: Score) -> int:
    """Highest minus lowest pitch in semitones; 0 without pitched notes."""
    pitch = _pitches(score)
    return int(pitch.max() - pitch.min()) if len(pitch) else 0


def n_pitches_used(score: Score) -> int:
    """How many distinct MIDI pitches occur."""
    return len(np.unique(_pitches(score)))


def n_pitch_classes_used(score: Score) -> int:
    """How many distinct pitch classes (0..11) occur."""
    return len(np.unique(_pitches(score) % 12))


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total < 1:
        return float("nan")
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def pitch_entropy(score: Score) -> float:
    """Shannon entropy in bits of the histogram of the 128 pitches (notes counted, not durations)."""
    return _entropy(np.bincount(_pitches(score), minlength=128).astype(np.float64))


def pitch_class_entropy(score: Score) -> float:
    """Shannon entropy in bits of the 12-bin pitch-class histogram."""
    return _entropy(np.bincount(_pitches(score) % 12, minlength=12).astype(np.float64))


def scale_mask(root: int, mode: str) -> np.ndarray:
    """(12,) bool: the pitch classes of the major or natural minor scale on `root` (0 = C)."""
    scales = {"major": MAJOR_SCALE, "minor": MINOR_SCALE}
    if mode.lower() not in scales:
        raise UsageError(f"scale mode {mode!r} is unknown; use 'major' or 'minor'")
    return np.roll(scales[mode.lower()], int(root) % 12)


def pitch_in_scale_rate(score: Score, root: int, mode: str) -> float:
    """Share of pitched notes whose pitch class is in the `root` `mode` scale."""
    pitch = _pitches(score)
    if not len(pitch):
        return float("nan")
    return float(scale_mask(root, mode)[pitch % 12].mean())


def scale_consistency(score: Score) -> float:
    """The largest `pitch_in_scale_rate` over the 24 major and minor scales."""
    pitch = _pitches(score)
    if not len(pitch):
        return float("nan")
    counts = np.bincount(pitch % 12, minlength=12)
    masks = np.stack(
        [np.roll(MAJOR_SCALE, r) for r in range(12)] + [np.roll(MINOR_SCALE, r) for r in range(12)]
    )
    return float((masks @ counts).max() / len(pitch))


def empty_beat_rate(score: Score) -> float:
    """Share of beats (ticks_per_beat each) in which no note sounds; see the module note on note ends."""
    length = _length(score)
    if length < 1:
        return float("nan")
    tpq = score.ticks_per_beat
    n_beats = length // tpq + 1
    cover = np.zeros(n_beats + 1, np.int64)
    np.add.at(cover, score.onset // tpq, 1)
    np.add.at(cover, score.offset // tpq + 1, -1)
    return 1.0 - np.count_nonzero(np.cumsum(cover)[:n_beats]) / n_beats


def _sounding_segments(score: Score) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant count of distinct pitched pitches sounding (a binary piano roll's row sums).

    Returns:
        (lengths, counts): (K,) segment lengths in ticks and (K,) distinct pitches sounding in each;
        the segments tile [first event, last event).
    """
    keep = ~score.is_drum & (score.duration > 0)
    pitch, onset, offset = score.pitch[keep].astype(np.int64), score.onset[keep], score.offset[keep]
    if not len(pitch):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort((onset, pitch))
    pitch, onset, offset = pitch[order], onset[order], offset[order]
    # Merge overlapping notes of one pitch: a pitch sounding twice at once is one row of the roll.
    span = int(offset.max()) + 1
    reach = np.maximum.accumulate(pitch * span + offset) - pitch * span
    new = np.ones(len(pitch), bool)
    new[1:] = (pitch[1:] != pitch[:-1]) | (onset[1:] > reach[:-1])
    starts = onset[new]
    ends = reach[np.concatenate([np.flatnonzero(new)[1:] - 1, [len(pitch) - 1]])]
    times, inverse = np.unique(np.concatenate([starts, ends]), return_inverse=True)
    delta = np.bincount(inverse, weights=np.repeat([1.0, -1.0], len(starts)), minlength=len(times))
    return np.diff(times), np.cumsum(delta)[:-1].astype(np.int64)


def polyphony(score: Score) -> float:
    """Mean number of distinct pitches sounding, over the time steps where at least one sounds."""
    lengths, counts = _sounding_segments(score)
    busy = lengths[counts > 0].sum()
    return float((lengths * counts).sum() / busy) if busy > 0 else float("nan")


def polyphony_rate(score: Score, threshold: int = 2) -> float:
    """Share of time steps (0 .. song end) with more than `threshold` distinct pitches sounding."""
    length = _length(score)
    if length < 1:
        return float("nan")
    lengths, counts = _sounding_segments(score)
    return float(lengths[counts > threshold].sum() / length)


def bar_length_ticks(score: Score) -> int:
    """Ticks per bar of the first time signature (4/4 when there is none), at least 1."""
    _, numerator, denominator = time_signature_segments(score)
    return max(int(round(score.ticks_per_beat * 4 * int(numerator[0]) / int(denominator[0]))), 1)


def groove_consistency(score: Score, measure_resolution: int | None = None) -> float:
    """1 - mean Hamming distance between the onset patterns of neighbouring bars, per position.

    Args:
        measure_resolution: ticks per bar; by default from the first time signature. On the
            32nd-note grid (`to_resolution(score, 8)`) a 4/4 bar is 32. Assumes one constant metre.
    """
    resolution = bar_length_ticks(score) if measure_resolution is None else int(measure_resolution)
    if resolution < 1:
        raise UsageError(f"measure resolution {resolution} is not positive; give ticks per bar, e.g. 32")
    n_measures = _length(score) // resolution + 1
    if n_measures < 2:
        return float("nan")
    patterns = np.zeros((n_measures, resolution), bool)
    measure, position = np.divmod(score.onset, resolution)
    patterns[measure, position] = True
    hamming = np.count_nonzero(patterns[:-1] != patterns[1:])
    return 1.0 - hamming / (resolution * (n_measures - 1))


def drum_pattern(resolution: int, meter: str) -> np.ndarray:
    """(resolution,) bool: the beat positions of a duple (quarters of a beat) or triple (thirds) pattern."""
    if meter not in ("duple", "triple"):
        raise UsageError(f"drum meter {meter!r} is unknown; use 'duple' or 'triple'")
    pattern = np.zeros(resolution, bool)
    pattern[0] = True
    for parts in (4, 2) if meter == "duple" else (3,):
        if resolution % parts == 0:
            pattern[:: resolution // parts] = True
    return pattern


def drum_in_pattern_rate(score: Score, meter: Literal["duple", "triple"]) -> float:
    """Share of drum notes whose onset, within its beat, falls on the `meter` pattern."""
    onset = score.onset[score.is_drum]
    if not len(onset):
        return float("nan")
    pattern = drum_pattern(score.ticks_per_beat, meter)
    return float(pattern[onset % score.ticks_per_beat].mean())


def drum_pattern_consistency(score: Score) -> float:
    """The larger of the duple and triple `drum_in_pattern_rate`."""
    duple = drum_in_pattern_rate(score, "duple")
    return duple if np.isnan(duple) else max(duple, drum_in_pattern_rate(score, "triple"))


def notes_per_beat(score: Score) -> float:
    """Notes (drums included) per beat, from 0 to the end of the last note."""
    length = _length(score)
    return score.n_notes * score.ticks_per_beat / length if length > 0 else float("nan")


def notes_per_second(score: Score) -> float:
    """Notes (drums included) per second of playing time, through the tempo map."""
    seconds = float(ticks_to_seconds(score, np.array([_length(score)]))[0])
    return score.n_notes / seconds if seconds > 0 else float("nan")


def mean_ioi_beats(score: Score) -> float:
    """Mean time in beats between successive distinct onsets (drums included)."""
    onsets = np.unique(score.onset)
    return float(np.diff(onsets).mean() / score.ticks_per_beat) if len(onsets) > 1 else float("nan")


def duration_histogram(score: Score) -> np.ndarray:
    """(12,) share of pitched notes in each DURATION_BINS_BEATS class (nearest on a log scale)."""
    duration = score.duration[~score.is_drum] / score.ticks_per_beat
    duration = duration[duration > 0]
    if not len(duration):
        return np.zeros(len(DURATION_BINS_BEATS))
    log_bins = np.log2(DURATION_BINS_BEATS)
    nearest = np.abs(np.log2(duration)[:, None] - log_bins[None, :]).argmin(axis=1)
    return np.bincount(nearest, minlength=len(log_bins)) / len(duration)


def interval_histogram(score: Score) -> np.ndarray:
    """(25,) share of melodic intervals -12..+12 semitones in the top voice (skyline)."""
    counts = melodic_intervals(skyline(score)).astype(np.float64)
    return counts / counts.sum() if counts.sum() > 0 else counts


def token_validity_rate(ids: Iterable[int]) -> float:
    """Share of tokens that keep the grammar (1 - invalid / total); NaN for an empty sequence."""
    from aurl.tokens.grammar import count_invalid  # tokens only load when validity is asked for

    ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    return 1.0 - count_invalid(ids) / len(ids) if len(ids) else float("nan")
