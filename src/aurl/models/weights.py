"""Save and load a model's weights as one safetensors file that also holds its config and token table.

The metadata carries the model config and the token table's scalars as JSON (plus whatever the
caller adds, e.g. the vocabulary version); the table's arrays travel as `table_*` tensors. No
pickle: a file handed in by a user is only ever parsed as safetensors and JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from aurl.atomic import atomic_path
from aurl.config import ModelConfig
from aurl.errors import CheckpointError
from aurl.models.model import MusicTransformerVAEGAN
from aurl.models.table import TokenTable

CONFIG_KEY = "aurl.model_config"
TABLE_KEY = "aurl.token_table"


def save_weights(
    model: MusicTransformerVAEGAN, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write the model atomically (temporary file in the same folder, fsync, rename).

    Args:
        model: the unwrapped model (not a torch.compile or DDP wrapper).
        path: the .safetensors file to write.
        metadata: extra string entries for the file's metadata (e.g. {"vocab_version": ...}).
    """
    path = Path(path)
    meta = {
        **(metadata or {}),
        CONFIG_KEY: model.config.model_dump_json(),
        TABLE_KEY: json.dumps(model.table.scalars()),
    }
    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a weights file.

    Raises:
        CheckpointError: the file is missing or not a safetensors file.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(
            f"cannot read model file '{path}': {error}; expected a .safetensors file"
        ) from None


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> MusicTransformerVAEGAN:
    """Rebuild the model saved by `save_weights`, in eval mode.

    Raises:
        CheckpointError: missing file, missing or invalid metadata, or tensors that do not fit the config.
    """
    meta = read_metadata(path)
    if CONFIG_KEY not in meta or TABLE_KEY not in meta:
        raise CheckpointError(
            f"model file '{path}' lacks aurl metadata; was it written by aurl's save_weights?"
        )
    try:
        config = ModelConfig.model_validate_json(meta[CONFIG_KEY])
    except ValidationError as error:
        raise CheckpointError(
            f"model file '{path}' has an invalid model config: {error.errors()[0]['msg']}"
        ) from None
    with safe_open(str(path), framework="pt") as handle:
        names = [k for k in handle.keys() if k.startswith("table_")]  # noqa: SIM118 - not a dict
        tables = {k[len("table_") :]: handle.get_tensor(k) for k in names}
    table = TokenTable.from_parts(json.loads(meta[TABLE_KEY]), tables)
    model = MusicTransformerVAEGAN(config, table)
    try:
        load_model(model, str(path), strict=True, device=str(map_location))
    except RuntimeError as error:
        raise CheckpointError(f"model file '{path}' does not fit its config: {str(error)[:200]}") from None
    return model.eval()
