"""Form: bar self-similarity, repeated sections labelled A B A′ ..., and phrase boundaries.

Bars are compared on three views, weighted 2:1:1: which pitches start at which of 16 positions in
the bar (only an exact repeat scores 1), the pitch-class durations (harmony) and the onset
positions (rhythm). Sections come from diagonal stripes in that matrix: a run of at least
MIN_SECTION_BARS bars that matches the bars a fixed lag later marks both copies as sections.

Phrase boundaries come from three cues, each named in the result: a rest in every voice, a
cadence (a long melody note over a tonic or dominant chord), and peaks of Cambouropoulos' Local
Boundary Detection Model (LBDM) over the melody's pitch intervals, inter-onset intervals and rests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from aurl.analyze.chords import Chord
from aurl.analyze.key import Key, pitch_class_profile
from aurl.analyze.melody import Melody
from aurl.analyze.meter import segment_index
from aurl.midi.score import Score

POSITIONS_PER_BAR: Final = 16
REPEAT_SIMILARITY: Final = 0.97  # bars this similar are the same material
VARIANT_SIMILARITY: Final = 0.8  # ... and this similar, a variant of it (A′)
MIN_SECTION_BARS: Final = 2
MAX_REPEATS: Final = 8  # the longest repeats that place section boundaries
LBDM_WEIGHTS: Final = {"pitch": 0.25, "ioi": 0.5, "rest": 0.25}  # Cambouropoulos (2001)
LBDM_THRESHOLD: Final = 0.4
MIN_REST_BEATS: Final = 0.5
CADENCE_LENGTH: Final = 2.0  # a cadence note lasts at least this many times the median melody note
MIN_PHRASE_BEATS: Final = 2.0


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)


def bar_features(score: Score, bar_ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bar views for the self-similarity matrix, each row of unit length (zero for empty bars).

    Returns:
        (B, K) pitch onsets by position (one column per (position, pitch) pair that occurs),
        (B, 12) pitch-class durations, (B, 16) onset positions.
    """
    pitched = ~score.is_drum
    onset, pitch = score.onset[pitched], score.pitch[pitched].astype(np.int64)
    end = max(score.end_ticks, int(bar_ticks[-1]) + 1)
    boundaries = np.concatenate([bar_ticks, [end]])
    bar = segment_index(bar_ticks, onset)
    length = np.diff(boundaries)[bar]
    position = np.minimum((onset - boundaries[bar]) * POSITIONS_PER_BAR // length, POSITIONS_PER_BAR - 1)
    n_bars = len(bar_ticks)
    columns, column = np.unique(position * 128 + pitch, return_inverse=True)
    roll = np.zeros((n_bars, len(columns)))
    np.add.at(roll, (bar, column.reshape(-1)), 1.0)
    rhythm = np.zeros((n_bars, POSITIONS_PER_BAR))
    np.add.at(rhythm, (bar, position), 1.0)
    harmony = pitch_class_profile(score, boundaries)
    return _unit_rows(roll), _unit_rows(harmony), _unit_rows(rhythm)


def self_similarity(score: Score, bar_ticks: np.ndarray) -> np.ndarray:
    """(B, B) bar self-similarity in 0..1 (see the module docstring); empty bars match nothing."""
    views = bar_features(score, bar_ticks)
    busy = np.flatnonzero(np.any([(view != 0).any(axis=1) for view in views], axis=0))
    similarity = np.zeros((len(bar_ticks), len(bar_ticks)))
    # Only bars with notes can match, and long files can be mostly silence: multiply just those.
    similarity[np.ix_(busy, busy)] = sum(
        weight * view[busy] @ view[busy].T for weight, view in zip((0.5, 0.25, 0.25), views, strict=True)
    )
    return similarity


@dataclass(frozen=True)
class Section:
    """Bars [start_bar, end_bar) with a label such as "A", "B" or "A′" (a variant of A)."""

    label: str
    start_bar: int
    end_bar: int


def _repeats(similarity: np.ndarray) -> list[tuple[int, int, int]]:
    """Diagonal runs (length, start, lag) of bars matching the bars `lag` later, longest first."""
    n = len(similarity)
    runs: list[tuple[int, int, int]] = []
    for lag in range(1, n):  # one pass per diagonal, vectorised along it
        match = np.diagonal(similarity, lag) >= VARIANT_SIMILARITY
        edges = np.diff(np.concatenate([[0], match.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            length = min(b - a, lag)  # a run longer than its lag is a chain of back-to-back repeats
            if length >= MIN_SECTION_BARS:
                runs.append((length, a, lag))
    runs.sort(key=lambda r: (-r[0], r[1], r[2]))
    return runs[:MAX_REPEATS]


def _boundaries(n_bars: int, runs: list[tuple[int, int, int]]) -> np.ndarray:
    marks = {0, n_bars}
    for length, start, lag in runs:
        marks |= {start, start + length, start + lag, min(start + lag + length, n_bars)}
    kept = [0]
    for b in sorted(marks - {0}):
        if b - kept[-1] >= MIN_SECTION_BARS:
            kept.append(b)
    if kept[-1] != n_bars:
        kept[-1] = n_bars  # a short tail joins the last section
    return np.array(kept)


def _segment_similarity(
    similarity: np.ndarray, a: tuple[int, int], b: tuple[int, int]
) -> tuple[float, float]:
    """(mean, least) similarity of aligned bars of two sections; (0, 0) when their lengths differ much."""
    length_a, length_b = a[1] - a[0], b[1] - b[0]
    if abs(length_a - length_b) > max(1, length_a // 4):
        return 0.0, 0.0
    n = min(length_a, length_b)
    aligned = similarity[np.arange(a[0], a[0] + n), np.arange(b[0], b[0] + n)]
    return float(aligned.mean()), float(aligned.min())


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else _letter(i // 26 - 1) + _letter(i % 26)


def find_sections(similarity: np.ndarray) -> list[Section]:
    """Sections from repeats in a bar self-similarity matrix.

    A section gets the label of the most similar earlier section when every pair of aligned bars
    matches (REPEAT_SIMILARITY), that label with a prime when they are variants (mean similarity
    of aligned bars at least VARIANT_SIMILARITY), otherwise the next unused letter. A piece
    without repeats is one section "A".
    """
    n = len(similarity)
    if n == 0:
        return []
    bounds = _boundaries(n, _repeats(similarity))
    spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    sections: list[Section] = []
    letters: list[str] = []
    primes: dict[str, int] = {}
    for span in spans:
        scores = [_segment_similarity(similarity, (s.start_bar, s.end_bar), span) for s in sections]
        best = int(np.argmax([mean for mean, _ in scores])) if scores else -1
        if best >= 0 and scores[best][0] >= VARIANT_SIMILARITY:
            base = letters[best]
            if scores[best][1] >= REPEAT_SIMILARITY:
                label = sections[best].label
            else:
                primes[base] = primes.get(base, 0) + 1
                label = base + "′" * primes[base]
        else:
            base = label = _letter(len(set(letters)))
        letters.append(base)
        sections.append(Section(label, span[0], span[1]))
    return sections


@dataclass(frozen=True)
class Phrase:
    """A phrase from `start_ticks` to `end_ticks`; `reasons` name the cues at its end boundary."""

    start_ticks: int
    end_ticks: int
    reasons: tuple[str, ...]


def lbdm(melody: Melody) -> np.ndarray:
    """(M - 1,) boundary strength in 0..1 between each melody note and the next (Cambouropoulos 2001).

    For each profile x (absolute pitch interval, inter-onset interval, rest before the next note)
    the change r = |x_k - x_k+1| / (x_k + x_k+1) and strength s_k = x_k (r_k-1,k + r_k,k+1) are
    scaled to a maximum of 1 and summed with LBDM_WEIGHTS.
    """
    if len(melody) < 2:
        return np.zeros(0)
    onset, offset = melody.onset.astype(np.float64), (melody.onset + melody.duration).astype(np.float64)
    profiles = {
        "pitch": np.abs(melody.intervals).astype(np.float64),
        "ioi": np.diff(onset),
        "rest": np.maximum(onset[1:] - offset[:-1], 0.0),
    }
    total = np.zeros(len(melody) - 1)
    for name, x in profiles.items():
        pair_sum = x[:-1] + x[1:]
        change = np.divide(np.abs(x[:-1] - x[1:]), pair_sum, out=np.zeros_like(pair_sum), where=pair_sum > 0)
        padded = np.concatenate([[0.0], change, [0.0]])
        strength = x * (padded[:-1] + padded[1:])
        peak = strength.max() if len(strength) else 0.0
        total += LBDM_WEIGHTS[name] * (strength / peak if peak > 0 else strength)
    return total


def _lbdm_boundaries(melody: Melody) -> np.ndarray:
    strength = lbdm(melody)
    padded = np.concatenate([[-1.0], strength, [-1.0]])
    peak = (strength >= padded[:-2]) & (strength > padded[2:]) & (strength >= LBDM_THRESHOLD)
    return melody.onset[1:][peak]


def _rest_boundaries(score: Score) -> np.ndarray:
    pitched = ~score.is_drum
    order = np.argsort(score.onset[pitched], kind="stable")
    onset, offset = score.onset[pitched][order], score.offset[pitched][order]
    if len(onset) < 2:
        return np.zeros(0, np.int64)
    reach = np.maximum.accumulate(offset)[:-1]
    gap = onset[1:] - reach
    return onset[1:][gap >= MIN_REST_BEATS * score.ticks_per_beat]


def _cadence_boundaries(
    melody: Melody, beat_ticks: np.ndarray, beat_chords: list[Chord | None], key: Key
) -> np.ndarray:
    if len(melody) < 3 or not beat_chords:
        return np.zeros(0, np.int64)
    long_note = melody.duration >= CADENCE_LENGTH * np.median(melody.duration)
    beat = np.minimum(segment_index(beat_ticks, melody.onset), len(beat_chords) - 1)
    degrees = np.array([(c.root - key.tonic) % 12 if c is not None else -1 for c in beat_chords])
    stable = np.isin(degrees[beat], (0, 7))
    ends = np.flatnonzero(long_note[:-1] & stable[:-1])  # the last note ends the piece, not a phrase
    return melody.onset[ends + 1]


def find_phrases(
    score: Score,
    melody: Melody,
    beat_ticks: np.ndarray,
    beat_chords: list[Chord | None],
    key: Key | None,
) -> list[Phrase]:
    """Phrases of a piece from rests, cadences and LBDM peaks (module docstring).

    Cues closer than MIN_PHRASE_BEATS to the previous boundary join it, so a phrase is never shorter.

    Args:
        melody: the top voice (`melody.skyline`).
        beat_ticks: (T,) beat starts; beat_chords: the chord of each beat (`chords.chords_in_segments`).
        key: the piece's key, for cadences; None skips them.
    """
    if not len(melody):
        return []
    cues = {
        "rest": _rest_boundaries(score),
        "lbdm": _lbdm_boundaries(melody),
        "cadence": (
            _cadence_boundaries(melody, beat_ticks, beat_chords, key)
            if key is not None
            else np.zeros(0, np.int64)
        ),
    }
    ticks = np.concatenate(list(cues.values())).astype(np.int64)
    names = np.concatenate([np.full(len(v), k, dtype=object) for k, v in cues.items()])
    start, end = int(score.onset[~score.is_drum].min()), int(score.offset[~score.is_drum].max())
    min_gap = MIN_PHRASE_BEATS * score.ticks_per_beat
    phrases: list[Phrase] = []
    order = np.argsort(ticks, kind="stable")
    for tick in np.unique(ticks[order]).tolist():  # boundaries: a few per phrase, not per note
        if tick - start >= min_gap and end - tick >= min_gap:
            reasons = tuple(sorted(set(names[ticks == tick].tolist())))
            phrases.append(Phrase(start, tick, reasons))
            start = tick
        elif phrases and tick - start < min_gap:
            merged = tuple(sorted(set(phrases[-1].reasons) | set(names[ticks == tick].tolist())))
            phrases[-1] = Phrase(phrases[-1].start_ticks, phrases[-1].end_ticks, merged)
    phrases.append(Phrase(start, end, ("end",)))
    return phrases
