"""What every exported file records about itself: the source's metadata plus the export's own keys.

Keys of the source weights file (model config, token table, vocabulary version, step, ...) are
carried over unchanged, so any export can be traced back and its model rebuilt; the export adds
its format, the aurl version that wrote it and the file it came from.
"""

from __future__ import annotations

from pathlib import Path

from aurl.tokens.vocab import VOCAB_VERSION
from aurl.version import __version__

FORMAT_KEY = "aurl.export.format"
ONNX_FORMAT = "onnx"
ONNX_INT8_FORMAT = "onnx-int8"
INT8_FORMAT = "int8-dynamic"
LAYOUT_KEY = "aurl.export.step_layout"
OPSET_KEY = "aurl.export.opset"
QUANTIZED_KEY = "aurl.export.quantized"
DTYPE_KEY = "aurl.export.dtype"


def export_metadata(source: dict[str, str], fmt: str, source_path: Path, **extra: str) -> dict[str, str]:
    """The metadata of an export of format `fmt` from the weights file at `source_path`.

    A source without a vocabulary version predates the key; aurl has one vocabulary, so the
    current version is recorded.
    """
    return {
        **source,
        "vocab_version": source.get("vocab_version", VOCAB_VERSION),
        FORMAT_KEY: fmt,
        "aurl.export.aurl_version": __version__,
        "aurl.export.source": source_path.name,
        **extra,
    }
