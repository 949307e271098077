"""Metre and tempo: bar and beat lines from the time-signature map; tempo and metre heard in the notes.

A beat is the time signature's counting unit: a quarter note in 4/4, an eighth note in 3/8, a dotted
quarter in 6/8, 9/8 and 12/8 (compound metres count in threes). Without a time signature the piece
is in 4/4, as in a MIDI file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurl.midi.score import DEFAULT_TEMPO_BPM, DEFAULT_TIME_SIGNATURE, Score
from aurl.midi.validate import ticks_to_seconds as midi_seconds

FRAME_SECONDS = 0.01  # onset-train resolution for the tempo estimate
TEMPO_PRIOR_BPM = 120.0  # centre of the log-normal tempo prior, as in most beat trackers
TEMPO_PRIOR_OCTAVES = 1.0  # its width: one octave either side is one standard deviation
TEMPO_SECONDS = 600.0  # the tempo is heard in the first ten minutes; enough, and bounds the FFT
METRE_CANDIDATES = (2, 3, 4)  # beats per bar tried by `estimate_metre`


@dataclass(frozen=True)
class MetreEstimate:
    """What the notes say about the metre, in beats of one quarter note.

    Attributes:
        beats_per_bar: 2, 3 or 4.
        first_downbeat_beats: where the first full bar starts (the pickup length), 0 <= x < beats_per_bar.
        confidence: 1 - (runner-up score / best score); near 0 when another metre fits as well.
    """

    beats_per_bar: int
    first_downbeat_beats: int
    confidence: float


def time_signature_segments(score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The time-signature map with a 4/4 at tick 0 when the file has nothing there.

    Returns:
        (ticks, numerator, denominator), each (S,) int64, sorted by tick, the first at 0.
    """
    ts = score.time_signatures
    ticks, num, den = (
        ts.ticks.astype(np.int64),
        ts.numerator.astype(np.int64),
        ts.denominator.astype(np.int64),
    )
    valid = (num > 0) & (den > 0)
    ticks, num, den = ticks[valid], num[valid], den[valid]
    if not len(ticks) or ticks[0] > 0:
        ticks = np.concatenate([[0], ticks])
        num = np.concatenate([[DEFAULT_TIME_SIGNATURE[0]], num])
        den = np.concatenate([[DEFAULT_TIME_SIGNATURE[1]], den])
    return ticks, num, den


def beat_unit(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Beat length in quarter notes for each time signature: 1/den of a whole, tripled in compound metres."""
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    compound = (numerator % 3 == 0) & (numerator > 3) & (denominator >= 8)
    return np.where(compound, 3.0, 1.0) * 4.0 / denominator


def _lines(score: Score, length_quarters: np.ndarray, end_ticks: int | None) -> np.ndarray:
    ticks, _, _ = time_signature_segments(score)
    end = max(score.end_ticks if end_ticks is None else end_ticks, 1)
    step = np.maximum(np.rint(length_quarters * score.ticks_per_beat), 1).astype(np.int64)
    stops = np.concatenate([ticks[1:], [max(end, int(ticks[-1]) + 1)]])
    parts = [np.arange(a, b, s) for a, b, s in zip(ticks, stops, step, strict=True) if a < end]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(1, np.int64)


def bar_starts(score: Score, end_ticks: int | None = None) -> np.ndarray:
    """(B,) int64 ticks where each bar starts, from 0 up to (not including) the end of the piece.

    A time-signature change starts a new bar at its tick, as in a MIDI file.
    """
    _, num, den = time_signature_segments(score)
    return _lines(score, 4.0 * num / den, end_ticks)


def beat_starts(score: Score, end_ticks: int | None = None) -> np.ndarray:
    """(T,) int64 ticks where each beat starts (see the module docstring for what a beat is)."""
    _, num, den = time_signature_segments(score)
    return _lines(score, beat_unit(num, den), end_ticks)


def segment_index(starts: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Index of the segment (bar, beat, window) that holds each tick; ticks before starts[0] get 0."""
    return np.maximum(np.searchsorted(starts, ticks, side="right") - 1, 0)


def ticks_to_seconds(score: Score, ticks: np.ndarray) -> np.ndarray:
    """Seconds from the start for each tick, through the score's tempo map (120 bpm before the first)."""
    return midi_seconds(np.asarray(ticks, np.float64), score.tempos, score.ticks_per_beat)


def file_tempo_bpm(score: Score) -> float:
    """The tempo in force for most of the piece (counted in ticks); 120 bpm when the file has none."""
    ticks, bpm = score.tempos.ticks, score.tempos.bpm
    if not len(bpm):
        return DEFAULT_TEMPO_BPM
    end = max(score.end_ticks, int(ticks[-1]) + 1)
    lengths = np.diff(np.concatenate([ticks, [end]]))
    if ticks[0] > 0:  # before the first tempo event a MIDI player uses 120 bpm
        bpm, lengths = np.concatenate([[DEFAULT_TEMPO_BPM], bpm]), np.concatenate([[ticks[0]], lengths])
    values, inverse = np.unique(np.round(bpm, 3), return_inverse=True)
    return float(values[np.argmax(np.bincount(inverse, weights=lengths))])


def estimate_tempo_bpm(score: Score) -> float | None:
    """Beats per minute heard in the notes, by autocorrelation of the onset train in seconds.

    Onsets of the first ten minutes (weighted by how many notes start together) go on a 10 ms grid;
    the autocorrelation between 30 and 240 bpm is weighted by a log-normal prior around 120 bpm
    (one octave wide), which picks the beat level among its multiples. Returns None for fewer than
    8 distinct onsets. The answer is a perceptual estimate, independent of the file's tempo events.
    """
    pitched = ~score.is_drum if (~score.is_drum).any() else np.ones(score.n_notes, bool)
    seconds = ticks_to_seconds(score, score.onset[pitched])
    seconds = seconds[seconds - seconds.min() <= TEMPO_SECONDS] if len(seconds) else seconds
    frames = np.rint(seconds / FRAME_SECONDS).astype(np.int64)
    if len(np.unique(frames)) < 8:
        return None
    train = np.bincount(frames - frames.min()).astype(np.float64)
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 2.0) ** 2)
    train = np.convolve(train, kernel, mode="same")
    train -= train.mean()
    n = len(train)
    size = 1 << int(2 * n - 1).bit_length()  # a power of two at least 2n: fast and no wrap-around
    spectrum = np.fft.rfft(train, size)
    autocorr = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    lags = np.arange(int(60 / 240 / FRAME_SECONDS), min(int(60 / 30 / FRAME_SECONDS), n - 1) + 1)
    if len(lags) < 3:
        return None
    bpm = 60.0 / (lags * FRAME_SECONDS)
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    weighted = autocorr[lags] * prior
    best = int(np.argmax(weighted))
    return float(60.0 / (_refine_peak(weighted, best, lags) * FRAME_SECONDS))


