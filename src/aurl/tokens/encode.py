"""Score -> token ids, vectorised: every token is an item with a (step, stage, order) sort key.

Items are bar lines, time-signature and tempo changes, note events (with their Track / Program /
Velocity prefixes) and time shifts. One lexsort puts them in the order the grammar demands
(grammar.py); no Python loop runs per note.
"""

from __future__ import annotations

import numpy as np

from aurl.midi.score import Score
from aurl.tokens import vocab
from aurl.tokens.quantize import Grid, to_grid

# Sort slots inside a time step; time shifts close the step.
_SLOT_BAR, _SLOT_TS, _SLOT_TEMPO, _SLOT_OFF, _SLOT_ON, _SLOT_SHIFT = range(6)
_WIDTH = 4  # the most tokens one item writes: Track, Program, Velocity, NoteOn


def encode(score: Score) -> np.ndarray:
    """Token ids of `score`: BOS, the header, the music, EOS (see docs/tokens.md).

    Returns:
        (T,) uint16 token ids, grammatical by construction.

    Raises:
        TokenizeError: when the score is longer than the vocabulary can place in time.
    """
    return encode_grid(to_grid(score))


def encode_grid(grid: Grid) -> np.ndarray:
    """Token ids of a canonical grid (what `encode` does after quantising)."""
    parts = [_bar_items(grid), _meta_items(grid), _note_items(grid)]
    steps = np.unique(np.concatenate([p[0] for p in parts]))
    parts.append(_shift_items(steps))
    step, slot, order, tokens = (np.concatenate(column) for column in zip(*parts, strict=True))
    rows = tokens[np.lexsort((order, slot, step))].ravel()
    body = rows[rows >= 0]
    return np.concatenate([[vocab.BOS], body, [vocab.EOS]]).astype(np.uint16)


def _items(step: np.ndarray, slot: int, order: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pack items: step, slot and order keys, and a (n, _WIDTH) token matrix padded with -1."""
    n = len(step)
    tokens = np.full((n, _WIDTH), -1, np.int64)
    for i, column in enumerate(columns):
        tokens[:, i] = column
    return np.asarray(step, np.int64), np.full(n, slot, np.int64), np.asarray(order, np.int64), tokens


def bar_lines(ts_step: np.ndarray, ts_index: np.ndarray, end: int) -> np.ndarray:
    """Steps of every bar line up to and including `end`; each time-signature change starts a bar."""
    length = vocab.TS_BAR_STEPS[ts_index]
    segment_end = np.concatenate([ts_step[1:], [end + 1]])
    counts = -((ts_step - segment_end) // length)  # ceil((segment_end - start) / length)
    first = np.cumsum(counts) - counts
    within = np.arange(counts.sum()) - np.repeat(first, counts)
    return np.repeat(ts_step, counts) + np.repeat(length, counts) * within


def _bar_items(grid: Grid) -> tuple[np.ndarray, ...]:
    steps = bar_lines(grid.ts_step, grid.ts_index, grid.end)
    return _items(steps, _SLOT_BAR, np.zeros(len(steps)), np.full(len(steps), vocab.BAR))


def _meta_items(grid: Grid) -> tuple[np.ndarray, ...]:
    ts = _items(grid.ts_step, _SLOT_TS, np.zeros(len(grid.ts_step)), vocab.TIME_SIG.start + grid.ts_index)
    tempo = _items(
        grid.tempo_step, _SLOT_TEMPO, np.zeros(len(grid.tempo_step)), vocab.TEMPO.start + grid.tempo_index
    )
    return tuple(np.concatenate(pair) for pair in zip(ts, tempo, strict=True))


def _changed_per_track(track: np.ndarray, value: np.ndarray) -> np.ndarray:
    """For events in stream order: does `value` differ from the previous event's on the same track?"""
    by_track = np.argsort(track, kind="stable")
    t, v = track[by_track], value[by_track]
    changed_sorted = np.ones(len(t), bool)
    changed_sorted[1:] = (t[1:] != t[:-1]) | (v[1:] != v[:-1])
    changed = np.empty(len(t), bool)
    changed[by_track] = changed_sorted
    return changed


def _note_items(grid: Grid) -> tuple[np.ndarray, ...]:
    n = len(grid.onset)
    step = np.concatenate([grid.offset, grid.onset])
    slot = np.repeat([_SLOT_OFF, _SLOT_ON], n)
    track = np.concatenate([grid.track, grid.track]).astype(np.int64)
    pitch = np.concatenate([grid.pitch, grid.pitch]).astype(np.int64)
    order = np.lexsort((pitch, track, slot, step))
    step, slot, track, pitch = step[order], slot[order], track[order], pitch[order]
    note = np.concatenate([np.arange(n), np.arange(n)])[order]
    is_on = slot == _SLOT_ON

    tokens = np.full((2 * n, _WIDTH), -1, np.int64)
    previous_track = np.concatenate([[0], track[:-1]])
    tokens[:, 0] = np.where(track != previous_track, vocab.TRACK.start + track, -1)
    on = np.flatnonzero(is_on)
    program = grid.program_token[note[on]].astype(np.int64)
    velocity = grid.velocity_bin[note[on]].astype(np.int64)
    tokens[on, 1] = np.where(_changed_per_track(track[on], program), vocab.PROGRAM.start + program, -1)
    tokens[on, 2] = np.where(_changed_per_track(track[on], velocity), vocab.VELOCITY.start + velocity, -1)
    tokens[:, 3] = np.where(is_on, vocab.NOTE_ON.start, vocab.NOTE_OFF.start) + pitch
    # Slots keep note-offs before note-ons; the running index keeps (track, pitch) order within each.
    return step, np.asarray(slot, np.int64), np.arange(2 * n), tokens


def _shift_items(steps: np.ndarray) -> tuple[np.ndarray, ...]:
    """TimeShift tokens between consecutive occupied steps: as many 128s as fit, then the rest."""
    gap = np.diff(steps)
    count = -(-gap // vocab.MAX_SHIFT)
    first = np.cumsum(count) - count
    within = np.arange(count.sum()) - np.repeat(first, count)
    is_last = within == np.repeat(count - 1, count)
    size = np.where(is_last, np.repeat(gap - vocab.MAX_SHIFT * (count - 1), count), vocab.MAX_SHIFT)
    return _items(np.repeat(steps[:-1], count), _SLOT_SHIFT, within, vocab.TIME_SHIFT.start + size - 1)
