"""The model that ships inside the package, so that `aurl sample --out song.mid` works offline.

The weights live in this package folder, as one safetensors file
written by `aurl.models.save_weights` (model config, token table and vocabulary version in its
metadata); docs/model-card.md says how it was trained. Nothing is ever written there at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from aurl.errors import CheckpointError, UsageError

BUNDLED_NAME = "bundled"  # what --checkpoint takes to mean this model
BUNDLED_FILE = "bach-small.safetensors"


def bundled_dir() -> Path:
    """The package folder that holds the shipped weights."""
    return Path(__file__).parent


def bundled_model_path() -> Path:
    """The shipped weights file.

    Raises:
        CheckpointError: this installation has no bundled model (e.g. a source checkout before the
            model was trained).
    """
    path = bundled_dir() / BUNDLED_FILE
    if not path.is_file():
        raise CheckpointError(
            f"the bundled model is missing: no {BUNDLED_FILE} in '{bundled_dir()}'; reinstall aurl, "
            "or pass --checkpoint with a model.safetensors file or a training run folder"
        )
    return path


MODEL_FILE = "model.safetensors"  # what a training run folder holds: its best weights
EXPECTED = f"pass a .safetensors model file, a training run folder holding {MODEL_FILE}, or '{BUNDLED_NAME}'"


def resolve_checkpoint(checkpoint: str | os.PathLike[str]) -> Path:
    """The weights file that a user's `--checkpoint` names: 'bundled', a run folder, or a file.

    The string 'bundled' means the shipped model even if a file of that name exists in the working
    folder (pass './bundled' for that one).

    Raises:
        UsageError: nothing exists at that path (exit 2, like any missing input).
        CheckpointError: a folder without model.safetensors, or no bundled model in this installation.
    """
    if isinstance(checkpoint, str) and checkpoint == BUNDLED_NAME:
        return bundled_model_path()
    path = Path(checkpoint)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise CheckpointError(f"folder '{path}' holds no {MODEL_FILE}; {EXPECTED}")
        return path / MODEL_FILE
    if not path.is_file():
        raise UsageError(f"checkpoint '{path}' does not exist; {EXPECTED}")
    return path
