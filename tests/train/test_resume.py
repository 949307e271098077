"""Resuming: bit-for-bit continuation, Ctrl-C, corrupt checkpoints, foreign vocabularies."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aurl.errors import CheckpointError
from aurl.train import TrainEvent, run_settings, train
from aurl.train.checkpoint import MODEL_FILE, OPTIM_FILE, STATE_FILE
from train.conftest import Settings

STEPS = 14


def exact_settings(tiny_settings: Settings, mode: str, **extra: object):  # type: ignore[no-untyped-def]
    """Dropout, augmentation, accumulation and a curriculum all on: everything a resume must restore."""
    return tiny_settings(
        mode,
        **{
            "train.max_steps": STEPS,
            "train.checkpoint_every": 4,
            "train.eval_every": 4,
            "train.grad_accumulation": 2,
            "model.dropout": 0.1,
            "data.augment": True,
            "data.curriculum": [(0, 64), (6, 128)],
            **extra,
        },
    )


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return {**load_file(str(path / MODEL_FILE)), **load_file(str(path / OPTIM_FILE))}


@pytest.mark.parametrize(
    ("mode", "extra"), [("transformer", {}), ("vae_gan", {}), ("vae", {"model.shared_pitch_rows": True})]
)
def test_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(
    mode: str, extra: dict, tiny_settings: Settings, tmp_path: Path
) -> None:
    settings = exact_settings(tiny_settings, mode, **extra)
    train(settings, run_dir=tmp_path / "straight")
    broken = tmp_path / "broken"
    first = train(settings, run_dir=broken, max_steps=3)  # mid-epoch: 3 batches of 4 pieces per epoch

    def ctrl_c_at_7(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # handled between steps: checkpoint, then KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(run_settings(broken), run_dir=broken, resume=True, on_event=ctrl_c_at_7)
    third = train(run_settings(broken), run_dir=broken, resume=True, max_steps=11)
    last = train(run_settings(broken), run_dir=broken, resume=True)
    assert (first.step, third.resumed_from, third.step, last.resumed_from, last.step) == (3, 7, 11, 11, STEPS)
    straight = tensors(tmp_path / "straight" / f"step-{STEPS:08d}")
    resumed = tensors(broken / f"step-{STEPS:08d}")
    assert straight.keys() == resumed.keys()
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    rows = [json.loads(line) for line in (broken / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, STEPS + 1))


def corrupt_model(folder: Path) -> None:
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / MODEL_FILE).write_bytes(bytes(data))


def truncate_optim(folder: Path) -> None:
    path = folder / OPTIM_FILE
    path.write_bytes(path.read_bytes()[:100])


def garble_state(folder: Path) -> None:
    (folder / STATE_FILE).write_text("{ not json", encoding="utf-8")


def remove_model(folder: Path) -> None:
    (folder / MODEL_FILE).unlink()


@pytest.mark.parametrize(
    "damage", [corrupt_model, truncate_optim, garble_state, remove_model], ids=lambda f: f.__name__
)
def test_a_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(
    damage, tiny_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    settings = tiny_settings(**{"train.max_steps": 8, "train.checkpoint_every": 4, "train.eval_every": 4})
    train(settings, run_dir=tmp_path)
    damage(tmp_path / "step-00000008")
    with caplog.at_level(logging.WARNING, logger="aurl.train"):
        result = train(run_settings(tmp_path, max_steps=10), run_dir=tmp_path, resume=True)
    assert result.resumed_from == 4 and result.step == 10
    reports = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "step-00000008" in r.getMessage()
    ]
    assert len(reports) == 1 and "\n" not in reports[0] and "falling back" in reports[0]


def test_a_checkpoint_of_another_vocabulary_is_refused(tiny_settings: Settings, tmp_path: Path) -> None:
    train(tiny_settings(**{"train.max_steps": 2}), run_dir=tmp_path)
    state_path = tmp_path / "step-00000002" / STATE_FILE
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "vocab_version": "aurl-events-v0"}))
    with pytest.raises(CheckpointError, match="vocabulary 'aurl-events-v0'") as error:
        train(run_settings(tmp_path), run_dir=tmp_path, resume=True)
    assert "\n" not in str(error.value)


def test_resume_needs_a_run_folder_with_a_checkpoint(tiny_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a run folder"):
        run_settings(tmp_path)
    train(tiny_settings(**{"train.max_steps": 1}), run_dir=tmp_path / "run")
    for step_dir in (tmp_path / "run").glob("step-*"):
        shutil.rmtree(step_dir)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        train(run_settings(tmp_path / "run"), run_dir=tmp_path / "run", resume=True)
