"""Evaluation: MusPy-compatible metrics per piece, set-against-set comparisons, memorisation.

    result = evaluate_sets(["samples/"], ["data/test/"])   # EvaluateResult (pydantic)
    result.model_dump_json()                               # files[*].metrics, features, ...
    plot_feature_histograms(result, "plots/")              # one PNG per feature (needs matplotlib)

    result = evaluate_sets(["samples/"], checkpoint="bundled")  # reference: the chorales' test split
    result.likelihood.bits_per_note                        # the model's loss on the reference set
    measure_likelihood("runs/x", ["data/test/"])           # LikelihoodResult, without the rest

The metric functions themselves live in `aurl.evaluate.metrics` (pure functions of a Score). The
likelihood functions (`measure_likelihood`, `score_likelihood`, in `aurl.evaluate.likelihood`) load
on first use, so the rest of the package never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aurl.evaluate.distributions import frechet_feature_distance, kl_divergence, overlap_area
from aurl.evaluate.features import HISTOGRAM_FEATURES, SCALAR_FEATURES, PieceFeatures, piece_features
from aurl.evaluate.memorisation import MemorisationIndex, memorisation
from aurl.evaluate.plot import plot_feature_histograms
from aurl.evaluate.report import evaluate_sets
from aurl.evaluate.result import EvaluateResult, LikelihoodResult

if TYPE_CHECKING:
    from aurl.evaluate.likelihood import measure_likelihood, score_likelihood

_LAZY = {"measure_likelihood", "score_likelihood"}  # they import torch

__all__ = [
    "HISTOGRAM_FEATURES",
    "SCALAR_FEATURES",
    "EvaluateResult",
    "LikelihoodResult",
    "MemorisationIndex",
    "PieceFeatures",
    "evaluate_sets",
    "frechet_feature_distance",
    "kl_divergence",
    "measure_likelihood",
    "memorisation",
    "overlap_area",
    "piece_features",
    "plot_feature_histograms",
    "score_likelihood",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'aurl.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module("aurl.evaluate.likelihood"), name)
    globals()[name] = value
    return value
