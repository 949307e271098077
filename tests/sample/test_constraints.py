"""Constraints as masks: every output follows the grammar and the constraints, and no row is stuck."""

from __future__ import annotations

import numpy as np
import pytest

from aurl.config import SampleConfig
from aurl.errors import ConfigError
from aurl.midi import Score
from aurl.midi.validate import max_polyphony
from aurl.sample import (
    ConstraintSet,
    FixedTimeSignature,
    MaxPolyphony,
    PitchRange,
    Programs,
    Scale,
    StopRule,
    TorchDecoder,
    build_constraints,
    generate,
)
from aurl.sample.pitches import parse_key
from aurl.tokens import GrammarState, count_invalid, decode, vocab
from sample.builders import BigramDecoder

D_MINOR = parse_key("D minor", None)


def check_score(score: Score, config: SampleConfig) -> None:
    """Assert that every note and map entry of `score` obeys `config`'s constraints."""
    pitched = ~score.is_drum
    if config.key is not None or config.scale is not None:
        classes = parse_key(config.key, config.scale)
        assert classes is not None
        assert set((score.pitch[pitched] % 12).tolist()) <= classes
    if config.pitch_range is not None:
        low, high = (int(x) for x in config.pitch_range.split("-"))
        assert np.all((score.pitch[pitched] >= low) & (score.pitch[pitched] <= high))
    if config.max_polyphony is not None:
        assert max_polyphony(score) <= config.max_polyphony
    if config.max_voice_polyphony is not None:
        for track in np.unique(score.track):
            assert max_polyphony(score.select(score.track == track)) <= config.max_voice_polyphony
    if config.tempo is not None:
        assert np.allclose(score.tempos.bpm, vocab.TEMPO_BPM[vocab.tempo_index(config.tempo)])
    if config.time_signature is not None:
        n, d = (int(x) for x in config.time_signature.split("/"))
        assert set(score.time_signatures.numerator.tolist()) == {n}
        assert set(score.time_signatures.denominator.tolist()) == {d}
    if config.programs is not None:
        allowed = set(config.programs)
        assert set(score.program[pitched].tolist()) <= allowed
        assert not score.is_drum.any() or 128 in allowed


RANDOM_CONFIGS = [
    {},
    {"key": "D minor"},
    {"scale": "C", "pitch_range": "60-72"},  # a one-note scale: C4 and C5 only
    {"pitch_range": "64-64", "max_polyphony": 1},
    {"max_polyphony": 2, "tempo": 66, "time_signature": "3/4"},
    {"programs": (128,)},  # drums only: the key does not apply to them
    {"programs": (128,), "key": "F# major", "pitch_range": "30-40"},
    {"programs": (40, 41), "key": "Bb major", "pitch_range": "50-60", "time_signature": "7/8"},
    {"scale": "chromatic", "max_polyphony": 1, "time_signature": "5/16", "tempo": 300},
    {"max_voice_polyphony": 1},  # every track a monophonic voice, as in a chorale
    {"max_voice_polyphony": 2, "max_polyphony": 3, "key": "A minor"},
]


@pytest.mark.parametrize(
    "config", RANDOM_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "none"
)
def test_random_models_never_break_a_rule_or_get_stuck(config: dict) -> None:
    """Random bigram models (8 seeds, 4 rows each) under each constraint set: the mask never
    empties (ConstraintSet asserts it), nothing is skipped when decoding, every rule holds."""
    settings = SampleConfig(**config)
    constraints = build_constraints(settings)
    for seed in range(8):
        decoder = BigramDecoder(seed, scale=4.0)
        pieces = generate(decoder, num=4, max_tokens=128, constraints=constraints, seed=seed)
        for piece in pieces:
            assert count_invalid(piece.ids) == 0
            score = decode(piece.ids)
            assert score.repairs == () or piece.ended_by == "budget"
            check_score(score, settings)


def test_every_key_constraint_holds_on_50_samples(decoder: TorchDecoder) -> None:
    settings = SampleConfig(key="D minor")
    pieces = generate(
        decoder,
        num=50,
        max_tokens=200,
        constraints=build_constraints(settings),
        seed=3,
        stop=StopRule(bars=4),
    )
    notes = 0
    for piece in pieces:
        assert count_invalid(piece.ids) == 0
        score = decode(piece.ids)
        check_score(score, settings)
        notes += score.n_notes
    assert notes > 200  # the rule held over real music, not over empty pieces


def test_the_trained_model_strays_from_the_key_without_the_constraint(decoder: TorchDecoder) -> None:
    """The key test above means something: unconstrained, the same model writes notes outside D minor."""
    pieces = generate(decoder, num=10, max_tokens=200, seed=3, stop=StopRule(bars=4))
    classes = np.concatenate([decode(p.ids).pitch % 12 for p in pieces])
    assert not set(classes.tolist()) <= D_MINOR


