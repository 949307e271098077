"""Augmentations in Score space: ranges kept, drums untouched, deterministic, always valid tokens."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.config import DataConfig
from aurl.data.augment import (
    augment,
    jitter_onsets,
    remap_instruments,
    scale_velocity,
    stretch_tempo,
    swing,
    transpose,
    transpose_range,
)
from aurl.data.scores import read_score
from aurl.midi import read_midi
from aurl.midi.score import Score
from aurl.tokens import encode, is_valid, quantize
from aurl.tokens.quantize import TICKS_PER_STEP
from strategies import scores

EVERYTHING = DataConfig(
    transpose_prob=1.0,
    transpose_semitones=12,
    tempo_prob=1.0,
    velocity_prob=1.0,
    instrument_prob=1.0,
    jitter_prob=1.0,
    jitter_note_prob=0.5,
    jitter_steps=2,
    swing_prob=1.0,
    swing_steps=3,
)
NOTHING = DataConfig(
    transpose_prob=0.0,
    tempo_prob=0.0,
    velocity_prob=0.0,
    instrument_prob=0.0,
    jitter_prob=0.0,
    swing_prob=0.0,
)


@pytest.fixture(scope="module")
def chorales(chorale_paths: list) -> list[Score]:
    """Ten chorales as the data pipeline sees them: decoded from their tokens."""
    return [read_score(encode(read_midi(path))) for path in chorale_paths]


def with_drums(score: Score) -> Score:
    """The score with every third note on the drum channel."""
    return score.with_notes(is_drum=np.arange(score.n_notes) % 3 == 0)


def test_every_augmentation_at_once_gives_valid_tokens_on_chorales(chorales: list[Score]) -> None:
    for i, score in enumerate(chorales):
        for seed in range(3):
            augmented = augment(with_drums(score), EVERYTHING, np.random.default_rng([i, seed]))
            ids = encode(augmented)
            assert is_valid(ids), f"chorale {i} seed {seed}"
            assert augmented.pitch.min() >= 0 and augmented.pitch.max() <= 127


@settings(max_examples=60, deadline=None)
@given(score=scores(max_notes=40), seed=st.integers(0, 2**32 - 1))
def test_every_augmentation_keeps_any_score_encodable_and_valid(score: Score, seed: int) -> None:
    canonical = quantize(score)
    augmented = augment(canonical, EVERYTHING, np.random.default_rng(seed))
    assert is_valid(encode(augmented))
    drums = canonical.is_drum
    assert np.array_equal(augmented.is_drum, drums)
    assert np.array_equal(augmented.pitch[drums], canonical.pitch[drums]), "drum pitches name instruments"
    assert np.array_equal(augmented.program[drums], canonical.program[drums])


@settings(max_examples=80, deadline=None)
@given(score=scores(max_notes=30), semitones=st.integers(0, 24), seed=st.integers(0, 2**32 - 1))
def test_transpose_keeps_pitched_notes_in_range_and_drums_in_place(
    score: Score, semitones: int, seed: int
) -> None:
    low, high = transpose_range(score, semitones)
    assert -semitones <= low <= 0 <= high <= semitones
    shift = int(np.random.default_rng(seed).integers(low, high + 1))
    moved = transpose(score, shift)
    pitched = ~score.is_drum
    assert np.array_equal(moved.pitch[pitched], score.pitch[pitched] + shift)
    assert np.array_equal(moved.pitch[~pitched], score.pitch[~pitched])
    assert moved.pitch.min(initial=0) >= 0 and moved.pitch.max(initial=0) <= 127


def test_transpose_range_at_the_edges_of_the_keyboard() -> None:
    score = Score.from_notes(480, {"pitch": [2, 120], "onset": [0, 0], "duration": [480, 480]})
    assert transpose_range(score, 12) == (-2, 7)
    drums_low = score.with_notes(is_drum=np.array([True, False]))
    assert transpose_range(drums_low, 12) == (-12, 7), "a drum note at pitch 2 does not limit the range"
    with pytest.raises(ValueError, match="moves a note"):
        transpose(score, 8)


def test_tempo_velocity_and_instruments(chorales: list[Score]) -> None:
    score = with_drums(chorales[0]).with_notes(program=np.full(chorales[0].n_notes, 17, np.int16))
    assert np.allclose(stretch_tempo(score, 1.5).tempos.bpm, score.tempos.bpm * 1.5)
    loud = scale_velocity(score, 10.0)
    assert loud.velocity.max() == 127 and loud.velocity.min() >= 1
    soft = scale_velocity(score, 0.001)
    assert soft.velocity.min() == 1
    offsets = np.full(128, 5)
    remapped = remap_instruments(score, offsets)
    pitched = ~score.is_drum
    assert set(remapped.program[pitched].tolist()) == {21}, "organ 17 becomes organ 16 + 5 (same family)"
    assert np.array_equal(remapped.program[~pitched], score.program[~pitched])


def test_jitter_moves_only_the_chosen_notes_by_whole_steps(chorales: list[Score]) -> None:
    score = chorales[1]
    shift = np.zeros(score.n_notes, np.int64)
    shift[::5] = np.where(np.arange(len(shift[::5])) % 2, 2, -1)
    moved = jitter_onsets(score, shift)
    expected = np.maximum(score.onset + shift * TICKS_PER_STEP, 0)
    assert np.array_equal(moved.onset, expected)
    assert np.array_equal(moved.offset, np.maximum(score.offset, moved.onset + TICKS_PER_STEP))


def test_swing_delays_only_off_beat_eighths() -> None:
    step = TICKS_PER_STEP
    onsets = np.array([0, 4, 8, 12, 6]) * step  # on the beat, off-beat, beat, off-beat, a sixteenth
    score = Score.from_notes(
        480, {"pitch": [60, 62, 64, 65, 67], "onset": onsets, "duration": [2 * step] * 5}
    )
    swung = swing(score, 2)
    assert (swung.onset // step).tolist() == [0, 6, 8, 14, 6]
    # An end on the beat stays put, so a swung note gets shorter (never below one step).
    assert (swung.offset // step).tolist() == [2, 7, 10, 15, 8]
    long_notes = swing(score.with_notes(duration=np.full(5, 4 * step)), 1)
    assert (long_notes.offset // step).tolist() == [5, 8, 13, 16, 10], "off-beat ends move too"


def test_augment_is_deterministic_from_its_generator(chorales: list[Score]) -> None:
    score = with_drums(chorales[2])
    first = augment(score, EVERYTHING, np.random.default_rng([7, 1, 2]))
    again = augment(score, EVERYTHING, np.random.default_rng([7, 1, 2]))
    other = augment(score, EVERYTHING, np.random.default_rng([7, 1, 3]))
    assert first == again
    assert first != other


def test_default_config_applies_each_augmentation_at_its_rate(chorales: list[Score]) -> None:
    config = DataConfig()
    score = chorales[3]
    transposed = sum(
        not np.array_equal(augment(score, config, np.random.default_rng(seed)).pitch, score.pitch)
        for seed in range(200)
    )
    # transpose_prob 0.5, and a drawn shift of 0 (1 in 13) leaves the pitches alone
    assert 70 <= transposed <= 115


def test_nothing_enabled_returns_the_score_itself(chorales: list[Score]) -> None:
    assert augment(chorales[0], NOTHING, np.random.default_rng(0)) is chorales[0]