def _refine_peak(values: np.ndarray, i: int, lags: np.ndarray) -> float:
    """Sub-frame peak position by a parabola through the peak and its two neighbours."""
    if i == 0 or i == len(values) - 1:
        return float(lags[i])
    a, b, c = values[i - 1], values[i], values[i + 1]
    denominator = a - 2 * b + c
    shift = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    return float(lags[i] + np.clip(shift, -0.5, 0.5))


def beat_accents(score: Score) -> np.ndarray:
    """(Q,) accent per quarter-note beat: summed length (in beats, at most 4) of notes starting on it.

    Long notes and chords fall on strong beats; notes off the beat (beyond a 16th of a beat) add nothing.
    """
    tpq = score.ticks_per_beat
    pitched = ~score.is_drum
    onset, duration = score.onset[pitched], score.duration[pitched]
    beat = np.rint(onset / tpq).astype(np.int64)
    on_beat = np.abs(onset - beat * tpq) <= tpq / 16
    n_beats = -(-score.end_ticks // tpq)  # every beat the piece lasts, up to the end of its last note
    weight = np.minimum(duration[on_beat] / tpq, 4.0)
    return np.bincount(beat[on_beat], weights=weight, minlength=n_beats)[:n_beats]


def estimate_metre(score: Score) -> MetreEstimate | None:
    """Beats per bar and the first downbeat, from where long notes and chords start.

    For every candidate bar length m (2, 3, 4 quarter notes) and phase p < m, the score is the mean
    accent (`beat_accents`) on beats p, p+m, p+2m, ... over the mean accent of all beats; the best
    (m, p) wins. On the bundled chorales this finds the bar length of 95% and the first downbeat of
    64% (beats 1 and 3 of a 4/4 bar are often equally strong); docs/analyze.md has the figures.
    Returns None for pieces shorter than 8 beats.
    """
    accents = beat_accents(score)
    if len(accents) < 8 or accents.sum() <= 0:
        return None
    mean = accents.mean()
    candidates = []
    position = np.arange(len(accents))
    for m in METRE_CANDIDATES:
        per_phase = (
            np.bincount(position % m, weights=accents, minlength=m)
            / np.bincount(position % m, minlength=m)
            / mean
        )
        candidates += [(per_phase[phase], m, phase) for phase in range(m)]
    candidates.sort(key=lambda c: -c[0])
    best, runner_up = candidates[0], next(c for c in candidates[1:] if c[1] != candidates[0][1])
    confidence = 1.0 - runner_up[0] / best[0] if best[0] > 0 else 0.0
    return MetreEstimate(int(best[1]), int(best[2]), float(max(confidence, 0.0)))
