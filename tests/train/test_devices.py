"""Compiled and GPU training: slow or device-bound, so marked and skipped in the default run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aurl.train import train
from train.conftest import Settings

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.slow
def test_compiled_training_follows_eager_training(tiny_settings: Settings, tmp_path: Path) -> None:
    """torch.compile changes how, not what: 6 steps give about the same validation loss (~80 s on a CPU)."""
    eager = train(tiny_settings(**{"train.max_steps": 6}), run_dir=tmp_path / "eager")
    compiled = train(
        tiny_settings(**{"train.max_steps": 6, "train.compile": True}), run_dir=tmp_path / "compiled"
    )
    assert compiled.step == 6 and compiled.val_loss == pytest.approx(eager.val_loss, rel=1e-3)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("mode", ["transformer", "vae_gan"])
def test_cuda_training_in_every_precision(
    precision: str, mode: str, tiny_settings: Settings, tmp_path: Path
) -> None:
    settings = tiny_settings(
        mode, **{"train.max_steps": 20, "train.device": "cuda", "train.precision": precision}
    )
    result = train(settings, run_dir=tmp_path)
    assert result.step == 20 and result.skipped_steps == 0 and result.val_loss is not None
    assert result.val_loss < 6.0, f"{mode} {precision}: validation loss {result.val_loss}"


@pytest.mark.gpu
@cuda
def test_cuda_resume_continues_from_the_checkpoint(tiny_settings: Settings, tmp_path: Path) -> None:
    from aurl.train import run_settings

    settings = tiny_settings(**{"train.max_steps": 10, "train.device": "cuda", "train.precision": "fp16"})
    train(settings, run_dir=tmp_path, max_steps=5)
    result = train(run_settings(tmp_path), run_dir=tmp_path, resume=True)
    assert (result.resumed_from, result.step) == (5, 10)
