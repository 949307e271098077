"""Evaluation: MusPy-compatible metrics per piece, set-against-set comparisons, memorisation.

    result = evaluate_sets(["samples/"], ["data/test/"])   # EvaluateResult (pydantic)
    result.model_dump_json()                               # files[*].metrics, features, ...
    plot_feature_histograms(result, "plots/")              # one PNG per feature (needs matplotlib)

The metric functions themselves live in `aurl.evaluate.metrics` (pure functions of a Score).
Model likelihood (bits per token / note / second) needs a trained checkpoint and is not here yet.
"""

from aurl.evaluate.distributions import frechet_feature_distance, kl_divergence, overlap_area
from aurl.evaluate.features import HISTOGRAM_FEATURES, SCALAR_FEATURES, PieceFeatures, piece_features
from aurl.evaluate.memorisation import MemorisationIndex, memorisation
from aurl.evaluate.plot import plot_feature_histograms
from aurl.evaluate.report import evaluate_sets
from aurl.evaluate.result import EvaluateResult

__all__ = [
    "HISTOGRAM_FEATURES",
    "SCALAR_FEATURES",
    "EvaluateResult",
    "MemorisationIndex",
    "PieceFeatures",
    "evaluate_sets",
    "frechet_feature_distance",
    "kl_divergence",
    "memorisation",
    "overlap_area",
    "piece_features",
    "plot_feature_histograms",
]
