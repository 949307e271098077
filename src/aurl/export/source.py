"""Which model an export starts from: a weights file, a run directory, or the bundled model.

Only float weights written by `aurl.models.save_weights` (float32, or an fp16/bf16 export, upcast
on load) are a source; an ONNX or int8 file is already an export and is refused by name.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from safetensors import SafetensorError, safe_open

from aurl.errors import CheckpointError
from aurl.export.metadata import FORMAT_KEY, INT8_FORMAT
from aurl.models import MusicTransformerVAEGAN, load_weights
from aurl.models.bundled import EXPECTED, resolve_checkpoint
from aurl.models.weights import CONFIG_KEY

log = logging.getLogger(__name__)


def source_metadata(path: Path) -> dict[str, str]:
    """The metadata of an aurl float weights file.

    Raises:
        CheckpointError: not a safetensors file, no aurl metadata, or already an int8 export.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
    except (OSError, ValueError, RuntimeError, SafetensorError):
        kind = "an ONNX model (already exported)" if path.suffix == ".onnx" else "not a safetensors file"
        raise CheckpointError(f"cannot export '{path}': {kind}; {EXPECTED}") from None
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"cannot export '{path}': a safetensors file without aurl metadata; {EXPECTED}")
    if meta.get(FORMAT_KEY) == INT8_FORMAT:
        raise CheckpointError(
            f"cannot export '{path}': it is already an int8 export; export from the float32 model"
        )
    return meta


def load_source(checkpoint: str | Path) -> tuple[MusicTransformerVAEGAN, dict[str, str], Path]:
    """The float32 model, its file's metadata and the file's path, for an export.

    Raises:
        CheckpointError: see `resolve_checkpoint` and `source_metadata`.
    """
    path = resolve_checkpoint(checkpoint)
    meta = source_metadata(path)
    model = load_weights(path).float().eval()
    log.debug("loaded %s (%s mode, %s attention)", path, model.config.mode, model.config.attention)
    return model, meta, path


def inference_copy(model: MusicTransformerVAEGAN) -> MusicTransformerVAEGAN:
    """A copy without the token table's `follow` matrix, in eval mode.

    `follow` (V x V bool, 0.6 MB for aurl's vocabulary) only feeds the grammar term of the training
    loss; the weights-file exports (int8, fp16, bf16) leave it out. Decoding never reads it.
    """
    if model.table.follow is None:
        return model
    copy = MusicTransformerVAEGAN(model.config, dataclasses.replace(model.table, follow=None))
    state = {k: v for k, v in model.state_dict().items() if k != "table_follow"}
    copy.load_state_dict(state, strict=True)
    return copy.eval()
