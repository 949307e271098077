"""Pictures of an analysis: piano roll with chords and sections, and the bar self-similarity matrix.

matplotlib is an optional dependency (`pip install 'aurl[plot]'`); it is imported only here, when
a plot is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aurl.analyze.meter import bar_starts
from aurl.analyze.result import AnalysisResult
from aurl.analyze.structure import self_similarity
from aurl.errors import AurlError
from aurl.midi.score import Score


def pyplot() -> Any:
    """matplotlib.pyplot on a file-only backend, or a clear error when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise AurlError(
            "plotting needs matplotlib, which is not installed; run: pip install 'aurl[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _piano_roll(ax: Any, score: Score, result: AnalysisResult) -> None:
    tpq = score.ticks_per_beat
    pitched = ~score.is_drum
    starts, lengths = score.onset[pitched] / tpq, score.duration[pitched] / tpq
    pitch = score.pitch[pitched]
    ax.barh(pitch, lengths, left=starts, height=0.8, color="tab:blue", alpha=0.7, linewidth=0)
    low, high = (int(pitch.min()), int(pitch.max())) if len(pitch) else (60, 72)
    for chord in result.bar_chords:
        ax.text(chord.start_beats, high + 2, chord.symbol, fontsize=6, rotation=60, va="bottom")
    for i, section in enumerate(result.sections):
        ax.axvspan(section.start_beats, section.end_beats, color=f"C{i % 10}", alpha=0.08)
        ax.text(section.start_beats, low - 3, section.label, fontsize=9, fontweight="bold", va="top")
    for phrase in result.phrases[:-1]:
        ax.axvline(phrase.end_beats, color="grey", linewidth=0.6, linestyle="--")
    ax.set_ylim(low - 6, high + 8)
    ax.set_xlabel("beats")
    ax.set_ylabel("pitch")
    ax.set_title(f"{Path(result.file).name or 'score'}: {result.key or 'no key'}, {result.time_signature}")


def plot_analysis(score: Score, result: AnalysisResult, path: str | os.PathLike[str]) -> Path:
    """Write a PNG (or any format matplotlib knows from the suffix) with the piano roll and the matrix.

    Args:
        score: the analysed piece; result: its `analyze_score` result; path: the image to write.
    Returns:
        The path written.
    Raises:
        AurlError: matplotlib is not installed.
    """
    plt = pyplot()
    figure, (roll, matrix) = plt.subplots(1, 2, figsize=(16, 6), gridspec_kw={"width_ratios": [3, 1]})
    _piano_roll(roll, score, result)
    similarity = self_similarity(score, bar_starts(score))
    shown = matrix.imshow(similarity, origin="lower", cmap="magma", vmin=0, vmax=1)
    matrix.set_title("bar self-similarity")
    matrix.set_xlabel("bar")
    matrix.set_ylabel("bar")
    figure.colorbar(shown, ax=matrix, fraction=0.046)
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
