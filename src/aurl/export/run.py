"""`export_model`: one call from a checkpoint to an exported, optionally verified, file."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from aurl.errors import UsageError
from aurl.export.errors import VerificationError
from aurl.export.half import DTYPES, save_half
from aurl.export.metadata import INT8_FORMAT, ONNX_FORMAT, ONNX_INT8_FORMAT, export_metadata
from aurl.export.onnx import OPSET, export_onnx
from aurl.export.quantize import quantize, quantize_onnx, save_int8
from aurl.export.result import ExportResult
from aurl.export.source import inference_copy, load_source
from aurl.export.verify import Verdict, verify_half, verify_int8, verify_onnx
from aurl.models import MusicTransformerVAEGAN

log = logging.getLogger(__name__)

FORMATS = ("onnx", "int8", "fp16", "bf16")


def export_model(checkpoint: str | Path, fmt: str, out: str | Path, *, verify: bool = False) -> ExportResult:
    """Export a model file, run directory or "bundled" to `out` in format `fmt`.

    Args:
        checkpoint: the float weights to export (see `aurl.models.bundled.resolve_checkpoint`).
        fmt: "onnx" (the incremental step with its KV cache), "int8" (dynamic int8 linears: an
            int8 safetensors file, or an onnxruntime-quantised ONNX step when `out` ends in .onnx),
            "fp16" or "bf16" (half-precision weights file).
        out: the file to write; its folder is created.
        verify: compare the export with the PyTorch model (see `aurl.export.verify`).

    Raises:
        UsageError: unknown format, `out` is the checkpoint itself, or its suffix does not fit the
            format (.onnx for onnx, not .onnx for fp16 / bf16).
        CheckpointError: the checkpoint is missing or not an aurl float weights file.
        MissingDependencyError: onnx / onnxruntime missing for an ONNX format or its verification.
        VerificationError: `verify` found a difference beyond tolerance (the file is kept).
    """
    start = time.perf_counter()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    _check_suffix(fmt, out)
    model, meta, source = load_source(checkpoint)
    if out.exists() and out.resolve() == source.resolve():
        raise UsageError(f"--out '{out}' is the checkpoint itself; choose another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    file_format, verdict = _write(model, meta, source, fmt, out, verify)
    result = ExportResult(
        checkpoint=str(source),
        format=fmt,
        file_format=file_format,
        out=str(out),
        mode=model.config.mode,
        attention=model.config.attention,
        size_bytes=out.stat().st_size,
        source_bytes=source.stat().st_size,
        size_ratio=out.stat().st_size / source.stat().st_size,
        opset=OPSET if file_format in (ONNX_FORMAT, ONNX_INT8_FORMAT) else None,
        seconds=time.perf_counter() - start,
        verified=None if verdict is None else verdict.passed,
        loss_float32=None if verdict is None else verdict.loss_float32,
        loss_export=None if verdict is None else verdict.loss_export,
        loss_increase_pct=None if verdict is None else verdict.loss_increase_pct,
        checks=[] if verdict is None else verdict.checks,
    )
    if verdict is not None and not verdict.passed:
        raise VerificationError(_failure(result))
    return result


def _check_suffix(fmt: str, out: Path) -> None:
    """An ONNX file ends in .onnx and nothing else does: `load_decoder` tells them apart that way."""
    if fmt == "onnx" and out.suffix != ".onnx":
        raise UsageError(f"--out '{out}' must end in .onnx for --format onnx")
    if fmt in DTYPES and out.suffix == ".onnx":
        raise UsageError(
            f"--out '{out}' ends in .onnx but --format {fmt} writes safetensors; use .safetensors"
        )


def _write(
    model: MusicTransformerVAEGAN, meta: dict[str, str], source: Path, fmt: str, out: Path, verify: bool
) -> tuple[str, Verdict | None]:
    """Write the export; returns its file format key and, with `verify`, the verdict."""
    if fmt == "onnx":
        export_onnx(model, out, export_metadata(meta, ONNX_FORMAT, source))
        return ONNX_FORMAT, verify_onnx(model, out, quantized=False) if verify else None
    if fmt == "int8" and out.suffix == ".onnx":
        _int8_onnx(model, export_metadata(meta, ONNX_INT8_FORMAT, source), out)
        return ONNX_INT8_FORMAT, verify_onnx(model, out, quantized=True) if verify else None
    if fmt == "int8":
        quantized = quantize(inference_copy(model))
        save_int8(quantized, out, export_metadata(meta, INT8_FORMAT, source))
        return INT8_FORMAT, verify_int8(model, quantized, out) if verify else None
    assert fmt in DTYPES
    save_half(inference_copy(model), out, fmt, export_metadata(meta, fmt, source))
    return fmt, verify_half(model, out, fmt) if verify else None


def _int8_onnx(model: MusicTransformerVAEGAN, meta: dict[str, str], out: Path) -> None:
    """Export the float32 step beside `out`, quantise it into `out`, drop the float32 file."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.float32.", suffix=".onnx")
    os.close(fd)
    try:
        export_onnx(model, Path(name), meta)
        quantize_onnx(Path(name), out, meta)
    finally:
        os.remove(name)


def _failure(result: ExportResult) -> str:
    failed = [c for c in result.checks if not c.passed]
    parts = "; ".join(
        f"{c.name}: {c.max_abs_diff:.3g} > {c.tolerance:g}" for c in failed if c.tolerance is not None
    )
    return (
        f"verification of '{result.out}' failed ({parts or 'non-finite values'}); "
        "the file is kept for inspection; report the model and aurl version if this persists"
    )
