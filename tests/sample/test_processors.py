"""Logits processors: validated when built, and the properties each one promises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.config import SampleConfig
from aurl.errors import ConfigError
from aurl.sample.processors import (
    ModelTiming,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    apply_processors,
    build_processors,
)
from aurl.tokens.vocab import TIME_SHIFT, VOCAB_SIZE

NEG_INF = float("-inf")


@st.composite
def logit_rows(draw, max_vocab: int = 40) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(B, V) float32 logits with some -inf (masked) entries; every row keeps one finite entry."""
    b = draw(st.integers(1, 4))
    v = draw(st.integers(2, max_vocab))
    values = draw(st.lists(st.floats(-30, 30, allow_nan=False, width=32), min_size=b * v, max_size=b * v))
    masked = draw(st.lists(st.booleans(), min_size=b * v, max_size=b * v))
    logits = torch.tensor(values, dtype=torch.float32).view(b, v)
    mask = torch.tensor(masked).view(b, v)
    mask[:, 0] = False
    return logits.masked_fill(mask, NEG_INF)


HISTORY = torch.zeros(1, 0, dtype=torch.long)


def history_for(logits: torch.Tensor) -> torch.Tensor:
    return HISTORY.expand(logits.shape[0], 0)


@given(logit_rows(), st.integers(1, 50))
@settings(max_examples=80, deadline=None)
def test_top_k_leaves_at_most_k_finite_and_the_largest(logits: torch.Tensor, k: int) -> None:
    out = TopK(k)(logits, history_for(logits))
    for row_in, row_out in zip(logits, out, strict=True):
        finite_in, kept = torch.isfinite(row_in), torch.isfinite(row_out)
        assert int(kept.sum()) == min(k, int(finite_in.sum()))
        assert torch.equal(row_out[kept], row_in[kept])  # kept values are unchanged
        if (~kept & finite_in).any():  # nothing dropped beats anything kept
            assert row_in[~kept & finite_in].max() <= row_in[kept].min()


@given(logit_rows(), st.floats(0.01, 1.0))
@settings(max_examples=80, deadline=None)
def test_top_p_keeps_the_smallest_set_reaching_p(logits: torch.Tensor, p: float) -> None:
    out = TopP(p)(logits, history_for(logits))
    probs = logits.softmax(-1)
    for row_probs, row_out in zip(probs, out, strict=True):
        kept = torch.isfinite(row_out)
        mass = float(row_probs[kept].sum())
        assert mass >= p - 1e-5 or math.isclose(mass, 1.0, abs_tol=1e-5)
        smallest = float(row_probs[kept].min())
        assert mass - smallest < p + 1e-5, "a smaller set already reaches p"
        if (~kept).any():
            assert float(row_probs[~kept].max()) <= smallest + 1e-7  # the likeliest ones are kept


@given(logit_rows(), st.floats(0.05, 20.0))
@settings(max_examples=80, deadline=None)
def test_temperature_keeps_the_argmax_and_the_mask(logits: torch.Tensor, t: float) -> None:
    out = Temperature(t)(logits, history_for(logits))
    assert torch.equal(out.argmax(-1), logits.argmax(-1))
    assert torch.equal(torch.isfinite(out), torch.isfinite(logits))


def test_temperature_sharpens_below_one_and_flattens_above() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    top = logits.softmax(-1)[0, 0]
    assert Temperature(0.5)(logits, HISTORY).softmax(-1)[0, 0] > top
    assert Temperature(2.0)(logits, HISTORY).softmax(-1)[0, 0] < top


def test_repetition_penalty_lowers_seen_tokens_only() -> None:
    logits = torch.tensor([[2.0, -1.0, 3.0, NEG_INF]])
    history = torch.tensor([[0, 1, 1, 3]])
    out = RepetitionPenalty(2.0, window=64)(logits, history)
    assert out.tolist() == [[1.0, -2.0, 3.0, NEG_INF]]
    assert RepetitionPenalty(2.0, window=1)(logits, history)[0, 0] == 2.0  # token 0 is out of the window