@pytest.mark.parametrize(
    "config",
    [
        {"scale": ""},
        {"pitch_range": "0-128"},
        {"pitch_range": "C9-C10"},
        {"key": "X minor"},
        {"key": "C major", "pitch_range": "61-61"},  # C sharp: not in C major
        {"time_signature": "3/5"},
        {"tempo": 5000},
        {"programs": (200,)},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_impossible_constraints_fail_when_built(config: dict) -> None:
    with pytest.raises(ConfigError) as error:
        build_constraints(SampleConfig(**config))
    assert "\n" not in str(error.value)


def test_polyphony_below_one_is_refused() -> None:
    with pytest.raises(ConfigError):
        MaxPolyphony(0)
    with pytest.raises(ValueError):  # pydantic refuses it in the settings already
        SampleConfig(max_polyphony=0)


def _walk(tokens: list[str]) -> GrammarState:
    state = GrammarState()
    for name in ["BOS", "Bar", "TimeSig_4/4", "Tempo_120.0", *tokens]:
        assert state.advance(vocab.token_id(name)), name
    return state


def test_a_fixed_metre_forbids_early_bar_lines() -> None:
    state = _walk(["Program_0", "Velocity_90", "NoteOn_60", "TimeShift_8"])
    assert state.mask()[vocab.BAR]  # the grammar allows an early bar line (with a metre change)...
    fixed = ConstraintSet([FixedTimeSignature(vocab.time_signature_index(4, 4))])
    assert not fixed.mask(state)[vocab.BAR]  # ...which a fixed metre cannot follow
    other = ConstraintSet([FixedTimeSignature(vocab.time_signature_index(3, 4))])
    assert other.mask(state)[vocab.BAR]  # a change to the fixed metre is still possible


def test_prefixes_that_lead_nowhere_are_masked() -> None:
    # C4 is sounding on track 0 and the range allows only C4: no new note can start on track 0,
    # so its Velocity and Program tokens (which must precede a NoteOn) are masked.
    state = _walk(["Program_0", "Velocity_90", "NoteOn_60", "TimeShift_8"])
    mask = ConstraintSet([PitchRange(60, 60)]).mask(state)
    velocities = mask[vocab.VELOCITY.start : vocab.VELOCITY.stop]
    assert not velocities.any() and not mask[vocab.NOTE_ON.start : vocab.NOTE_ON.stop].any()
    assert mask[vocab.NOTE_OFF.id(60)] and mask[vocab.TRACK.id(1)]  # end it, or start C4 elsewhere
    drums_only = ConstraintSet([Programs([128])]).mask(state)
    assert not drums_only[vocab.NOTE_ON.start : vocab.NOTE_ON.stop].any()  # track 0 plays program 0
    assert drums_only[vocab.PROGRAM.id(128)] and not drums_only[vocab.PROGRAM.id(1)]


def test_a_scale_exempts_drums() -> None:
    state = _walk(["Program_Drums", "Velocity_90"])
    mask = ConstraintSet([Scale(frozenset({0}))]).mask(state)
    assert mask[vocab.NOTE_ON.start : vocab.NOTE_ON.stop].all()


def test_closing_ends_the_sounding_notes() -> None:
    state = _walk(["Program_0", "Velocity_90", "NoteOn_60", "NoteOn_64", "TimeShift_8"])
    mask = ConstraintSet().mask(state, closing=True)
    allowed = {vocab.token_name(int(i)) for i in np.flatnonzero(mask)}
    assert allowed == {"NoteOff_60"}  # the lowest first, as the grammar orders note-offs
    after_on = _walk(["Program_0", "Velocity_90", "NoteOn_60"])
    shifts = ConstraintSet().mask(after_on, closing=True)
    assert shifts[vocab.TIME_SHIFT.start : vocab.TIME_SHIFT.stop].any()
    assert not shifts[vocab.NOTE_ON.start : vocab.NOTE_ON.stop].any()


def test_constraints_describe_themselves() -> None:
    constraints = build_constraints(
        SampleConfig(
            key="D minor",
            pitch_range="C3-C6",
            max_polyphony=4,
            tempo=90,
            time_signature="3/4",
            programs=(0, 128),
        )
    )
    text = " | ".join(constraints.describe())
    for part in (
        "scale",
        "pitch range 48-84",
        "max polyphony 4",
        "tempo 89.9 bpm",
        "3/4",
        "programs [0, 128]",
    ):
        assert part in text
