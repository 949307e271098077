"""NaN injected into training batches: the step is skipped, repeats roll the run back at a lower lr."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from aurl.train import TrainEvent, TrainingDiverged, train
from aurl.train import run as run_module
from aurl.train.schedule import lr_factor
from train.conftest import Settings


def poison(monkeypatch: pytest.MonkeyPatch, bad: Callable[[int], bool]) -> None:
    """Make the embedding output NaN on the training forward passes whose number (from 0) is `bad`."""
    build = run_module.build_model

    def build_poisoned(settings, device):  # type: ignore[no-untyped-def]
        model = build(settings, device)
        calls = {"n": 0}

        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if not module.training:
                return None
            calls["n"] += 1
            return output * float("nan") if bad(calls["n"] - 1) else None

        model.embed.register_forward_hook(hook)
        return model

    monkeypatch.setattr(run_module, "build_model", build_poisoned)


def test_one_nan_batch_is_skipped(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison(monkeypatch, lambda call: call == 6)
    events: list[TrainEvent] = []
    result = train(tiny_settings(**{"train.max_steps": 10}), run_dir=tmp_path, on_event=events.append)
    anomalies = [e.data for e in events if e.kind == "anomaly"]
    assert [a["kind"] for a in anomalies] == ["nan_loss"] and anomalies[0]["suggestion"]
    assert result.skipped_steps == 1 and result.rollbacks == 0 and result.step == 10
    assert all(math.isfinite(e.data["loss"]) for e in events if e.kind == "step")
    assert result.val_loss is not None and math.isfinite(result.val_loss)


def test_repeated_nan_rolls_back_to_the_last_checkpoint_at_a_lower_lr(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison(monkeypatch, lambda call: 7 <= call < 10)  # three bad batches in a row, after checkpoint 5
    settings = tiny_settings(
        **{"train.max_steps": 12, "train.checkpoint_every": 5, "train.recovery_skips": 3}
    )
    events: list[TrainEvent] = []
    result = train(settings, run_dir=tmp_path, on_event=events.append)
    recoveries = [e for e in events if e.kind == "recovery"]
    assert len(recoveries) == 1 and recoveries[0].data["to_step"] == 5 and recoveries[0].step == 5
    assert result.rollbacks == 1 and result.skipped_steps == 3 and result.step == 12
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10, 11, 12]
    after = [e for e in steps[7:]]
    for event in after:  # every step after the roll-back runs at half the scheduled rate
        planned = settings.train.lr * lr_factor(event.step - 1, 12, settings.train)
        assert event.data["lr"] == pytest.approx(0.5 * planned)


def test_nan_that_never_stops_ends_the_run_with_one_line(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison(monkeypatch, lambda call: call >= 2)
    settings = tiny_settings(
        **{"train.max_steps": 30, "train.recovery_skips": 2, "train.recovery_rollbacks": 2}
    )
    with pytest.raises(TrainingDiverged, match="after 2 roll-backs") as error:
        train(settings, run_dir=tmp_path)
    assert "\n" not in str(error.value)
