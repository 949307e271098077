"""What `evaluate_sets` returns: per-file metrics first, then the set-level comparisons.

JSON shape: `{"files": [{"file", "set", "key", "metrics": {...}, "histograms": {...},
"memorisation": {...} | null}], "features": [...], "frechet_feature_distance", ..., "reference",
"likelihood": {...} | null}`. Undefined values (a drum metric of a piece without drums) are null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MemorisationResult(_Frozen):
    n_windows: int = Field(description="4-bar windows with enough notes to count.")
    copied_share: float | None = Field(
        description="Share of them found, at any transposition, in known music."
    )
    longest_span_bars: int = Field(description="Longest run of bars copied in order from one known piece.")
    longest_span_source: str | None = Field(description="The known file of that run.")


class FileMetrics(_Frozen):
    file: str
    set: Literal["generated", "reference"]
    key: str | None = Field(description="The key pitch_in_scale_rate is measured in.")
    metrics: dict[str, float | None]
    histograms: dict[str, list[float]] = Field(
        description="Duration classes and melodic intervals, as shares."
    )
    memorisation: MemorisationResult | None = Field(description="Generated files only.")


class FeatureComparison(_Frozen):
    """One feature across the two sets; KLD in nats, OA in 0..1 (1 = the same distribution).

    `overlap_area` / `kl_divergence` compare the feature's values (KL(reference || generated)); the
    `*_inter` fields are Yang & Lerch's: the intra-set distance distribution of one set against the
    inter-set distance distribution, KL(intra || inter).
    """

    feature: str
    generated_mean: float | None
    generated_std: float | None
    reference_mean: float | None
    reference_std: float | None
    overlap_area: float | None
    kl_divergence: float | None
    intra_generated_mean: float | None
    intra_reference_mean: float | None
    inter_mean: float | None
    overlap_area_intra_generated_inter: float | None
    kl_divergence_intra_generated_inter: float | None
    overlap_area_intra_reference_inter: float | None
    kl_divergence_intra_reference_inter: float | None


class RejectedFile(_Frozen):
    file: str
    reason: str


class FileLikelihood(_Frozen):
    file: str
    n_tokens: int = Field(description="Tokens scored: every token after BOS.")
    n_notes: int = Field(description="Notes of the piece as read, before quantisation.")
    seconds: float = Field(description="The piece's end through its tempo map.")
    bits: float = Field(description="-log2 p of the scored tokens, summed.")
    kl_bits: float | None = Field(description="vae modes: KL(q(z|x) || p(z)) of the piece, in bits.")


class LikelihoodResult(_Frozen):
    """The model's loss on a set of pieces (docs/evaluate.md, "Likelihood", defines each number)."""

    checkpoint: str | None = Field(description="The model file scored with; None for a model passed in.")
    mode: str = Field(description="The model's mode: transformer, vae or vae_gan.")
    latent: Literal["none", "posterior_mean", "prior_mean"] = Field(
        description="What the decoder was conditioned on: no latent (transformer), the posterior mean "
        "of each piece, or the prior mean."
    )
    vocab_version: str
    max_context: int = Field(description="Most tokens the model reads at once; longer pieces go in windows.")
    left_context: int = Field(description="Tokens of a window that only give context (after the first).")
    n_pieces: int
    n_windows: int
    n_tokens: int
    n_notes: int
    seconds: float
    bits: float = Field(description="-log2 p of every scored token, summed over the pieces.")
    bits_per_token: float | None
    bits_per_note: float | None
    bits_per_second: float | None
    kl_bits_per_token: float | None = Field(
        description="vae modes: KL(q(z|x) || p(z)) in bits per token; added to bits_per_token it gives "
        "the negative ELBO with the reconstruction taken at the posterior mean."
    )
    files: list[FileLikelihood]
    skipped: list[RejectedFile] = Field(description="Pieces that could not be turned into tokens.")


class MemorisationSummary(_Frozen):
    window_bars: int
    known_files: int = Field(description="Reference and training files searched.")
    mean_copied_share: float | None
    max_longest_span_bars: int


class EvaluateResult(_Frozen):
    """`aurl evaluate`: per-file metrics, then set against set."""

    files: list[FileMetrics]
    n_generated: int
    n_reference: int
    features: list[FeatureComparison]
    frechet_feature_distance: float | None = Field(
        description="Fréchet distance between Gaussians fitted to the standardised scalar features."
    )
    frechet_features: list[str] = Field(description="The features it used.")
    memorisation: MemorisationSummary
    rejected: list[RejectedFile] = Field(description="Files that could not be read, with the reason.")
    reference: str = Field(
        default="", description="The reference set: the inputs given, or the bundled chorales' test split."
    )
    likelihood: LikelihoodResult | None = Field(
        default=None, description="With a checkpoint: the model's loss on the reference set."
    )
