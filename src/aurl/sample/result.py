"""What `sample` returns: the written pieces and everything needed to make them again."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SampledPiece(BaseModel):
    """One written piece."""

    path: str = Field(description="The file written.")
    tokens: int = Field(description="Token ids of the piece, BOS to EOS (a primer's included).")
    new_tokens: int = Field(description="Tokens generated (the primer's excluded).")
    notes: int = Field(description="Notes in the piece.")
    bars: int = Field(description="Bars holding music (a final bar line where notes end is not counted).")
    seconds: float = Field(description="Duration of the music in seconds.")
    ended_by: str = Field(description="eos (the model ended it), stop (the stopping rule) or budget.")
    log_prob: float = Field(description="Log-probability of the new tokens under the constrained model.")
    skipped_tokens: int = Field(description="Tokens decoding had to skip (0: the grammar mask holds).")


class SampleResult(BaseModel):
    """The outcome of `aurl sample`."""

    pieces: list[SampledPiece] = Field(title="pieces", description="The files written, one per piece.")
    checkpoint: str = Field(description="The model file sampled from.")
    checkpoint_sha256: str = Field(title="checkpoint sha256", description="SHA-256 of the model file.")
    mode: str = Field(description="The model's mode: transformer, vae or vae_gan.")
    task: str = Field(description="sample, continue (a primer), reconstruct or interpolate.")
    seed: int = Field(description="The seed used; give it as --seed to make the same pieces again.")
    aurl_version: str = Field(title="aurl version", description="The aurl that wrote the pieces.")
    constraints: list[str] = Field(description="The constraints in force besides the grammar.")
    settings: dict[str, Any] = Field(description="The sampling settings, as written into each file.")
    tokens_per_second: float = Field(title="tokens/s", description="New tokens per second of generation.")
    seconds: float = Field(description="Wall time of the whole command, model loading included.")
