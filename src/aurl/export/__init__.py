"""Export trained models for runtimes without the training stack: ONNX, int8 and half precision.

`export_model(checkpoint, fmt, out, verify=...)` is what `aurl export` calls; `load_decoder(path)`
gives any model file aurl writes (.onnx, int8, fp16, bf16, float32) as an `aurl.sample` Decoder,
so sampling runs through the same generation code whatever the file.
"""

from aurl.export.errors import ExportError, MissingDependencyError, VerificationError
from aurl.export.quantize import load_int8
from aurl.export.result import Check, ExportResult
from aurl.export.run import FORMATS, export_model
from aurl.export.runtime import OnnxDecoder, is_export, load_decoder

__all__ = [
    "FORMATS",
    "Check",
    "ExportError",
    "ExportResult",
    "MissingDependencyError",
    "OnnxDecoder",
    "VerificationError",
    "export_model",
    "is_export",
    "load_decoder",
    "load_int8",
]
