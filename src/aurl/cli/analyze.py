"""`aurl analyze`: key, tempo and metre, chords, sections, phrases and motifs of MIDI files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from aurl.cli._options import JsonFlag
from aurl.cli._output import conclude, emit, progress_bar

if TYPE_CHECKING:
    from aurl.analyze import AnalysisResult, AnalyzeResult

log = logging.getLogger(__name__)

HELP = (
    "Analyse MIDI files: key (with confidence and modulations), tempo and metre, chords per beat and "
    "per bar with Roman numerals, sections (A B A′), phrases, melody and motifs.\n\n"
    "FILE takes MIDI files or folders (walked recursively). --json prints "
    '{"analyses": [{...}, ...], "rejected": [...]}, one object per file. --plot out.png draws the '
    "piano roll with chords and sections beside the bar self-similarity matrix; with several files "
    "it writes one image per file, out-<file stem>.png.\n\n"
    "Exit code 0 when every file was read, 3 when some were rejected (each listed with its reason), "
    "1 when none could be read (or --plot lacks matplotlib), 2 for a missing path."
)
EXAMPLE = "Example: aurl analyze chorale.mid songs/ --plot analysis.png --json > analysis.json"

Files = Annotated[
    list[Path],
    typer.Argument(metavar="FILE", help="MIDI files or folders.", show_default=False),
]
PlotFile = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        help="Image to write (PNG unless the suffix names another format); several files give "
        "<stem>-<file stem><suffix>. Needs matplotlib.",
        show_default=False,
    ),
]


def analyze_command(files: Files, as_json: JsonFlag = False, plot: PlotFile = None) -> None:
    """Analyse MIDI files."""
    from aurl.analyze import analyze_files
    from aurl.analyze.plot import pyplot
    from aurl.data.preprocess import find_midi_files
    from aurl.errors import DataError

    if plot is not None:
        pyplot()  # a missing matplotlib fails here (exit 1), before the work
    paths = find_midi_files(files)
    if not paths:
        raise DataError(f"no MIDI file found in {', '.join(map(str, files))}; pass .mid files or folders")
    with progress_bar("analysing") as on_progress:
        result = analyze_files(paths, on_progress=on_progress)
    if plot is not None:
        for analysis, image in zip(result.analyses, plot_paths(plot, result.analyses), strict=True):
            _plot(analysis, image)
    if as_json:
        emit(result, as_json=True)
    else:
        show(result)
    conclude(ok=len(result.analyses), rejected=len(result.rejected))


def plot_paths(plot: Path, analyses: list[AnalysisResult]) -> list[Path]:
    """Where each file's image goes: `plot` for one file, `<stem>-<file stem><suffix>` for several.

    A missing suffix becomes .png; two files with the same stem get -2, -3, ... after the second.
    """
    suffix = plot.suffix or ".png"
    if len(analyses) == 1:
        return [plot.with_suffix(suffix)]
    found: list[Path] = []
    for analysis in analyses:
        base = f"{plot.stem}-{Path(analysis.file).stem}"
        path, n = plot.with_name(base + suffix), 1
        while path in found:
            n += 1
            path = plot.with_name(f"{base}-{n}{suffix}")
        found.append(path)
    return found


def _plot(analysis: AnalysisResult, image: Path) -> None:
    from aurl.analyze import plot_analysis
    from aurl.midi import read_midi

    image.parent.mkdir(parents=True, exist_ok=True)
    plot_analysis(read_midi(analysis.file), analysis, image)
    log.info("wrote %s", image)


def _top_pattern(a: AnalysisResult) -> str:
    pattern = max(a.chord_patterns, key=lambda p: p.count, default=None)
    return f"{' '.join(pattern.pattern)} (×{pattern.count})" if pattern is not None else "-"


def _sections(a: AnalysisResult) -> str:
    return " ".join(s.label for s in a.sections) or "-"


def _details(a: AnalysisResult) -> Table:
    """One file, one fact per row."""
    table = Table(title=a.file, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    others = ", ".join(f"{c.key} {c.score:.2f}" for c in a.key_candidates[1:])
    regions = " → ".join(f"{r.key} (bars {r.start_bar}-{r.end_bar})" for r in a.key_regions)
    metre = a.metre_from_notes
    rows = {
        "key": f"{a.key or '-'} (confidence {a.key_confidence:.2f}; then {others or '-'})",
        "key regions": regions or "-",
        "tempo": f"{a.tempo_bpm:.0f} bpm in the file, {_number(a.tempo_bpm_from_notes)} bpm from the notes",
        "metre": f"{a.time_signature} in the file"
        + (f", {metre.beats_per_bar} beats a bar from the notes" if metre is not None else ""),
        "notes": f"{a.n_notes} over {a.duration_beats:.0f} beats",
        "progression": " ".join(a.progression) or "-",
        "top chord pattern": _top_pattern(a),
        "sections": _sections(a),
        "phrases": f"{len(a.phrases)}, ending at beats " + ", ".join(f"{p.end_beats:g}" for p in a.phrases),
        "melody": a.melody.contour[:60] + ("…" if len(a.melody.contour) > 60 else ""),
        "motifs": "; ".join(f"{m.intervals} ×{len(m.occurrences_beats)}" for m in a.motifs[:5]) or "-",
    }
    for label, value in rows.items():
        table.add_row(label, value)
    return table


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _overview(analyses: list[AnalysisResult]) -> Table:
    """Several files, one row each."""
    table = Table(title=f"analyze ({len(analyses)} files)", title_justify="left")
    for column in ("file", "key", "conf.", "bpm", "metre", "notes", "sections", "phrases", "top pattern"):
        table.add_column(column, overflow="fold", no_wrap=column in ("file", "key", "metre", "bpm"))
    for a in analyses:
        table.add_row(
            Path(a.file).name,
            a.key or "-",
            f"{a.key_confidence:.2f}",
            f"{a.tempo_bpm:.0f}",
            a.time_signature,
            str(a.n_notes),
            _sections(a),
            str(len(a.phrases)),
            _top_pattern(a),
        )
    return table


def show(result: AnalyzeResult) -> None:
    """One file in detail, or one row per file; then the rejected files."""
    console = Console(soft_wrap=False)
    if len(result.analyses) == 1:
        console.print(_details(result.analyses[0]))
    elif result.analyses:
        console.print(_overview(result.analyses))
    if result.rejected:
        rejected = Table(title=f"rejected files ({len(result.rejected)})")
        rejected.add_column("file", overflow="fold")
        rejected.add_column("reason", overflow="fold")
        for r in result.rejected:
            rejected.add_row(r.file, r.reason)
        console.print(rejected)