@given(logit_rows())
@settings(max_examples=40, deadline=None)
def test_processors_never_change_their_input(logits: torch.Tensor) -> None:
    before = logits.clone()
    history = torch.zeros(logits.shape[0], 3, dtype=torch.long)
    processors = [RepetitionPenalty(1.5), Temperature(0.7), TopK(3), TopP(0.8)]
    out = apply_processors(processors, logits, history)
    assert torch.equal(logits, before)
    assert torch.isfinite(out).any(-1).all()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Temperature(0.0),
        lambda: Temperature(-1.0),
        lambda: Temperature(float("nan")),
        lambda: TopK(0),
        lambda: TopK(2.5),
        lambda: TopP(0.0),
        lambda: TopP(1.5),
        lambda: RepetitionPenalty(0.5),
        lambda: RepetitionPenalty(1.2, window=0),
    ],
    ids=["t0", "t-1", "tnan", "k0", "k2.5", "p0", "p1.5", "rep0.5", "window0"],
)
def test_bad_arguments_fail_when_built(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as error:
        build()
    assert "\n" not in str(error.value)


def test_build_processors_follows_the_settings() -> None:
    assert build_processors(SampleConfig()) == []
    built = build_processors(SampleConfig(temperature=0.9, top_k=8, top_p=0.95, repetition_penalty=1.1))
    assert [type(p).__name__ for p in built] == ["RepetitionPenalty", "Temperature", "TopK", "TopP"]
    assert np.isclose(built[1].value, 0.9) and built[2].k == 8 and np.isclose(built[3].p, 0.95)


TIMING = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
TIMING[TIME_SHIFT.start : TIME_SHIFT.stop] = True


@st.composite
def vocab_logits(draw) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """(B, VOCAB_SIZE) logits with a random mask; a row may lack time shifts or everything else."""
    b = draw(st.integers(1, 3))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    logits = torch.randn(b, VOCAB_SIZE, generator=generator) * draw(st.floats(0.5, 8.0))
    masked = torch.rand(b, VOCAB_SIZE, generator=generator) < draw(st.floats(0.0, 0.99))
    keep = draw(st.sampled_from(["both", "timing only", "others only"]))
    if keep != "both":
        masked |= ~TIMING if keep == "timing only" else TIMING
    masked[:, TIME_SHIFT.start if keep == "timing only" else 0] = False  # one finite entry per row
    return logits.masked_fill(masked, NEG_INF)


@given(vocab_logits(), st.floats(0.3, 1.5), st.integers(0, 20), st.floats(0.05, 1.0))
@settings(max_examples=60, deadline=None)
def test_model_timing_gives_the_time_shifts_the_models_proportions(
    logits: torch.Tensor, t: float, k: int, p: float
) -> None:
    inner = [Temperature(t), *([TopK(k)] if k else []), TopP(p)]
    history = torch.zeros(logits.shape[0], 0, dtype=torch.long)
    out = ModelTiming(inner)(logits, history).softmax(-1)
    shaped = apply_processors(inner, logits, history).softmax(-1)
    # Everything but the time shifts as the processors have it, and so the time shifts' share too ...
    assert torch.allclose(out[:, ~TIMING], shaped[:, ~TIMING], atol=1e-6)
    share = shaped[:, TIMING].sum(-1, keepdim=True)
    assert torch.allclose(out[:, TIMING].sum(-1, keepdim=True), share, atol=1e-5)
    # ... shared among them as the model shares it, masked ones at 0.
    model = logits.masked_fill(~TIMING, NEG_INF).softmax(-1)[:, TIMING].nan_to_num()
    assert torch.allclose(out[:, TIMING], model * share, atol=1e-6)
    assert torch.all(out[~torch.isfinite(logits)] == 0)


def test_model_timing_keeps_a_rare_duration_that_truncation_drops() -> None:
    logits = torch.full((1, VOCAB_SIZE), NEG_INF)
    logits[0, TIME_SHIFT.start : TIME_SHIFT.start + 3] = torch.tensor([2.0, 1.0, -1.0])  # a rare short shift
    logits[0, VOCAB_SIZE - 2 :] = torch.tensor([1.5, -2.0])
    history = torch.zeros(1, 0, dtype=torch.long)
    inner = [Temperature(0.8), TopP(0.9)]
    shaped = apply_processors(inner, logits, history).softmax(-1)
    kept = ModelTiming(inner)(logits, history).softmax(-1)
    rare = TIME_SHIFT.start + 2
    assert shaped[0, rare] == 0 < kept[0, rare]
    assert kept[0, VOCAB_SIZE - 1] == 0  # the unlikely other token is still cut


def test_build_processors_wraps_them_for_model_timing() -> None:
    assert build_processors(SampleConfig(timing="model")) == []  # nothing to keep the time shifts from
    (built,) = build_processors(SampleConfig(timing="model", temperature=0.9, top_p=0.9))
    assert isinstance(built, ModelTiming)
    assert [type(p).__name__ for p in built.inner] == ["Temperature", "TopP"]
