"""Half-precision weights files (fp16 or bf16): half the size, loadable by `aurl.models.load_weights`.

Every floating-point tensor is cast; the token table (int64 and bool) stays exact. The file is an
ordinary aurl weights file with one more metadata key (`aurl.export.dtype`): `load_weights` copies
its tensors into a float32 model, so it runs on any CPU, and `model.half()` / `.bfloat16()` after
loading gives a half-precision model on devices that compute in it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from aurl.export.metadata import DTYPE_KEY
from aurl.models import MusicTransformerVAEGAN, save_weights

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def save_half(model: MusicTransformerVAEGAN, path: Path, fmt: str, metadata: dict[str, str]) -> None:
    """Write a copy of the model with its floating-point tensors in fp16 or bf16, atomically.

    Args:
        model: the float32 model (left unchanged).
        path: the .safetensors file to write.
        fmt: "fp16" or "bf16".
        metadata: the export's metadata; the dtype is added.
    """
    half = copy.deepcopy(model).to(DTYPES[fmt])  # .to(dtype) casts floating tensors only
    save_weights(half, path, {**metadata, DTYPE_KEY: fmt})
