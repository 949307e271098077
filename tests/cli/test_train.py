"""`aurl train` and `aurl resume` through CliRunner: JSON results, resuming, and one-line errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aurl.models import read_metadata
from aurl.tokens import VOCAB_VERSION

TINY = ["--preset", "tiny", "--seq-len", "128", "--batch-size", "4", "--device", "cpu", "--lr", "0.003"]


@pytest.fixture(scope="module")
def ten(tmp_path_factory: pytest.TempPathFactory, chorale_paths: list[Path]) -> Path:
    folder = tmp_path_factory.mktemp("ten")
    for path in chorale_paths:
        shutil.copyfile(path, folder / path.name)
    return folder


@pytest.fixture()
def aurl(runner: CliRunner, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run `aurl ARGS...` in-process with a fast training setup in the environment."""
    from aurl.cli.app import app

    env = {
        "AURL_DATA__CACHE_DIR": str(tmp_path_factory.getbasetemp() / "cli-token-cache"),
        "AURL_DATA__WORKERS": "0",
        "AURL_TRAIN__QUALITY_SAMPLES": "2",
        "AURL_TRAIN__QUALITY_TOKENS": "24",
        "AURL_TRAIN__EVAL_BATCHES": "1",
        "AURL_PREPROCESS__WORKERS": "1",
    }

    def invoke(*args: Any):  # type: ignore[no-untyped-def]
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return runner.invoke(app, [str(a) for a in args], env=env)
        finally:
            torch.set_num_threads(before)

    return invoke


def test_train_json_then_resume(aurl, ten: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "run"
    result = aurl("train", *TINY, "--data", ten, "--run-dir", run_dir, "--max-steps", "3", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["step"], data["stopped"], data["mode"], data["run_dir"]) == (
        3,
        "max_steps",
        "transformer",
        str(run_dir),
    )
    assert data["model_path"] == str(run_dir / "model.safetensors") and data["val_loss"] is not None
    assert read_metadata(data["model_path"])["vocab_version"] == VOCAB_VERSION
    assert set(data["quality"]) >= {"token_validity", "pitch_class_entropy", "repetition_rate", "mean_ioi"}
    assert len(list((run_dir / "samples" / "step-00000003").glob("*.mid"))) == 2
    again = aurl("resume", run_dir, "--max-steps", "5", "--json")
    assert again.exit_code == 0, again.stderr
    resumed = json.loads(again.stdout)
    assert (resumed["resumed_from"], resumed["step"]) == (3, 5)


def test_human_output_is_a_table(aurl, ten: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aurl(
        "train", *TINY, "--data", ten, "--run-dir", tmp_path / "run", "--max-steps", "1", "--mode", "vae"
    )
    assert result.exit_code == 0, result.stderr
    for label in ("run folder", "validation loss", "bits per token", "stopped by", "vae"):
        assert label in result.stdout


@pytest.mark.parametrize(
    "args",
    [["train", "--no-such-flag"], ["train", "--max-steps", "0"], ["train", "--preset", "huge"], ["resume"]],
    ids=["unknown-flag", "zero-steps", "unknown-preset", "no-run-dir"],
)
def test_usage_errors_exit_2_in_one_line(aurl, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = aurl(*args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")


def test_resume_of_a_folder_that_is_no_run_fails_in_one_line(aurl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aurl("resume", tmp_path)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and "not a run folder" in line and str(tmp_path) in line


def test_resume_of_a_folder_that_does_not_exist_is_a_usage_error(aurl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aurl("resume", tmp_path / "nothing")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and "does not exist" in line and "nothing" in line


def test_bad_values_name_the_setting(aurl, ten: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aurl("train", "--data", ten, "--run-dir", tmp_path, "--precision", "fp8")
    assert result.exit_code == 2 and "train.precision" in result.stderr and "fp8" in result.stderr


def test_a_terminal_gets_a_live_display_and_stdout_stays_json(
    aurl, ten: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from aurl.cli._output import session

    screen = io.StringIO()
    monkeypatch.setattr(session, "stderr", Console(file=screen, force_terminal=True, width=160))
    result = aurl("train", *TINY, "--data", ten, "--run-dir", tmp_path / "run", "--max-steps", "3", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 3
    shown = screen.getvalue()
    assert "training" in shown and "3/3" in shown and "tok/s" in shown and "recon" in shown
    assert "step 1/3:" not in shown, "the display replaces the plain step lines"
