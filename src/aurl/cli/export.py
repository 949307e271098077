"""`aurl export`: a trained model as ONNX, int8 or half precision, optionally verified."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from aurl.cli._options import JsonFlag
from aurl.cli._output import emit

if TYPE_CHECKING:
    from aurl.export import ExportResult

HELP = (
    "Export a trained model for runtimes without the training stack.\n\n"
    "CHECKPOINT is a model.safetensors file, a run directory (its model.safetensors) or 'bundled'. "
    "Formats: onnx (the decoder's incremental step with its KV cache as inputs and outputs), int8 "
    "(dynamic int8 linear layers: a .safetensors file, or an onnxruntime-quantised step when --out "
    "ends in .onnx), fp16 and bf16 (half-precision weights, loadable by aurl.models.load_weights). "
    "--verify compares the export with the PyTorch model on random and real tokens.\n\n"
    "The ONNX formats need the optional packages onnx and onnxruntime, the 'export' extra of aurl.\n\n"
    "Exit code 0 on success, 1 when the checkpoint cannot be read or exported, a dependency is "
    "missing or verification fails (one line each), 2 for a wrong flag."
)
EXAMPLE = "Example: aurl export runs/bach --format onnx --out bach.onnx --verify"


class Format(str, Enum):
    """The export formats (values as on the command line)."""

    onnx = "onnx"
    int8 = "int8"
    fp16 = "fp16"
    bf16 = "bf16"


Checkpoint = Annotated[
    str,
    typer.Argument(
        metavar="CHECKPOINT",
        help="A model.safetensors file, a run directory or 'bundled'.",
        show_default=False,
    ),
]
FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", case_sensitive=False, help="onnx, int8, fp16 or bf16.", show_default=True),
]
OutFile = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="The file to write (.onnx for onnx; int8 writes ONNX when it ends in .onnx, else safetensors).",
        show_default=False,
    ),
]
Verify = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Compare the export with the PyTorch model (logits within 1e-4 for onnx, loss within 2% "
        "for int8/fp16/bf16); exit 1 when it fails.",
    ),
]


def export_command(
    checkpoint: Checkpoint,
    out: OutFile,
    fmt: FormatOption = Format.onnx,
    verify: Verify = False,
    as_json: JsonFlag = False,
) -> None:
    """Export a trained model as ONNX, int8, fp16 or bf16."""
    from aurl.export import export_model  # torch and onnx load with the command, not with --help

    result = export_model(checkpoint, fmt.value, out, verify=verify)
    if as_json:
        emit(result, as_json=True)
        return
    emit(result.model_copy(update={"checks": []}), as_json=False)
    if result.checks:
        Console(soft_wrap=False).print(_checks_table(result))


def _checks_table(result: ExportResult) -> Table:
    """The verification checks with differences in scientific notation (they span 1e-8 .. 1)."""
    table = Table(title=f"checks ({len(result.checks)})", title_justify="left")
    for column in ("check", "max abs diff", "tolerance", "passed"):
        table.add_column(column)
    for check in result.checks:
        tolerance = "reported" if check.tolerance is None else f"{check.tolerance:.0e}"
        table.add_row(check.name, f"{check.max_abs_diff:.2e}", tolerance, "yes" if check.passed else "NO")
    return table
