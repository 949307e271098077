"""Where and in what precision training runs: device choice, autocast, the fp16 gradient scaler."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from aurl.config.train import TrainConfig
from aurl.errors import ConfigError

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `train.device` (auto: cuda, then mps, then cpu).

    Raises:
        ConfigError: the named device is not available on this machine.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device = 'cuda' but no CUDA device is available; use --device cpu or auto"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not _mps_available():
        raise ConfigError("train.device = 'mps' but MPS is not available; use --device cpu or auto")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_precision(config: TrainConfig, device: torch.device) -> None:
    """Refuse precisions the device cannot train in.

    Raises:
        ConfigError: fp16 off CUDA (its gradient scaler needs CUDA).
    """
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.precision = 'fp16' needs a CUDA device (this run uses {device.type}); use bf16 or fp32"
        )


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The autocast context of the forward pass: bf16 or fp16 on the device, or nothing for fp32."""
    if config.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[config.precision])


def grad_scaler(config: TrainConfig, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (None otherwise: bf16 has fp32's range and needs none)."""
    if config.precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def memory_bytes(device: torch.device) -> int:
    """Memory in use: the allocator's on CUDA, else the process's resident set (0 if unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    return _rss_bytes()


def _rss_bytes() -> int:
    with (
        contextlib.suppress(OSError, ValueError, IndexError),
        open("/proc/self/statm", encoding="ascii") as f,
    ):
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(ImportError, AttributeError):
        import resource

        # ru_maxrss is the peak, not the current size: the best a platform without /proc offers.
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return 0


@contextlib.contextmanager
def same_rng(cuda: bool = True) -> Iterator[None]:
    """Run a block without moving the global torch generators (CPU, and CUDA unless `cuda` is False).

    Evaluation, sampling and data-loader start-up draw random numbers; a resumed run must see the
    same dropout masks as an uninterrupted one, so those draws must not reach the training stream.
    """
    devices = list(range(torch.cuda.device_count())) if cuda and torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield
