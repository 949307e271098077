"""ONNX export of the decoder's incremental step, for every mode and attention kind.

The graph is `export.graph.StepGraph` traced by PyTorch's TorchScript-based exporter
(`torch.onnx.export(dynamo=False)`): it needs only the `onnx` package and traces a model in well
under a second, where the torch.export-based exporter also needs onnxscript and takes tens of
seconds for the same graph. The file's metadata holds the source's metadata (model config, token
table, vocabulary version), the opset and the step's input/output layout as JSON.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from aurl.atomic import atomic_path
from aurl.export.errors import ExportError, require
from aurl.export.graph import StepGraph, StepLayout, example_inputs
from aurl.export.metadata import LAYOUT_KEY, OPSET_KEY
from aurl.models import MusicTransformerVAEGAN

log = logging.getLogger(__name__)

OPSET = 20  # Gelu (with its tanh approximation) is one node from opset 20; onnxruntime >= 1.17 runs it


def export_onnx(
    model: MusicTransformerVAEGAN, path: Path, metadata: dict[str, str], opset: int = OPSET
) -> StepLayout:
    """Write the model's incremental step to `path` as ONNX, atomically.

    Args:
        model: a float32 model in eval mode (any mode and attention kind).
        path: the .onnx file to write.
        metadata: string entries for the file's metadata_props (the opset and layout are added).
        opset: ONNX opset version.

    Returns:
        The layout of the step's inputs and outputs.

    Raises:
        MissingDependencyError: onnx is not installed.
    """
    onnx = require("onnx", "ONNX export")
    graph = StepGraph(model.float().eval()).eval()
    layout = graph.layout
    with atomic_path(path, suffix=".onnx") as tmp:
        _trace(graph, tmp, opset)
        proto = onnx.load(str(tmp))
        meta = {**metadata, OPSET_KEY: str(opset), LAYOUT_KEY: layout.to_json()}
        del proto.metadata_props[:]
        for key, value in sorted(meta.items()):
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = "aurl decoder step: ids + KV cache + beat state in, logits + grown cache out"
        onnx.save(proto, str(tmp))
    return layout


def _trace(graph: StepGraph, path: Path, opset: int) -> None:
    layout = graph.layout
    # The tracer warns about Python ints taken from shapes and that this exporter is the legacy
    # one; the shapes it names stay dynamic (verification feeds other sizes), so keep them in the log.
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            graph,
            example_inputs(layout, local=graph.model.config.local_window),
            str(path),
            dynamo=False,
            input_names=layout.input_names,
            output_names=layout.output_names,
            dynamic_axes=layout.dynamic_axes(),
            opset_version=opset,
            do_constant_folding=True,
        )
    for warning in caught:
        log.debug("onnx export: %s", str(warning.message).splitlines()[0])


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, without loading its weights.

    Raises:
        MissingDependencyError: onnx is not installed.
        ExportError: the file is not an ONNX model.
    """
    onnx = require("onnx", "reading an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ... depending on the damage
        raise ExportError(f"cannot read ONNX model '{path}': {str(error)[:120]}") from None
    return {prop.key: prop.value for prop in proto.metadata_props}
