"""Cached token ids -> Score, vectorised, and the slice of a score that one training window needs.

`aurl.tokens.decode` is total (it reads any sequence, skipping what breaks the grammar) and walks
the tokens in Python: ~3 ms for a chorale, ~250 ms for a 75,000-token piece. The cache holds only
what `encode` wrote, so the data pipeline reads it with array operations instead (~0.2 ms a
chorale) and falls back to `decode` for a sequence that is not shaped as `encode` writes it.
"""

from __future__ import annotations

import numpy as np

from aurl.midi.score import Score
from aurl.tokens import decode, vocab
from aurl.tokens.quantize import TICKS_PER_STEP, Grid, grid_to_score

_ADVANCE = vocab.time_advance_table()


def token_steps(ids: np.ndarray) -> np.ndarray:
    """(T,) int64: the grid step each token sits at (a TimeShift sits at the step it leaves)."""
    advance = _ADVANCE[np.asarray(ids, np.int64)]
    return np.cumsum(advance) - advance


def read_score(ids: np.ndarray) -> Score:
    """The score that grammatical token ids describe, equal to `aurl.tokens.decode(ids)`.

    Args:
        ids: (T,) token ids as `encode` writes them (BOS ... EOS).

    Returns:
        The canonical score at 480 ticks per beat. Ids whose note events do not pair up (not
        written by `encode`) are handed to `decode`, which is slower but reads anything.
    """
    ids = np.asarray(ids, np.int64)
    step = token_steps(ids)
    track = _current_track(ids)
    notes = _paired_notes(ids, track)
    if notes is None:
        return decode(ids)
    on, off = notes
    program = _last_value_per_track(ids, track, vocab.PROGRAM, on)
    velocity = _last_value_per_track(ids, track, vocab.VELOCITY, on)
    if (program < 0).any() or (velocity < 0).any():
        return decode(ids)
    pitch = ids[on] - vocab.NOTE_ON.start
    order = np.lexsort((pitch, track[on], step[on]))
    tempo = np.flatnonzero(vocab.TEMPO.contains(ids))
    ts = np.flatnonzero(vocab.TIME_SIG.contains(ids))
    grid = Grid(
        step[on][order], step[off][order], pitch[order].astype(np.int16), velocity[order].astype(np.int16),
        program[order].astype(np.int16), track[on][order].astype(np.int16),
        step[tempo], ids[tempo] - vocab.TEMPO.start, step[ts], ids[ts] - vocab.TIME_SIG.start,
    )  # fmt: skip
    return grid_to_score(grid)


def _current_track(ids: np.ndarray) -> np.ndarray:
    """(T,) the voice each token belongs to: the last Track token at or before it, else 0."""
    is_track = vocab.TRACK.contains(ids)
    last = np.maximum.accumulate(np.where(is_track, np.arange(len(ids)), -1))
    return np.where(last >= 0, ids[np.maximum(last, 0)] - vocab.TRACK.start, 0)


def _paired_notes(ids: np.ndarray, track: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions of each note's NoteOn and its NoteOff, or None when they do not alternate."""
    is_on = vocab.NOTE_ON.contains(ids)
    events = np.flatnonzero(is_on | vocab.NOTE_OFF.contains(ids))
    pitch = np.where(is_on[events], ids[events] - vocab.NOTE_ON.start, ids[events] - vocab.NOTE_OFF.start)
    voice = track[events] * vocab.N_PITCHES + pitch
    order = np.lexsort((events, voice))  # per (track, pitch), in stream order: on, off, on, off, ...
    events, voice = events[order], voice[order]
    if len(events) % 2:
        return None
    on, off = events[0::2], events[1::2]
    if not (is_on[on].all() and not is_on[off].any() and np.array_equal(voice[0::2], voice[1::2])):
        return None
    return on, off


def _last_value_per_track(
    ids: np.ndarray, track: np.ndarray, family: vocab.Family, at: np.ndarray
) -> np.ndarray:
    """For each position in `at`: the last `family` value set on the same track before it (-1: none)."""
    is_setter = family.contains(ids)
    wanted = np.zeros(len(ids), bool)
    wanted[at] = True
    index = np.flatnonzero(is_setter | wanted)
    index = index[np.lexsort((index, track[index]))]  # grouped by track, stream order inside
    rank = np.arange(len(index))
    last = np.maximum.accumulate(np.where(is_setter[index], rank, -1))
    source = index[np.maximum(last, 0)]
    # The running maximum crosses track groups; a setter of another track does not count.
    value = np.where((last >= 0) & (track[source] == track[index]), ids[source] - family.start, -1)
    out = np.full(len(ids), -1, np.int64)
    out[index] = value
    return out[at]


def window_notes(score: Score, start_step: int, stop_step: int | None) -> Score:
    """The notes that a token window from `start_step` to `stop_step` needs, at their original times.

    Encoding the returned score writes, at every step in [start_step, stop_step), the same tokens as
    encoding the whole score, at a cost that grows with the window rather than the piece. Kept:

    - every note with an event in the window (a NoteOff at `start_step` is in it, after its Bar);
    - per track, the last note to start before `start_step`: its instrument and velocity decide
      whether the window's first note on that track repeats a Program or Velocity token;
    - the note of the last event before `start_step`, which decides whether a Track token is repeated;
    - the notes at the first onset at or after `stop_step`, so that the bar line at `stop_step` and the
      time shifts up to it are written as in the whole piece.

    Args:
        score: a canonical score (as `read_score` returns).
        start_step: first grid step (32nd note) of the window.
        stop_step: the window ends before this step; None: at the end of the piece.
    """
    onset = score.onset // TICKS_PER_STEP
    offset = score.offset // TICKS_PER_STEP
    keep = offset >= start_step
    if stop_step is not None:
        keep &= onset < stop_step
        later = onset >= stop_step
        if later.any():
            keep |= onset == onset[later].min()
    before = np.flatnonzero(onset < start_step)
    if len(before):
        order = before[np.lexsort((score.pitch[before], onset[before], score.track[before]))]
        last_of_track = np.concatenate([score.track[order][1:] != score.track[order][:-1], [True]])
        keep[order[last_of_track]] = True
        keep[_last_event_note(onset, offset, score, start_step)] = True
    return score.select(keep)


def _last_event_note(onset: np.ndarray, offset: np.ndarray, score: Score, start_step: int) -> int:
    """The note of the last NoteOn or NoteOff written before `start_step` (events in stream order)."""
    n = score.n_notes
    note = np.concatenate([np.arange(n), np.arange(n)])
    step = np.concatenate([onset, offset])
    is_on = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])  # offs come first in a step
    track, pitch = np.tile(score.track, 2), np.tile(score.pitch, 2)
    early = np.flatnonzero(step < start_step)
    last = early[np.lexsort((pitch[early], track[early], is_on[early], step[early]))[-1]]
    return int(note[last])
