"""The top voice of a piece (skyline), its contour, intervals and motifs.

Skyline: at each distinct onset the highest pitched note starting there is a melody candidate; it
is kept unless a higher candidate that started earlier still sounds (an inner voice moving under a
held melody note is not melody). Kept notes are cut where the next melody note starts. The check
looks back over the previous LOOKBACK candidates, which covers any held note in practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from aurl.midi.score import Score

LOOKBACK: Final = 32
INTERVAL_CLIP: Final = 12  # interval histogram bins: -12..+12 semitones, wider leaps land in the ends


@dataclass(frozen=True)
class Melody:
    """A monophonic line: (M,) pitch, onset and duration in ticks, sorted by onset."""

    pitch: np.ndarray
    onset: np.ndarray
    duration: np.ndarray

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def intervals(self) -> np.ndarray:
        """(M - 1,) semitones from each note to the next."""
        return np.diff(self.pitch.astype(np.int64))


def skyline(score: Score) -> Melody:
    """The top voice of the pitched notes (see the module docstring); drums are left out."""
    pitched = ~score.is_drum
    pitch, onset, offset = score.pitch[pitched].astype(np.int64), score.onset[pitched], score.offset[pitched]
    if not len(pitch):
        empty = np.zeros(0, np.int64)
        return Melody(empty, empty, empty)
    order = np.lexsort((-pitch, onset))
    pitch, onset, offset = pitch[order], onset[order], offset[order]
    first = np.concatenate([[True], onset[1:] != onset[:-1]])  # the highest note of each onset
    pitch, onset, offset = pitch[first], onset[first], offset[first]
    pad = LOOKBACK
    earlier_pitch = sliding_window_view(np.concatenate([np.full(pad, -1), pitch]), pad + 1)[:, :pad]
    earlier_offset = sliding_window_view(np.concatenate([np.full(pad, -1), offset]), pad + 1)[:, :pad]
    covered = ((earlier_offset > onset[:, None]) & (earlier_pitch > pitch[:, None])).any(axis=1)
    pitch, onset, offset = pitch[~covered], onset[~covered], offset[~covered]
    next_onset = np.concatenate([onset[1:], [np.iinfo(np.int64).max]])
    duration = np.minimum(offset, next_onset) - onset
    return Melody(pitch, onset, duration)


def parsons_code(melody: Melody) -> str:
    """Parsons code: "*" then u (up), d (down) or r (repeat) for each step of the melody."""
    if not len(melody):
        return ""
    steps = np.sign(melody.intervals)
    return "*" + "".join(np.array(["d", "r", "u"])[steps + 1])


def interval_histogram(melody: Melody) -> np.ndarray:
    """(25,) counts of melodic intervals -12..+12 semitones; larger leaps count in the end bins."""
    clipped = np.clip(melody.intervals, -INTERVAL_CLIP, INTERVAL_CLIP) + INTERVAL_CLIP
    return np.bincount(clipped, minlength=2 * INTERVAL_CLIP + 1)


@dataclass(frozen=True)
class Motif:
    """A pattern of melodic intervals that recurs at any transposition.

    Attributes:
        intervals: the semitone steps; the motif has len(intervals) + 1 notes.
        starts: (K,) index of the first melody note of each occurrence, increasing, non-overlapping.
    """

    intervals: tuple[int, ...]
    starts: np.ndarray


def find_motifs(melody: Melody, lengths: tuple[int, ...] = (6, 5, 4, 3), top: int = 10) -> list[Motif]:
    """Repeated, transposition-invariant interval patterns, most frequent first.

    Every interval n-gram (n in `lengths`) that occurs at least twice without overlapping itself is
    a candidate; patterns of repeated notes only are dropped. Candidates are taken by occurrence
    count, then length; one whose notes are mostly (half or more) inside motifs already taken is
    skipped, and a taken one is extended left and right while all its occurrences still agree, so
    a long literal repeat is reported once, at full length.

    Args:
        melody: the line to search (usually `skyline(score)`).
        lengths: interval counts of the candidate patterns.
        top: at most this many motifs.
    """
    intervals = melody.intervals
    candidates = [c for n in lengths if len(intervals) >= n for c in _repeated_ngrams(intervals, n)]
    candidates.sort(key=lambda c: (-len(c[0]), -c[1], int(c[0][0])))
    found: list[Motif] = []
    covered = np.zeros(len(melody), bool)
    for starts, n in candidates:  # candidate patterns, not notes; stops after `top`
        if covered[starts[:, None] + np.arange(n + 1)].mean() >= 0.5:
            continue
        starts, n = _extend(intervals, starts, n)
        covered[starts[:, None] + np.arange(n + 1)] = True
        found.append(Motif(tuple(int(v) for v in intervals[starts[0] : starts[0] + n]), starts))
        if len(found) == top:
            break
    return found


def _repeated_ngrams(intervals: np.ndarray, n: int) -> list[tuple[np.ndarray, int]]:
    """(starts, n) of every n-gram of intervals occurring twice or more without overlap."""
    windows = sliding_window_view(intervals, n)
    _, first, inverse, counts = np.unique(
        windows, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    grouped = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    out = []
    for pattern in np.flatnonzero((counts >= 2) & windows[first].any(axis=1)):
        starts = _non_overlapping(grouped[pattern], n)
        if len(starts) >= 2:
            out.append((starts, n))
    return out


def _extend(intervals: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Grow a repeated pattern while every occurrence continues (or begins) with the same interval."""
    while True:
        ends = starts + n
        if (
            ends[-1] < len(intervals)
            and (ends[:-1] < starts[1:]).all()
            and (intervals[ends] == intervals[ends[0]]).all()
        ):
            n += 1
            continue
        before = starts - 1
        if (
            before[0] >= 0
            and (before[1:] >= ends[:-1]).all()
            and (intervals[before] == intervals[before[0]]).all()
        ):
            starts, n = before, n + 1
            continue
        return starts, n


def _non_overlapping(starts: np.ndarray, n: int) -> np.ndarray:
    """Greedy left-to-right choice of occurrences that do not share an interval."""
    kept: list[int] = []
    for s in starts.tolist():  # occurrences of one pattern: a handful, not per note
        if not kept or s >= kept[-1] + n:
            kept.append(s)
    return np.array(kept, np.int64)
