"""The features of one piece that `aurl evaluate` reports and compares between sets.

Every feature is measured on the piece moved to the tokenizer's 32nd-note grid (8 ticks per beat,
`metrics.to_resolution`), so generated music (which lives on that grid) and reference music are
measured alike, and so groove_consistency compares bars of 32 positions in 4/4 rather than raw ticks
(on raw ticks every chorale scores ~1). On the grid a beat cannot be split in three, so
drum_pattern_consistency's triple pattern holds only the downbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from aurl.analyze.key import estimate_key
from aurl.evaluate import metrics
from aurl.midi.score import Score

SCALAR_FEATURES: Final = (
    "pitch_range",
    "n_pitches_used",
    "n_pitch_classes_used",
    "polyphony",
    "polyphony_rate",
    "pitch_in_scale_rate",
    "scale_consistency",
    "pitch_entropy",
    "pitch_class_entropy",
    "empty_beat_rate",
    "groove_consistency",
    "drum_pattern_consistency",
    "notes_per_beat",
    "notes_per_second",
    "mean_ioi_beats",
)
HISTOGRAM_FEATURES: Final = ("duration_histogram", "interval_histogram")


@dataclass(frozen=True)
class PieceFeatures:
    """Scalar metrics (NaN where a piece lacks what one needs), histograms, and the key used for
    pitch_in_scale_rate (None without pitched notes)."""

    metrics: dict[str, float]
    histograms: dict[str, np.ndarray]
    key: str | None


def piece_features(score: Score) -> PieceFeatures:
    """All SCALAR_FEATURES and HISTOGRAM_FEATURES of one piece, on the 32nd-note grid.

    pitch_in_scale_rate is taken in the piece's own key (`aurl.analyze.key.estimate_key`).
    """
    grid = metrics.to_resolution(score, metrics.GRID_STEPS_PER_BEAT)
    estimate = estimate_key(grid)
    in_key = (
        metrics.pitch_in_scale_rate(grid, estimate.key.tonic, "minor" if estimate.key.minor else "major")
        if estimate is not None
        else float("nan")
    )
    values = {
        "pitch_range": metrics.pitch_range(grid),
        "n_pitches_used": metrics.n_pitches_used(grid),
        "n_pitch_classes_used": metrics.n_pitch_classes_used(grid),
        "polyphony": metrics.polyphony(grid),
        "polyphony_rate": metrics.polyphony_rate(grid),
        "pitch_in_scale_rate": in_key,
        "scale_consistency": metrics.scale_consistency(grid),
        "pitch_entropy": metrics.pitch_entropy(grid),
        "pitch_class_entropy": metrics.pitch_class_entropy(grid),
        "empty_beat_rate": metrics.empty_beat_rate(grid),
        "groove_consistency": metrics.groove_consistency(grid),
        "drum_pattern_consistency": metrics.drum_pattern_consistency(grid),
        "notes_per_beat": metrics.notes_per_beat(grid),
        "notes_per_second": metrics.notes_per_second(grid),
        "mean_ioi_beats": metrics.mean_ioi_beats(grid),
    }
    histograms = {
        "duration_histogram": metrics.duration_histogram(grid),
        "interval_histogram": metrics.interval_histogram(grid),
    }
    return PieceFeatures(
        {k: float(v) for k, v in values.items()}, histograms, estimate.key.name if estimate else None
    )


def feature_matrix(pieces: list[PieceFeatures], names: tuple[str, ...] = SCALAR_FEATURES) -> np.ndarray:
    """(N, F) the named scalar features of N pieces, NaN where undefined."""
    return np.array([[p.metrics[name] for name in names] for p in pieces], np.float64).reshape(
        len(pieces), len(names)
    )
