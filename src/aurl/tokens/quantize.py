"""The canonical form of a score on the tokenizer's 32nd-note grid: what tokens can say, exactly.

`decode(encode(score)) == quantize(score)` for every score. The rules, applied in this order:

- Times: onsets and offsets round to the nearest grid step (half a step rounds up); a note keeps
  at least one step.
- Drums: a percussion note's program becomes 0 (the Program_Drums token stands for the kit).
- Velocity: the middle velocity of its bin (vocab.BIN_TO_VELOCITY).
- Tracks: kept as they are when all are below 32; otherwise renumbered in order and tracks past the
  32nd merged into the last. Track names are not tokens, so the canonical score has default names.
- One pitch in one track sounds once at a time: of notes with the same track, pitch and onset the
  longest is kept, and a note is cut where the next one of its track and pitch starts.
- Tempo and time-signature maps: times round to the grid, the last change within a step wins, the
  first is at step 0 (120 bpm and 4/4 when the score has none there), a change that repeats the
  current value or comes after the last note ends is dropped. Tempi snap to the nearest bin;
  time signatures the vocabulary lacks become 4/4 (bar lines move, onsets never do).
- Key signatures and repairs are not tokens and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurl.errors import TokenizeError
from aurl.midi.score import KeySignatureMap, Score, TempoMap, TimeSignatureMap
from aurl.tokens import vocab

OUTPUT_TICKS_PER_BEAT = 480  # the resolution of decoded and canonical scores: 60 ticks per step
TICKS_PER_STEP = OUTPUT_TICKS_PER_BEAT // vocab.STEPS_PER_BEAT
MAX_STEPS = 2**16 * vocab.STEPS_PER_BEAT  # 65,536 beats (9 hours at 120 bpm) bounds every sequence


@dataclass(frozen=True)
class Grid:
    """A canonical score in grid steps, the form the encoder works on.

    Notes are in canonical order (onset, track, pitch). `program_token` is 0..127, or 128 for drums.
    `tempo_index` / `ts_index` are value indices of the Tempo / TimeSig token families.
    """

    onset: np.ndarray
    offset: np.ndarray
    pitch: np.ndarray
    velocity_bin: np.ndarray
    program_token: np.ndarray
    track: np.ndarray
    tempo_step: np.ndarray
    tempo_index: np.ndarray
    ts_step: np.ndarray
    ts_index: np.ndarray

    @property
    def end(self) -> int:
        """The step where the last note ends (0 without notes)."""
        return int(self.offset.max()) if len(self.offset) else 0


def to_steps(ticks: np.ndarray, ticks_per_beat: int) -> np.ndarray:
    """Round ticks to the nearest grid step (half a step rounds up), in exact integer arithmetic."""
    ticks = np.asarray(ticks, np.int64)
    return (ticks * (2 * vocab.STEPS_PER_BEAT) + ticks_per_beat) // (2 * ticks_per_beat)


def to_grid(score: Score) -> Grid:
    """Quantise `score` to the canonical grid form (see the module docstring for the rules).

    Raises:
        TokenizeError: when the score is longer than MAX_STEPS grid steps.
    """
    tpq = score.ticks_per_beat
    onset = to_steps(score.onset, tpq)
    offset = np.maximum(to_steps(score.offset, tpq), onset + 1)
    if len(offset) and (offset.max() > MAX_STEPS or onset.min() < 0):
        raise TokenizeError(
            f"score spans steps {onset.min()}..{offset.max()}, outside 0..{MAX_STEPS} "
            f"({MAX_STEPS // vocab.STEPS_PER_BEAT} beats); cut the piece or fix its times"
        )
    notes = _resolve_overlaps(
        onset,
        offset,
        np.clip(score.pitch, 0, vocab.N_PITCHES - 1).astype(np.int16),
        vocab.VELOCITY_TO_BIN[np.clip(score.velocity, 1, 127)],
        np.where(score.is_drum, vocab.DRUM_PROGRAM_TOKEN, np.clip(score.program, 0, 127)).astype(np.int16),
        _canonical_tracks(score.track),
    )
    end = int(notes[1].max()) if len(notes[1]) else 0
    tempo_step, tempo_index = _canonical_map(
        to_steps(score.tempos.ticks, tpq), vocab.tempo_index(score.tempos.bpm), vocab.DEFAULT_TEMPO_INDEX, end
    )
    ts_values = np.array(
        [
            _ts_index(n, d)
            for n, d in zip(score.time_signatures.numerator, score.time_signatures.denominator, strict=True)
        ],
        np.int64,
    )
    ts_step, ts_index = _canonical_map(
        to_steps(score.time_signatures.ticks, tpq), ts_values, vocab.DEFAULT_TS_INDEX, end
    )
    return Grid(*notes, tempo_step, tempo_index, ts_step, ts_index)  # type: ignore[call-arg]  # *notes: 6 columns


def _canonical_tracks(track: np.ndarray) -> np.ndarray:
    track = np.maximum(track, 0)
    if len(track) and track.max() >= vocab.N_TRACKS:
        track = np.unique(track, return_inverse=True)[1]
    return np.minimum(track, vocab.N_TRACKS - 1).astype(np.int16)


def _resolve_overlaps(onset, offset, pitch, velocity_bin, program_token, track):  # type: ignore[no-untyped-def]
    """Keep one sounding note per (track, pitch); return the note columns in canonical order."""
    order = np.lexsort((-offset, onset, pitch, track))
    onset, offset, pitch, velocity_bin, program_token, track = (
        a[order] for a in (onset, offset, pitch, velocity_bin, program_token, track)
    )
    same_voice = np.zeros(len(onset), bool)
    same_voice[1:] = (track[1:] == track[:-1]) & (pitch[1:] == pitch[:-1])
    keep = ~(same_voice & np.concatenate([[False], onset[1:] == onset[:-1]]))  # longest of equal onsets
    onset, offset, pitch, velocity_bin, program_token, track = (
        a[keep] for a in (onset, offset, pitch, velocity_bin, program_token, track)
    )
    next_same = np.zeros(len(onset), bool)
    next_same[:-1] = (track[:-1] == track[1:]) & (pitch[:-1] == pitch[1:])
    next_onset = np.concatenate([onset[1:], [0]])
    offset = np.where(next_same, np.minimum(offset, next_onset), offset)
    canonical = np.lexsort((pitch, track, onset))
    return tuple(a[canonical] for a in (onset, offset, pitch, velocity_bin, program_token, track))


def _ts_index(numerator: int, denominator: int) -> int:
    index = vocab.time_signature_index(int(numerator), int(denominator))
    return vocab.DEFAULT_TS_INDEX if index is None else index


def _canonical_map(
    steps: np.ndarray, values: np.ndarray, default: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical change list: last change per step wins, one at step 0, no repeats, none after `end`."""
    order = np.argsort(steps, kind="stable")
    steps, values = np.maximum(steps[order], 0), np.asarray(values, np.int64)[order]
    last_in_step = np.concatenate([steps[1:] != steps[:-1], [True]]) if len(steps) else np.zeros(0, bool)
    steps, values = steps[last_in_step], values[last_in_step]
    if not len(steps) or steps[0] > 0:
        steps, values = np.concatenate([[0], steps]), np.concatenate([[default], values])
    inside = steps <= end
    steps, values = steps[inside], values[inside]
    changes = np.concatenate([[True], values[1:] != values[:-1]])
    return steps[changes].astype(np.int64), values[changes].astype(np.int64)


def grid_to_score(grid: Grid) -> Score:
    """The canonical score of a grid, at OUTPUT_TICKS_PER_BEAT ticks per beat."""
    drum = grid.program_token == vocab.DRUM_PROGRAM_TOKEN
    return Score(
        ticks_per_beat=OUTPUT_TICKS_PER_BEAT,
        pitch=grid.pitch,
        onset=grid.onset * TICKS_PER_STEP,
        duration=(grid.offset - grid.onset) * TICKS_PER_STEP,
        velocity=vocab.BIN_TO_VELOCITY[grid.velocity_bin],
        program=np.where(drum, 0, grid.program_token),
        is_drum=drum,
        track=grid.track,
        tempos=TempoMap(grid.tempo_step * TICKS_PER_STEP, vocab.TEMPO_BPM[grid.tempo_index]),
        time_signatures=TimeSignatureMap(
            grid.ts_step * TICKS_PER_STEP,
            vocab.TS_NUMERATOR[grid.ts_index],
            vocab.TS_DENOMINATOR[grid.ts_index],
        ),
        key_signatures=KeySignatureMap(),
    )


def quantize(score: Score) -> Score:
    """The canonical score: `score` as the tokens see it (rules in the module docstring)."""
    return grid_to_score(to_grid(score))
