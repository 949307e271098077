"""`aurl evaluate`: generated MIDI files against reference ones, and a model's likelihood."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from aurl.atomic import write_text
from aurl.cli._options import JsonFlag
from aurl.cli._output import conclude, emit, progress_bar

if TYPE_CHECKING:
    from aurl.evaluate import EvaluateResult

log = logging.getLogger(__name__)

HELP = (
    "Compare generated MIDI files with reference ones: per-file metrics, per-feature overlap and KL "
    "divergence, a Fréchet feature distance, memorisation, and with --checkpoint the model's bits per "
    "token, note and second on the reference set.\n\n"
    "GENERATED, --reference and --training take MIDI files or folders (walked recursively); repeat "
    "--reference or --training for several. Without --reference the bundled Bach chorales' test split "
    "is the reference.\n\n"
    "Exit code 0 when every file was read, 3 when some were rejected (each listed with its reason), "
    "1 when no file of a set could be read, 2 for a missing path."
)
EXAMPLE = (
    "Example: aurl evaluate samples/ --reference data/test/ --checkpoint runs/bach --out report.json "
    "--plot plots/"
)

Generated = Annotated[
    list[Path],
    typer.Argument(metavar="GENERATED", help="Generated MIDI files or folders.", show_default=False),
]
Reference = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference",
        "-r",
        help="Reference MIDI files or folders (repeat for several; default: the bundled chorales' "
        "test split).",
        show_default=False,
    ),
]
Training = Annotated[
    list[Path] | None,
    typer.Option(
        "--training",
        "-t",
        help="More known music for the memorisation check, e.g. the training set (repeatable).",
        show_default=False,
    ),
]
Checkpoint = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        help="A model.safetensors file, a run folder or 'bundled': adds the likelihood of the reference set.",
        show_default=False,
    ),
]
MaxContext = Annotated[
    int | None,
    typer.Option(
        "--max-context",
        min=2,
        help="Most tokens the model reads at once (default 2048); longer pieces are scored in "
        "overlapping windows.",
        show_default=False,
    ),
]
ReportFile = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Also write the JSON report to this file.", show_default=False),
]
PlotDir = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Write one histogram per feature into this folder (needs matplotlib).",
        show_default=False,
    ),
]


def evaluate_command(
    generated: Generated,
    reference: Reference = None,
    training: Training = None,
    checkpoint: Checkpoint = None,
    max_context: MaxContext = None,
    as_json: JsonFlag = False,
    out: ReportFile = None,
    plot: PlotDir = None,
) -> None:
    """Compare generated MIDI files with reference ones."""
    from aurl.analyze.plot import pyplot
    from aurl.evaluate import evaluate_sets, plot_feature_histograms

    if plot is not None:
        pyplot()  # a missing matplotlib fails here (exit 1), before the work
    with progress_bar("evaluating") as on_progress:
        result = evaluate_sets(
            generated,
            reference or None,
            training or (),
            on_progress=on_progress,
            checkpoint=checkpoint,
            max_context=max_context,
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, result.model_dump_json(indent=1) + "\n")
        log.info("wrote %s", out)
    if plot is not None:
        written = plot_feature_histograms(result, plot)
        log.info("wrote %d plots into %s", len(written), plot)
    if as_json:
        emit(result, as_json=True)
    else:
        show(result)
    skipped = result.likelihood.skipped if result.likelihood is not None else []
    conclude(ok=len(result.files), rejected=len(result.rejected) + len(skipped))


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _features_table(result: EvaluateResult) -> Table:
    table = Table(title="features (OA: overlapping area, 1 = same; KLD: KL(reference || generated), nats)")
    for column in ("feature", "generated mean", "reference mean", "OA", "KLD"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for c in result.features:
        if c.generated_mean is None and c.reference_mean is None:
            continue  # histograms: their comparisons are in the JSON
        table.add_row(
            c.feature,
            _number(c.generated_mean),
            _number(c.reference_mean),
            _number(c.overlap_area),
            _number(c.kl_divergence),
        )
    return table


def _summary_table(result: EvaluateResult) -> Table:
    table = Table(title="evaluate", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("generated files", str(result.n_generated))
    table.add_row("reference files", f"{result.n_reference} ({result.reference})")
    table.add_row(
        "Fréchet feature distance",
        f"{_number(result.frechet_feature_distance)} over {len(result.frechet_features)} features",
    )
    m = result.memorisation
    table.add_row(
        "memorisation",
        f"{_number(m.mean_copied_share)} of {m.window_bars}-bar windows copied on average; longest copied "
        f"span {m.max_longest_span_bars} bars ({m.known_files} known files)",
    )
    if (lk := result.likelihood) is not None:
        table.add_row(
            "likelihood",
            f"{_number(lk.bits_per_token)} bits/token, {_number(lk.bits_per_note)} bits/note, "
            f"{_number(lk.bits_per_second)} bits/s on {lk.n_pieces} reference pieces",
        )
        kl = f", KL {_number(lk.kl_bits_per_token)} bits/token" if lk.kl_bits_per_token is not None else ""
        table.add_row("model", f"{lk.checkpoint} ({lk.mode}, latent: {lk.latent}{kl})")
    return table


def _copies_table(result: EvaluateResult, limit: int = 10) -> Table | None:
    copied = [
        (f.file, f.memorisation)
        for f in result.files
        if f.memorisation is not None and f.memorisation.longest_span_bars > 0
    ]
    if not copied:
        return None
    copied.sort(key=lambda item: -(item[1].copied_share or 0.0))
    table = Table(title=f"most copied generated files ({min(len(copied), limit)} of {len(copied)})")
    for column in ("file", "copied share", "longest span (bars)", "from"):
        table.add_column(column, overflow="fold")
    for file, m in copied[:limit]:
        source = Path(m.longest_span_source).name if m.longest_span_source else "-"
        table.add_row(Path(file).name, _number(m.copied_share), str(m.longest_span_bars), source)
    return table


def show(result: EvaluateResult) -> None:
    """The compact report for a person: set summary, features, copied files, rejected files."""
    console = Console(soft_wrap=False)
    console.print(_summary_table(result))
    console.print(_features_table(result))
    if (copies := _copies_table(result)) is not None:
        console.print(copies)
    skipped = result.likelihood.skipped if result.likelihood is not None else []
    rejected = [*result.rejected, *skipped]
    if rejected:
        table = Table(title=f"rejected files ({len(rejected)})")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for r in rejected:
            table.add_row(r.file, r.reason)
        console.print(table)
