"""Checkpoints on disk: step-NNNNNNNN/{model.safetensors, optim.safetensors, state.json}, atomically.

A checkpoint folder is first written whole under a temporary name in the run folder (each file
fsynced), then renamed into place, so a crash at any moment leaves either the complete checkpoint
or none. state.json (step, data position, RNG states, schedule, best metrics, anomaly state) holds
SHA-256 digests of the two tensor files; a checkpoint whose files do not match, or that cannot be
read, is reported in one log line and the previous one is used. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file

from aurl.atomic import write_text
from aurl.config import SampleConfig
from aurl.config.sample import RECOMMENDED_KEY, recommended
from aurl.errors import CheckpointError
from aurl.models import MusicTransformerVAEGAN, save_weights
from aurl.tokens import VOCAB_VERSION
from aurl.train import optim
from aurl.version import __version__

log = logging.getLogger(__name__)

MODEL_FILE, OPTIM_FILE, STATE_FILE = "model.safetensors", "optim.safetensors", "state.json"
_STEP_DIR = re.compile(r"step-(\d{8})")
_TMP_PREFIX = ".tmp-step-"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint that passed its checks: its folder and its state.json."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def step_dir(run_dir: Path, step: int) -> Path:
    """The folder of the checkpoint at `step`: run_dir/step-NNNNNNNN."""
    return run_dir / f"step-{step:08d}"


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the checkpoint folders in `run_dir`, ascending (unverified)."""
    if not run_dir.is_dir():
        return []
    found = (_STEP_DIR.fullmatch(p.name) for p in run_dir.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def sha256(path: Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once its folder is synced; not every platform can open a folder.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, fsync it, and rename it over `path`."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True))


def weights_metadata(
    step: int, val_loss: float | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The metadata every weights file of a run carries: vocabulary and aurl version, step, val loss."""
    return {
        "vocab_version": VOCAB_VERSION,
        "aurl_version": __version__,
        "step": str(step),
        "val_loss": "" if val_loss is None else repr(float(val_loss)),
        **(extra or {}),
    }


def recommended_metadata(sample: SampleConfig) -> dict[str, str]:
    """The run's sample settings that differ from aurl's defaults, for the model files it exports:
    `aurl sample` applies them wherever its user sets nothing (`aurl.config.sample.recommended`)."""
    values = recommended(sample)
    return {RECOMMENDED_KEY: json.dumps(values, sort_keys=True)} if values else {}


def save_checkpoint(
    run_dir: Path,
    model: MusicTransformerVAEGAN,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> Path:
    """Write the checkpoint of `state["step"]` atomically and return its folder.

    Args:
        run_dir: the run folder.
        model: the unwrapped model (fp32 weights, so that a resumed run continues bit for bit).
        optimizers: by name ("generator", "discriminator"); their tensors go to optim.safetensors.
        state: JSON-able training state; "step" is required, "val_loss" is used to rank checkpoints.
    """
    step = int(state["step"])
    final = step_dir(run_dir, step)
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f"{_TMP_PREFIX}{step:08d}-"))
    try:
        save_weights(model, tmp / MODEL_FILE, weights_metadata(step, state.get("val_loss")))
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {}
        for name, optimizer in optimizers.items():
            flat, rest = optim.flatten(name, optimizer)
            tensors.update({k: v.cpu() for k, v in flat.items()})
            meta[name] = rest
        save_file(tensors, str(tmp / OPTIM_FILE))
        _fsync(tmp / OPTIM_FILE)
        full_state = {
            **state,
            "optimizers": meta,
            "vocab_version": VOCAB_VERSION,
            "aurl_version": __version__,
            "checksums": {name: sha256(tmp / name) for name in (MODEL_FILE, OPTIM_FILE)},
        }
        write_json_atomic(tmp / STATE_FILE, full_state)
        _fsync_dir(tmp)
        if final.exists():  # a checkpoint of the same step from before a roll-back: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(run_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify one checkpoint folder's state.json and checksums.

    Raises:
        CheckpointError: unreadable or mismatched files (the caller may fall back), or a different
            vocabulary version (the caller must not: no checkpoint of this run fits).
    """
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        checksums = state["checksums"]
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint '{path}' has no readable {STATE_FILE}: {error}") from None
    if state.get("vocab_version") != VOCAB_VERSION:
        raise VocabMismatch(
            f"checkpoint '{path}' uses vocabulary {state.get('vocab_version')!r} but this aurl uses "
            f"{VOCAB_VERSION!r}; train a new run or use the aurl version that wrote it"
        )
    for name in (MODEL_FILE, OPTIM_FILE):
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint '{path}' lacks {name}")
        if sha256(file) != checksums.get(name):
            raise CheckpointError(f"checkpoint '{path}': {name} does not match its SHA-256 checksum")
    return Checkpoint(path, state)


class VocabMismatch(CheckpointError):
    """A checkpoint written with another vocabulary: never silently skipped."""


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint that passes its checks; each one skipped is logged in one line.

    Raises:
        CheckpointError: a checkpoint has another vocabulary version.
    """
    for step in reversed(checkpoint_steps(run_dir)):
        path = step_dir(run_dir, step)
        try:
            return read_checkpoint(path)
        except VocabMismatch:
            raise
        except CheckpointError as error:
            log.warning("%s; falling back to the previous checkpoint", error)
    return None


def load_checkpoint(
    checkpoint: Checkpoint,
    model: MusicTransformerVAEGAN,
    optimizers: dict[str, torch.optim.Optimizer],
    device: torch.device,
) -> None:
    """Load the weights and optimizer states of a verified checkpoint into `model` and `optimizers`.

    Raises:
        CheckpointError: the tensors do not fit the model or its optimizers.
    """
    try:
        load_model(model, str(checkpoint.path / MODEL_FILE), strict=True, device=str(device))
        tensors = load_file(str(checkpoint.path / OPTIM_FILE), device=str(device))
    except (RuntimeError, SafetensorError, OSError) as error:
        raise CheckpointError(
            f"checkpoint '{checkpoint.path}' does not fit this model: {str(error)[:200]}"
        ) from None
    meta = checkpoint.state.get("optimizers", {})
    for name, optimizer in optimizers.items():
        if name not in meta:
            raise CheckpointError(f"checkpoint '{checkpoint.path}' has no state for optimizer '{name}'")
        optim.unflatten(name, optimizer, tensors, meta[name])


def _val_loss(path: Path) -> float | None:
    try:
        value = json.loads((path / STATE_FILE).read_text(encoding="utf-8")).get("val_loss")
    except (OSError, ValueError):
        return None
    return float(value) if value is not None else None


def best_steps(run_dir: Path, count: int) -> list[int]:
    """Steps of the `count` checkpoints with the lowest validation loss, best first."""
    scored = []
    for step in checkpoint_steps(run_dir):
        loss = _val_loss(step_dir(run_dir, step))
        if loss is not None and loss == loss:  # NaN never ranks
            scored.append((loss, step))
    return [step for _, step in sorted(scored)[:count]]


def prune(run_dir: Path, keep_last: int, keep_best: int) -> list[int]:
    """Delete checkpoints that are neither among the last `keep_last` nor the best `keep_best`.

    Also removes temporary folders left by a crash. Returns the deleted steps.
    """
    for leftover in run_dir.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    steps = checkpoint_steps(run_dir)
    keep = set(steps[-keep_last:]) | set(best_steps(run_dir, keep_best))
    deleted = [s for s in steps if s not in keep]
    for step in deleted:
        shutil.rmtree(step_dir(run_dir, step), ignore_errors=True)
    return deleted


def average_weights(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Mean of the floating-point tensors of several weights files (others taken from the first).

    Raises:
        CheckpointError: no paths, or files whose tensors differ in names or shapes.
    """
    if not paths:
        raise CheckpointError("no checkpoints to average; train until at least one has a validation loss")
    first = load_file(str(paths[0]))
    sums = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    for path in paths[1:]:
        other = load_file(str(path))
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise CheckpointError(f"weights '{path}' do not match '{paths[0]}'; cannot average them")
        for key, value in other.items():
            if value.is_floating_point():
                sums[key] = sums[key] + value.double()
    return {
        k: (v / len(paths)).to(first[k].dtype) if first[k].is_floating_point() else v for k, v in sums.items()
    }
