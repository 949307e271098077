"""Training as separate processes: SIGKILL then resume, Ctrl-C (exit 130), and torchrun with 2 ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aurl.train import run_settings, train
from aurl.train.checkpoint import MODEL_FILE, OPTIM_FILE, checkpoint_steps
from train.conftest import Settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and process groups as on POSIX")


def command(folder: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "-m", "aurl", "-q", "train", "--preset", "tiny", "--data", str(folder), "--run-dir", str(run_dir),
        "--seq-len", "128", "--batch-size", "4", "--device", "cpu", "--lr", "0.003", *extra,
    ]  # fmt: skip


def environment(cache: Path) -> dict[str, str]:
    """The subprocess's settings beyond the flags; one thread, so its arithmetic matches this process's."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AURL_")}
    env.update(
        AURL_DATA__CACHE_DIR=str(cache), AURL_TRAIN__QUALITY_SAMPLES="0", AURL_TRAIN__WARMUP_STEPS="4",
        AURL_TRAIN__EVAL_BATCHES="2", AURL_TRAIN__LOG_EVERY="1", AURL_PREPROCESS__WORKERS="1",
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    return env


def wait_for(predicate, process: subprocess.Popen, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.stderr.read() if process.stderr else ''}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError("training did not get far enough in time")
        time.sleep(0.05)


def train_rows(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count('"kind": "train"') if path.exists() else 0


def test_sigkill_loses_only_the_steps_since_the_last_checkpoint(
    tiny_settings: Settings, ten_chorales: Path, token_cache: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "killed"
    args = command(
        ten_chorales, run_dir, "--max-steps", "400", "--checkpoint-every", "5", "--eval-every", "1000"
    )
    process = subprocess.Popen(
        [sys.executable, *args], env={**environment(token_cache), "AURL_DATA__WORKERS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: 10 in checkpoint_steps(run_dir), process)
    os.killpg(process.pid, signal.SIGKILL)  # the trainer and its data-loader worker, mid-step
    process.wait(timeout=30)
    reached = train_rows(run_dir)
    newest = max(checkpoint_steps(run_dir))
    assert newest >= 10 and reached - newest < 5 + 2, "at most the steps since the last checkpoint are lost"
    resumed = train(run_settings(run_dir), run_dir=run_dir, resume=True, max_steps=newest + 6)
    assert resumed.resumed_from == newest and resumed.step == newest + 6
    # The same settings run straight through in this process give the very same bits.
    straight = train(run_settings(run_dir), run_dir=tmp_path / "straight", max_steps=newest + 6)
    end = f"step-{straight.step:08d}"
    for name in (MODEL_FILE, OPTIM_FILE):
        a, b = load_file(str(run_dir / end / name)), load_file(str(tmp_path / "straight" / end / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_ctrl_c_writes_a_checkpoint_and_exits_130(
    ten_chorales: Path, token_cache: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    args = command(
        ten_chorales, run_dir, "--max-steps", "400", "--checkpoint-every", "1000", "--eval-every", "1000"
    )
    process = subprocess.Popen(
        [sys.executable, *args], env={**environment(token_cache), "AURL_DATA__WORKERS": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: train_rows(run_dir) >= 3, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted" and stdout == ""
    newest = max(checkpoint_steps(run_dir))
    assert newest >= 3, "the interrupt wrote a checkpoint of the step it stopped at"
    state = json.loads((run_dir / f"step-{newest:08d}" / "state.json").read_text())
    assert state["step"] == newest == train_rows(run_dir)


def test_two_gloo_processes_match_one_with_the_same_global_batch(
    ten_chorales: Path, token_cache: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "ddp"
    args = command(
        ten_chorales, run_dir, "--max-steps", "6", "--checkpoint-every", "3", "--eval-every", "3", "--json"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*torchrun, *args], env={**environment(token_cache), "AURL_DATA__WORKERS": "0"},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # rank 0 alone prints
    assert (
        result["step"] == 6
        and json.loads((run_dir / "step-00000006" / "state.json").read_text())["world_size"] == 2
    )
    single = train(run_settings(run_dir), run_dir=tmp_path / "single")
    assert single.step == 6
    a = load_file(str(run_dir / "step-00000006" / MODEL_FILE))
    b = load_file(str(tmp_path / "single" / "step-00000006" / MODEL_FILE))
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-4, f"largest weight difference {worst:.2e}"
    assert result["val_loss"] == pytest.approx(single.val_loss, rel=1e-4)
    # A run of 2 processes resumes on 1.
    resumed = train(run_settings(run_dir, max_steps=8), run_dir=run_dir, resume=True)
    assert (resumed.resumed_from, resumed.step) == (6, 8)
