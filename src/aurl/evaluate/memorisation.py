"""Memorisation: how much of a generated piece is copied, at any transposition, from known music.

A piece is cut into windows of WINDOW_BARS bars, starting at every bar. A window's fingerprint is a
64-bit hash of its pitched notes as (bar in the window, 32nd-note position in the bar, pitch above
the window's lowest note): onsets and pitches only, tracks, durations and velocities ignored, so a
copy survives transposition and re-orchestration. A window counts only with at least
MIN_WINDOW_NOTES notes, so a bar of rests or one held chord does not look "copied".

Per generated piece: the share of its windows whose fingerprint occurs in the known set, and the
longest span of consecutive bars copied in order from one known piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from aurl.analyze.meter import bar_starts, segment_index
from aurl.evaluate.metrics import GRID_STEPS_PER_BEAT, to_resolution
from aurl.midi.score import Score

WINDOW_BARS: Final = 4
MIN_WINDOW_NOTES: Final = 8
EMPTY_BAR: Final = np.uint64(0)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of uint64 values (wrapping arithmetic)."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _bars(score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per pitched note on the grid: bar index, position in the bar, pitch; and the number of bars."""
    grid = to_resolution(score, GRID_STEPS_PER_BEAT)
    pitched = ~grid.is_drum
    onset, pitch = grid.onset[pitched], grid.pitch[pitched].astype(np.int64)
    starts = bar_starts(grid)
    bar = segment_index(starts, onset)
    unique = np.unique(np.stack([bar, onset - starts[bar], pitch], axis=1), axis=0)  # doubled notes once
    return unique[:, 0], unique[:, 1], unique[:, 2], len(starts)


def window_fingerprints(score: Score, window_bars: int = WINDOW_BARS) -> np.ndarray:
    """(W,) uint64 fingerprint of the window starting at each bar; 0 for windows with too few notes.

    W = number of bars - window_bars + 1 (0 for shorter pieces).
    """
    bar, position, pitch, n_bars = _bars(score)
    if n_bars < window_bars or not len(bar):
        return np.zeros(max(n_bars - window_bars + 1, 0), np.uint64)
    lowest = np.full(n_bars, 1 << 30, np.int64)
    np.minimum.at(lowest, bar, pitch)
    counts = np.bincount(bar, minlength=n_bars)
    # A bar's content is hashed relative to its own lowest note; summing mixed note codes makes the
    # hash independent of note order.
    codes = _mix((position * 256 + (pitch - lowest[bar]) + 1).astype(np.uint64))
    content = np.zeros(n_bars, np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(content, bar, codes)
    content = np.where(counts > 0, _mix(content), EMPTY_BAR)
    windows_lowest = sliding_window_view(np.where(counts > 0, lowest, 1 << 30), window_bars)
    floor = windows_lowest.min(axis=1, keepdims=True)
    offsets = np.where(windows_lowest < (1 << 30), windows_lowest - floor, 255).astype(np.uint64)
    fingerprint = np.zeros(len(floor), np.uint64)
    with np.errstate(over="ignore"):
        for column in np.hstack(
            [sliding_window_view(content, window_bars), offsets]
        ).T:  # 2 x window_bars columns
            fingerprint = _mix(fingerprint * np.uint64(0x9E3779B97F4A7C15) + column)
    notes_in_window = sliding_window_view(counts, window_bars).sum(axis=1)
    return np.where(notes_in_window >= MIN_WINDOW_NOTES, fingerprint | np.uint64(1), np.uint64(0))


@dataclass(frozen=True)
class MemorisationIndex:
    """Fingerprints of known pieces, sorted, with where each comes from.

    Attributes:
        fingerprints: (K,) sorted non-zero window fingerprints.
        positions: (K,) global window number; windows of one piece are consecutive and pieces are
            separated by a gap, so position + 1 is the next window of the same piece.
        piece: (K,) index into `names`.
    """

    fingerprints: np.ndarray
    positions: np.ndarray
    piece: np.ndarray
    names: tuple[str, ...] = field(default=())
    window_bars: int = WINDOW_BARS

    @classmethod
    def build(
        cls, scores: list[Score], names: list[str] | None = None, window_bars: int = WINDOW_BARS
    ) -> MemorisationIndex:
        """Index the windows of known pieces (reference or training set)."""
        parts, positions, pieces, start = [], [], [], 0
        for i, score in enumerate(scores):
            found = window_fingerprints(score, window_bars)
            parts.append(found)
            positions.append(start + np.arange(len(found)))
            pieces.append(np.full(len(found), i))
            start += len(found) + 1  # the gap keeps runs from crossing pieces
        fingerprints = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        position = np.concatenate(positions) if positions else np.zeros(0, np.int64)
        piece = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
        keep = fingerprints != 0
        order = np.argsort(fingerprints[keep], kind="stable")
        labels = tuple(names) if names is not None else tuple(str(i) for i in range(len(scores)))
        return cls(fingerprints[keep][order], position[keep][order], piece[keep][order], labels, window_bars)


@dataclass(frozen=True)
class Memorisation:
    """How much of one piece is found in the index.

    Attributes:
        n_windows: windows with enough notes to count.
        copied_share: share of them found in the index (NaN when n_windows is 0).
        longest_span_bars: the longest run of bars copied in order from one known piece (0 if none).
        longest_span_source: the name of that known piece, or None.
    """

    n_windows: int
    copied_share: float
    longest_span_bars: int
    longest_span_source: str | None


def memorisation(score: Score, index: MemorisationIndex) -> Memorisation:
    """Compare one piece's windows with the index (see the module docstring)."""
    found = window_fingerprints(score, index.window_bars)
    counted = found != 0
    n_windows = int(counted.sum())
    if not n_windows:
        return Memorisation(0, float("nan"), 0, None)
    lo = np.searchsorted(index.fingerprints, found, side="left")
    hi = np.searchsorted(index.fingerprints, found, side="right")
    hits = (hi > lo) & counted
    share = float(hits.sum() / n_windows)
    span, source = _longest_run(lo, hi, hits, index)
    return Memorisation(n_windows, share, span, source)


def _longest_run(
    lo: np.ndarray, hi: np.ndarray, hits: np.ndarray, index: MemorisationIndex
) -> tuple[int, str | None]:
    """Longest diagonal run of matches: window i matching known window g, i+1 matching g+1, ..."""
    if not hits.any():
        return 0, None
    sizes = np.where(hits, hi - lo, 0)
    window = np.repeat(np.arange(len(lo)), sizes)
    within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    known = lo[window] + within
    position = index.positions[known]
    diagonal = position - window
    order = np.lexsort((window, diagonal))
    diagonal, window, known = diagonal[order], window[order], known[order]
    continues = np.zeros(len(window), bool)
    continues[1:] = (diagonal[1:] == diagonal[:-1]) & (window[1:] == window[:-1] + 1)
    run_start = np.flatnonzero(~continues)
    run_length = np.diff(np.concatenate([run_start, [len(window)]]))
    best = int(np.argmax(run_length))
    source = index.names[int(index.piece[known[run_start[best]]])]
    return int(run_length[best]) + index.window_bars - 1, source
