"""Exported models as `aurl.sample` Decoders, so `aurl sample --checkpoint model.onnx` runs through
the same generation code as the PyTorch model.

- `OnnxDecoder(path)`: an ONNX step (float32 or int8) run by onnxruntime.
- `load_decoder(checkpoint)`: any model file aurl writes, as a Decoder: .onnx through
  `OnnxDecoder`, an int8 safetensors file through `load_int8`, a float32/fp16/bf16 weights file
  through `load_weights` (both as `TorchDecoder`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aurl.config import ModelConfig
from aurl.errors import CheckpointError
from aurl.export.errors import ExportError
from aurl.export.metadata import FORMAT_KEY, INT8_FORMAT
from aurl.export.quantize import load_int8
from aurl.export.session import OnnxStep, StepState
from aurl.models import Latent, load_weights, read_metadata
from aurl.models.bundled import resolve_checkpoint
from aurl.models.pitch_rows import fold
from aurl.models.weights import CONFIG_KEY
from aurl.sample.decoder import Decoder, TorchDecoder
from aurl.tokens.vocab import check_vocab_version


class OnnxDecoder:
    """`aurl.sample.decoder.Decoder` (and, in vae modes, LatentDecoder) over an exported ONNX step.

    The cache is a `StepState` of numpy arrays; ids and logits cross as CPU tensors.

    Args:
        path: a .onnx file written by `aurl export --format onnx` (or `int8 --out x.onnx`).
        threads: onnxruntime intra-op threads; 0 lets it choose.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        ExportError: the file is not an aurl ONNX step.
        CheckpointError: it was made for another vocabulary version.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        self.onnx = OnnxStep(self.path, threads)
        check_vocab_version(self.onnx.metadata.get("vocab_version"), self.path)
        self.config = ModelConfig.model_validate_json(self.onnx.metadata[CONFIG_KEY])
        self.metadata = self.onnx.metadata  # the source weights' keys too, e.g. recommended sample settings
        self.vocab_size = self.onnx.layout.vocab_size
        self.latent = self.onnx.layout.latent is not None

    def start(self, batch: int, z: Latent | None = None) -> StepState:
        """Empty cache of `batch` rows; `z` (batch rows) conditions a vae-mode model (None: prior mean)."""
        if z is not None and z.piece.shape[0] != batch:
            raise ValueError(f"z has {z.piece.shape[0]} rows for a batch of {batch}")
        parts = None
        if z is not None and self.latent:
            parts = tuple(t.detach().cpu().float().numpy() for t in (z.piece, z.bar, z.fine))
        return self.onnx.start(batch, parts)

    def step(self, ids: Tensor, cache: StepState) -> tuple[Tensor, StepState]:
        """Logits (B, T_new, V) float32 on the CPU for ids (B, T_new), and the grown cache."""
        logits, state = self.onnx.run(ids.detach().cpu().numpy(), cache)
        return torch.from_numpy(logits), state

    def reorder(self, cache: StepState, index: Tensor) -> StepState:
        """The cache whose row i is row index[i] of `cache`."""
        return cache.select(index.detach().cpu().numpy().astype(np.int64))

    def prior(self, generators: list[torch.Generator], n_bars: int, n_tokens: int) -> Latent:
        """One N(0, I) draw per generator, drawn exactly as `TorchDecoder.prior` draws it."""
        n_windows = -(-n_tokens // self.config.fine_window)
        rows = [Latent.prior(self.config, 1, n_bars, n_windows, generator=g) for g in generators]
        return Latent(*(torch.cat([getattr(r, f.name) for r in rows]) for f in dataclasses.fields(Latent)))

    def encode(self, ids: Tensor) -> Latent:
        """The ONNX file holds the decoder only, so it cannot encode a piece.

        Raises:
            ExportError: always; encoding needs the float or int8 weights file.
        """
        raise ExportError(
            f"'{self.path}' holds the decoder only and cannot encode a piece into a latent; "
            "use the model's .safetensors file (float or int8) for prompts that need encoding"
        )


def load_decoder(checkpoint: str | Path) -> Decoder:
    """Any model file aurl writes, as a Decoder for `aurl.sample` generation.

    Args:
        checkpoint: a .onnx export, an int8 / fp16 / bf16 / float32 .safetensors file, a run
            directory or "bundled".

    Raises:
        CheckpointError: missing, unreadable, or made for another vocabulary version.
        MissingDependencyError: a .onnx file without onnxruntime installed.
        ExportError: a .onnx file that is not an aurl export.
    """
    path = resolve_checkpoint(checkpoint)
    if path.suffix == ".onnx":
        return OnnxDecoder(path)
    meta = read_metadata(path)
    check_vocab_version(meta.get("vocab_version"), path)
    if meta.get(FORMAT_KEY) == INT8_FORMAT:
        return TorchDecoder(load_int8(path))
    model = load_weights(path)
    fold(model)  # decoding only: the shared pitch rows computed into the table once
    return TorchDecoder(model)


def is_export(checkpoint: str | Path) -> bool:
    """True for a file that only `load_decoder` reads: an ONNX step (.onnx) or an int8 file.

    fp16 and bf16 exports are ordinary weights files (`load_weights` upcasts them), so False.
    """
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        return True
    if not path.is_file():
        return False
    try:
        return read_metadata(path).get(FORMAT_KEY) == INT8_FORMAT
    except CheckpointError:
        return False
