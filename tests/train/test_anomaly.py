"""The anomaly detector: each of the twelve kinds fires on the trouble it names, and only there."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.config import TrainConfig
from aurl.train.anomaly import COOLDOWN, KINDS, RECOVER, SUGGESTIONS, AnomalyDetector, StepStats

CONFIG = TrainConfig(anomaly_no_progress=50, warmup_steps=0)


def healthy(step: int, **changes: object) -> StepStats:
    """A step of a run that learns steadily: the loss falls slowly, everything else is calm."""
    values = dict(
        step=step, loss=4.0 - 0.01 * step, grad_norm=1.0, tokens_per_s=1000.0, wait_s=0.01, memory_bytes=10**9
    )
    return StepStats(**{**values, **changes})  # type: ignore[arg-type]


def run(detector: AnomalyDetector, stats: list[StepStats]) -> list[str]:
    return [a.kind for s in stats for a in detector.check(s)]


def warmed(steps: int = 30) -> AnomalyDetector:
    detector = AnomalyDetector(CONFIG)
    assert run(detector, [healthy(i) for i in range(steps)]) == []
    return detector


def test_every_kind_has_a_suggestion() -> None:
    assert len(KINDS) == 12 and set(SUGGESTIONS) == set(KINDS) and set(KINDS) >= RECOVER


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_loss_and_gradients_ask_for_recovery(value: float) -> None:
    detector = warmed()
    (loss,) = detector.check(healthy(30, loss=value))
    (grad,) = detector.check(healthy(31, grad_norm=value))
    assert (loss.kind, grad.kind) == ("nan_loss", "nan_grad") and loss.recover and grad.recover


def test_a_gradient_spike_is_a_warning() -> None:
    detector = warmed()
    (spike,) = detector.check(healthy(30, grad_norm=50.0))
    assert spike.kind == "grad_spike" and not spike.recover


def test_vanishing_gradients_need_twenty_steps_in_a_row() -> None:
    detector = warmed()
    kinds = run(detector, [healthy(30 + i, grad_norm=1e-9) for i in range(19)])
    assert kinds == []
    assert run(detector, [healthy(49, grad_norm=1e-9)]) == ["vanishing_grad"]


def test_a_loss_spike_is_a_warning_and_the_run_goes_on() -> None:
    detector = warmed()
    (spike,) = detector.check(healthy(30, loss=6.0))
    assert spike.kind == "loss_spike" and not spike.recover
    assert run(detector, [healthy(31)]) == []


def test_a_sustained_rise_of_the_loss_is_divergence_and_asks_for_recovery() -> None:
    detector = warmed()
    found = run(detector, [healthy(30 + i, loss=12.0) for i in range(20)])
    assert "divergence" not in found, "a rise must last before it counts"
    more = [a for i in range(10) for a in detector.check(healthy(50 + i, loss=12.0))]
    assert [a.kind for a in more if a.recover] == ["divergence"] * len([a for a in more if a.recover])
    assert len([a for a in more if a.recover]) >= 5, "once diverged, every further bad step is flagged"


def test_a_loss_far_above_the_best_is_divergence_at_once() -> None:
    detector = warmed()
    (found,) = [a for a in detector.check(healthy(30, loss=40.0)) if a.recover]
    assert found.kind == "divergence"


def test_discriminator_collapse_after_fifty_steps_of_a_perfect_discriminator() -> None:
    detector = warmed()
    kinds = run(detector, [healthy(30 + i, disc_loss=0.01) for i in range(50)])
    assert kinds == ["discriminator_collapse"]


def test_posterior_collapse_only_counts_while_the_kl_weighs() -> None:
    detector = warmed()
    assert run(detector, [healthy(30 + i, kl=0.0, beta=0.0) for i in range(60)]) == []
    kinds = run(detector, [healthy(90 + i, kl=0.001, beta=0.5) for i in range(50)])
    assert kinds == ["posterior_collapse"]


def test_no_progress_when_the_loss_stays_flat() -> None:
    detector = AnomalyDetector(CONFIG)
    kinds = run(detector, [healthy(i, loss=4.0) for i in range(80)])
    assert kinds == ["no_progress"]
    learning = AnomalyDetector(CONFIG)
    assert run(learning, [healthy(i) for i in range(200)]) == []


def test_throughput_drop_loader_stall_and_memory_growth() -> None:
    detector = warmed()
    assert run(detector, [healthy(30, tokens_per_s=100.0)]) == ["throughput_drop"]
    assert run(detector, [healthy(31, wait_s=120.0)]) == ["loader_stall"]
    assert run(detector, [healthy(32, memory_bytes=3 * 10**9)]) == ["memory_growth"]


def test_a_new_sequence_length_is_judged_against_itself() -> None:
    detector = AnomalyDetector(CONFIG)
    assert run(detector, [healthy(i, seq_len=512) for i in range(30)]) == []
    # A curriculum stage of longer sequences: more memory, fewer tokens per second, no warning ...
    longer = dict(seq_len=2048, memory_bytes=3 * 10**9, tokens_per_s=400.0)
    assert run(detector, [healthy(i, **longer) for i in range(30, 60)]) == []
    # ... while growth and drops at that length are still caught.
    assert run(detector, [healthy(60, seq_len=2048, memory_bytes=9 * 10**9)]) == ["memory_growth"]
    assert run(detector, [healthy(61, seq_len=2048, tokens_per_s=40.0)]) == ["throughput_drop"]


def test_warnings_of_one_kind_wait_for_the_cooldown() -> None:
    detector = warmed()
    assert run(detector, [healthy(30, wait_s=120.0)]) == ["loader_stall"]
    assert run(detector, [healthy(31 + i, wait_s=120.0) for i in range(COOLDOWN - 2)]) == []
    assert run(detector, [healthy(30 + COOLDOWN, wait_s=120.0)]) == ["loader_stall"]
    # Recovery kinds are never held back: every bad step must be skipped.
    assert run(detector, [healthy(200 + i, loss=math.nan) for i in range(3)]) == ["nan_loss"] * 3


@settings(max_examples=30, deadline=None)
@given(losses=st.lists(st.floats(0.1, 10.0), min_size=1, max_size=60), cut=st.integers(0, 60))
def test_state_round_trips_through_json_and_decides_the_same(losses: list[float], cut: int) -> None:
    """A detector restored from its JSON state judges the following steps exactly as the original."""
    stats = [healthy(i, loss=x, tokens_per_s=None, memory_bytes=None) for i, x in enumerate(losses)]
    cut = min(cut, len(stats))
    original = AnomalyDetector(CONFIG)
    run(original, stats[:cut])
    restored = AnomalyDetector(CONFIG)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert run(restored, stats[cut:]) == run(original, stats[cut:])
