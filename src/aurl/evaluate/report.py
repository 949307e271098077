"""The library entry point of `aurl evaluate`: generated files against reference files."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aurl.data.preprocess import find_midi_files
from aurl.errors import AurlError, DataError, UsageError
from aurl.evaluate.distributions import (
    frechet_feature_distance,
    kl_divergence,
    overlap_area,
    pairwise_distances,
)
from aurl.evaluate.features import (
    HISTOGRAM_FEATURES,
    SCALAR_FEATURES,
    PieceFeatures,
    feature_matrix,
    piece_features,
)
from aurl.evaluate.memorisation import WINDOW_BARS, Memorisation, MemorisationIndex, memorisation
from aurl.evaluate.result import (
    EvaluateResult,
    FeatureComparison,
    FileMetrics,
    LikelihoodResult,
    MemorisationResult,
    MemorisationSummary,
    RejectedFile,
)
from aurl.midi import read_midi
from aurl.midi.score import Score

if TYPE_CHECKING:
    from aurl.models import MusicTransformerVAEGAN

ProgressCallback = Callable[[int, int], None]
BUNDLED_REFERENCE = "the bundled Bach chorales, test split"


def _number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class _Piece:
    file: str
    score: Score
    features: PieceFeatures


def _read_all(
    paths: list[Path],
    rejected: list[RejectedFile],
    done: int,
    total: int,
    on_progress: ProgressCallback | None,
) -> list[_Piece]:
    pieces = []
    for i, path in enumerate(paths):
        try:
            score = read_midi(path)
            pieces.append(_Piece(str(path), score, piece_features(score)))
        except AurlError as error:
            rejected.append(RejectedFile(file=str(path), reason=str(error)))
        if on_progress is not None:
            on_progress(done + i + 1, total)
    return pieces


def _values(matrix: np.ndarray, column: int) -> np.ndarray:
    values = matrix[:, column]
    return values[np.isfinite(values)]


def _comparison(name: str, generated: np.ndarray, reference: np.ndarray, scalar: bool) -> FeatureComparison:
    """One feature: value distributions (scalars only) and Yang & Lerch's intra/inter-set distances.

    Args:
        generated, reference: (N,) values or (N, D) histograms, undefined pieces already removed.
    """
    enough = len(generated) >= 2 and len(reference) >= 2
    intra_g = pairwise_distances(generated) if enough else np.zeros(0)
    intra_r = pairwise_distances(reference) if enough else np.zeros(0)
    inter = pairwise_distances(generated, reference) if enough else np.zeros(0)

    def stat(fn: Callable[[np.ndarray], float], x: np.ndarray) -> float | None:
        return _number(fn(x)) if scalar and len(x) else None

    def pair(fn: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray, b: np.ndarray) -> float | None:
        return _number(fn(a, b)) if enough else None

    return FeatureComparison(
        feature=name,
        generated_mean=stat(np.mean, generated),
        generated_std=stat(np.std, generated),
        reference_mean=stat(np.mean, reference),
        reference_std=stat(np.std, reference),
        overlap_area=pair(overlap_area, generated, reference) if scalar else None,
        kl_divergence=pair(kl_divergence, reference, generated) if scalar else None,
        intra_generated_mean=_number(intra_g.mean()) if len(intra_g) else None,
        intra_reference_mean=_number(intra_r.mean()) if len(intra_r) else None,
        inter_mean=_number(inter.mean()) if len(inter) else None,
        overlap_area_intra_generated_inter=pair(overlap_area, intra_g, inter),
        kl_divergence_intra_generated_inter=pair(kl_divergence, intra_g, inter),
        overlap_area_intra_reference_inter=pair(overlap_area, intra_r, inter),
        kl_divergence_intra_reference_inter=pair(kl_divergence, intra_r, inter),
    )


def compare_features(
    generated: list[PieceFeatures], reference: list[PieceFeatures]
) -> list[FeatureComparison]:
    """A FeatureComparison for every scalar and histogram feature."""
    gen, ref = feature_matrix(generated), feature_matrix(reference)
    found = [
        _comparison(name, _values(gen, j), _values(ref, j), scalar=True)
        for j, name in enumerate(SCALAR_FEATURES)
    ]
    for name in HISTOGRAM_FEATURES:
        gen_h, ref_h = (
            np.array([p.histograms[name] for p in ps]).reshape(len(ps), -1) for ps in (generated, reference)
        )
        found.append(_comparison(name, gen_h, ref_h, scalar=False))
    return found


def _file_metrics(piece: _Piece, which: str, copied: Memorisation | None) -> FileMetrics:
    return FileMetrics(
        file=piece.file,
        set=which,  # type: ignore[arg-type]
        key=piece.features.key,
        metrics={k: _number(v) for k, v in piece.features.metrics.items()},
        histograms={k: [float(x) for x in v] for k, v in piece.features.histograms.items()},
        memorisation=(
            MemorisationResult(
                n_windows=copied.n_windows,
                copied_share=_number(copied.copied_share),
                longest_span_bars=copied.longest_span_bars,
                longest_span_source=copied.longest_span_source,
            )
            if copied is not None
            else None
        ),
    )


def _reference_paths(reference: Sequence[str | Path] | None) -> tuple[list[Path], str]:
    """The reference files and how the result names the set."""
    if reference is None:
        from aurl.data.corpus import bach_files

        return bach_files("test"), BUNDLED_REFERENCE
    return find_midi_files(reference), ", ".join(str(p) for p in reference)


def _require_readable(
    name: str, pieces: list[_Piece], paths: list[Path], rejected: list[RejectedFile]
) -> None:
    if pieces:
        return
    if not paths:
        raise UsageError(f"no readable MIDI file in the {name} set; pass MIDI files or folders holding them")
    first = next(r for r in rejected if Path(r.file) in set(paths))
    raise DataError(
        f"none of the {len(paths)} MIDI files in the {name} set could be read; the first: {first.reason}"
    )


def _likelihood(
    pieces: list[_Piece],
    loaded: tuple[MusicTransformerVAEGAN, Path],
    max_context: int | None,
    on_progress: ProgressCallback | None,
) -> LikelihoodResult:
    from aurl.evaluate.likelihood import DEFAULT_MAX_CONTEXT, score_likelihood

    model, path = loaded
    found = score_likelihood(
        model,
        [(p.file, p.score) for p in pieces],
        max_context=max_context or DEFAULT_MAX_CONTEXT,
        on_progress=on_progress,
    )
    return found.model_copy(update={"checkpoint": str(path)})


def evaluate_sets(
    generated: Sequence[str | Path],
    reference: Sequence[str | Path] | None = None,
    training: Sequence[str | Path] = (),
    window_bars: int = WINDOW_BARS,
    on_progress: ProgressCallback | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    max_context: int | None = None,
) -> EvaluateResult:
    """Measure generated MIDI files against reference ones.

    Args:
        generated, reference: MIDI files or folders (walked recursively). reference None: the
            bundled Bach chorales' test split (40 files), named so in `result.reference`.
        training: more known music for the memorisation check only (e.g. the training set).
        window_bars: bars per memorisation window.
        on_progress: called with (files read, files in all), then, with a checkpoint, with
            (windows scored, windows in all) while the model scores the reference set.
        checkpoint: a model file, a run folder or "bundled": adds the model's bits per token, per
            note and per second on the reference set (`aurl.evaluate.likelihood`).
        max_context: most tokens the model reads at once (default 2048); longer pieces go in windows.
    Returns:
        Per-file metrics, per-feature set comparisons, the Fréchet feature distance, memorisation
        and the likelihood. Unreadable files are listed in `rejected`, not raised.
    Raises:
        UsageError: an input or the checkpoint does not exist, a set holds no MIDI file, or
            window_bars < 1.
        DataError: no file of a set could be read.
        CheckpointError: the checkpoint cannot be used (broken, another vocabulary version).
    """
    if window_bars < 1:
        raise UsageError(f"memorisation window of {window_bars} bars is too short; use 1 or more (default 4)")
    gen_paths = find_midi_files(generated)
    loaded = None
    if checkpoint is not None:  # before the files are read, so a wrong checkpoint fails at once
        from aurl.evaluate.likelihood import load_checkpoint

        loaded = load_checkpoint(checkpoint)
    ref_paths, reference_name = _reference_paths(reference)
    train_paths = find_midi_files(training) if training else []
    total = len(gen_paths) + len(ref_paths) + len(train_paths)
    rejected: list[RejectedFile] = []
    gen = _read_all(gen_paths, rejected, 0, total, on_progress)
    ref = _read_all(ref_paths, rejected, len(gen_paths), total, on_progress)
    extra = _read_all(train_paths, rejected, len(gen_paths) + len(ref_paths), total, on_progress)
    _require_readable("generated", gen, gen_paths, rejected)
    _require_readable("reference", ref, ref_paths, rejected)
    likelihood = _likelihood(ref, loaded, max_context, on_progress) if loaded is not None else None
    known = ref + extra
    index = MemorisationIndex.build([p.score for p in known], [p.file for p in known], window_bars)
    copies = [memorisation(p.score, index) for p in gen]
    distance, used = frechet_feature_distance(
        feature_matrix([p.features for p in gen]), feature_matrix([p.features for p in ref])
    )
    shares = [c.copied_share for c in copies if not math.isnan(c.copied_share)]
    return EvaluateResult(
        files=[_file_metrics(p, "generated", c) for p, c in zip(gen, copies, strict=True)]
        + [_file_metrics(p, "reference", None) for p in ref],
        n_generated=len(gen),
        n_reference=len(ref),
        features=compare_features([p.features for p in gen], [p.features for p in ref]),
        frechet_feature_distance=_number(distance),
        frechet_features=[name for name, u in zip(SCALAR_FEATURES, used, strict=True) if u],
        memorisation=MemorisationSummary(
            window_bars=window_bars,
            known_files=len(known),
            mean_copied_share=_number(float(np.mean(shares))) if shares else None,
            max_longest_span_bars=max((c.longest_span_bars for c in copies), default=0),
        ),
        rejected=rejected,
        reference=reference_name,
        likelihood=likelihood,
    )
