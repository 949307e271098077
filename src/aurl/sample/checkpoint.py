"""Which model to sample from: a weights file, a training run folder, or the bundled model.

Only files aurl's `save_weights` wrote are loaded, as safetensors and JSON (never pickle), and only
when their vocabulary version is this aurl's. Every failure is one CheckpointError line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from aurl.errors import CheckpointError, ConfigError
from aurl.models import load_weights, read_metadata
from aurl.models.bundled import EXPECTED, resolve_checkpoint
from aurl.models.pitch_rows import fold
from aurl.sample.decoder import Decoder, TorchDecoder
from aurl.sample.fastpath import FastDecoder
from aurl.tokens import VOCAB_SIZE, check_vocab_version


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to sample from, and what identifies it in the output's metadata.

    Attributes:
        decoder: the model as a Decoder.
        path: the file it was read from.
        sha256: hex SHA-256 of that file.
        mode: transformer, vae or vae_gan.
    """

    decoder: Decoder
    path: Path
    sha256: str
    mode: str


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(
    checkpoint: str | Path, device: str = "cpu", precision: str = "float32", compile: bool = False
) -> LoadedModel:
    """Load a model for sampling: as a FastDecoder (full attention) or a TorchDecoder (windowed).

    Args:
        checkpoint: a model.safetensors file, a run folder, or 'bundled'.
        device: torch device to run the model on.
        precision: float32, float16 or bfloat16 matrices (FastDecoder only; others run in float32).
        compile: run FastDecoder's single-token step through torch.compile (full attention only).

    Raises:
        CheckpointError: missing, corrupt, not a safetensors weights file, or another vocabulary.
        ConfigError: the device does not exist here; compile asked of a windowed-attention model.
    """
    path = resolve_checkpoint(checkpoint)
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"checkpoint '{path}' is not a .safetensors file; {EXPECTED}")
    check_vocab_version(read_metadata(path).get("vocab_version"), path)
    target = _device(device)
    try:
        model = load_weights(path, map_location=target)
    except (ValueError, KeyError, TypeError) as error:  # malformed JSON or table in the metadata
        raise CheckpointError(f"model file '{path}' has unreadable metadata: {error}") from None
    if model.config.vocab_size != VOCAB_SIZE:
        raise CheckpointError(
            f"model file '{path}' has {model.config.vocab_size} tokens; "
            f"this aurl's vocabulary has {VOCAB_SIZE}"
        )
    fold(model)  # sampling never trains: compute shared pitch rows into the table once, not every step
    decoder: Decoder
    if model.config.attention == "full":
        decoder = FastDecoder(model, target, getattr(torch, precision), compile=compile)
    elif compile:
        raise ConfigError(
            f"--compile needs a full-attention model; '{path}' uses {model.config.attention} attention"
        )
    else:
        decoder = TorchDecoder(model, target)
    return LoadedModel(decoder, path, file_sha256(path), model.config.mode)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"device '{name}' is not usable here ({first}); try --device cpu") from None
    return device
