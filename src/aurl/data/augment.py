"""On-the-fly augmentations of a Score: transpose, tempo stretch, velocity scale, instrument remap, rhythm.

Each works on the note columns with numpy and returns a new Score; `augment` applies those the
config switches on, each with its probability, drawing everything from one numpy Generator, so a
given generator state always gives the same result. Encoding the result (`aurl.tokens.encode`)
quantises it again, so an augmented sequence is always canonical and grammatical.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aurl.config.data import DataConfig
from aurl.midi.score import Score, TempoMap
from aurl.tokens import vocab

_FAMILY_SIZE = 8  # General MIDI groups programs in families of 8 (pianos 0-7, organs 16-23, ...)
_OFF_BEAT = vocab.STEPS_PER_BEAT // 2  # an eighth note after the beat, in grid steps


def transpose(score: Score, semitones: int) -> Score:
    """Shift every pitched note by `semitones`; drums keep their pitches (they name instruments).

    Raises:
        ValueError: a pitched note would leave 0..127 (use `transpose_range` to pick a safe shift).
    """
    pitched = ~score.is_drum
    pitch = score.pitch.astype(np.int64) + np.where(pitched, semitones, 0)
    if len(pitch) and (pitch.min() < 0 or pitch.max() >= vocab.N_PITCHES):
        raise ValueError(f"transposing by {semitones} moves a note to pitch {pitch.min()}..{pitch.max()}")
    return score.with_notes(pitch=pitch.astype(np.int16))


def transpose_range(score: Score, semitones: int) -> tuple[int, int]:
    """The shifts in -semitones..semitones that keep every pitched note in 0..127, as (low, high)."""
    pitched = score.pitch[~score.is_drum]
    if not len(pitched):
        return 0, 0
    low = max(-semitones, -int(pitched.min()))
    high = min(semitones, vocab.N_PITCHES - 1 - int(pitched.max()))
    return low, high


def stretch_tempo(score: Score, factor: float) -> Score:
    """Multiply every tempo by `factor` (> 1 plays faster); notes stay where they are on the grid."""
    tempos = score.tempos
    if not len(tempos):
        tempos = TempoMap(np.zeros(1, np.int64), np.full(1, vocab.TEMPO_BPM[vocab.DEFAULT_TEMPO_INDEX]))
    return replace(score, tempos=TempoMap(tempos.ticks, tempos.bpm * factor))


def scale_velocity(score: Score, factor: float) -> Score:
    """Multiply every velocity by `factor`, rounded and clipped to 1..127."""
    velocity = np.clip(np.rint(score.velocity * factor), 1, 127).astype(np.int16)
    return score.with_notes(velocity=velocity)


def remap_instruments(score: Score, offsets: np.ndarray) -> Score:
    """Give each pitched program another of its General MIDI family; drums keep theirs.

    Args:
        score: the score.
        offsets: (128,) ints in 0..7: program p becomes the `offsets[p]`-th of p's family.
    """
    program = score.program.astype(np.int64)
    family_start = program - program % _FAMILY_SIZE
    mapped = family_start + np.asarray(offsets, np.int64)[np.clip(program, 0, 127)]
    return score.with_notes(program=np.where(score.is_drum, score.program, mapped).astype(np.int16))


def jitter_onsets(score: Score, shift_steps: np.ndarray) -> Score:
    """Move each note's onset by `shift_steps` grid steps, keeping its offset (a note keeps >= 1 step).

    Args:
        score: the score.
        shift_steps: (N,) signed grid steps per note; onsets stop at 0.
    """
    step_ticks = score.ticks_per_beat / vocab.STEPS_PER_BEAT
    offset = score.offset
    onset = np.maximum(score.onset + np.rint(np.asarray(shift_steps) * step_ticks).astype(np.int64), 0)
    duration = np.maximum(offset - onset, int(round(step_ticks)))
    return score.with_notes(onset=onset, duration=duration)


def swing(score: Score, delay_steps: int) -> Score:
    """Delay every onset and offset on an off-beat eighth note by `delay_steps` grid steps.

    Beats are quarter notes counted from the start of the piece; `delay_steps` below 4 keeps a
    swung note before the next beat (config allows 1..3).
    """
    step_ticks = score.ticks_per_beat / vocab.STEPS_PER_BEAT

    def swung(ticks: np.ndarray) -> np.ndarray:
        off_beat = np.rint(ticks / step_ticks).astype(np.int64) % vocab.STEPS_PER_BEAT == _OFF_BEAT
        return ticks + np.where(off_beat, int(round(delay_steps * step_ticks)), 0)

    onset, offset = swung(score.onset), swung(score.offset)
    duration = np.maximum(offset - onset, int(round(step_ticks)))
    return score.with_notes(onset=onset, duration=duration)


def augment(score: Score, config: DataConfig, rng: np.random.Generator) -> Score:
    """Apply each augmentation the config enables with its probability, in a fixed order.

    The generator is consumed in the same order whatever is applied: one draw deciding each
    augmentation, then that augmentation's own draws when it applies. Equal generator states give
    equal results.

    Args:
        score: the piece (not modified).
        config: probabilities and ranges (`DataConfig.*_prob`, `*_range`, `*_steps`, ...).
        rng: the source of randomness for this sequence.
    """
    if rng.random() < config.transpose_prob:
        low, high = transpose_range(score, config.transpose_semitones)
        score = transpose(score, int(rng.integers(low, high + 1)))
    if rng.random() < config.tempo_prob:
        score = stretch_tempo(score, _log_uniform(rng, config.tempo_range))
    if rng.random() < config.velocity_prob:
        score = scale_velocity(score, _log_uniform(rng, config.velocity_range))
    if rng.random() < config.instrument_prob:
        score = remap_instruments(score, rng.integers(0, _FAMILY_SIZE, vocab.N_PROGRAMS))
    if rng.random() < config.jitter_prob:
        score = jitter_onsets(score, _jitter(rng, score.n_notes, config))
    if rng.random() < config.swing_prob:
        score = swing(score, int(rng.integers(1, config.swing_steps + 1)))
    return score


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _jitter(rng: np.random.Generator, n: int, config: DataConfig) -> np.ndarray:
    """(n,) signed shifts: 0 for most notes, +-1..jitter_steps for a jitter_note_prob share of them."""
    moved = rng.random(n) < config.jitter_note_prob
    size = rng.integers(1, config.jitter_steps + 1, n)
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    return np.where(moved, size * sign, 0)
