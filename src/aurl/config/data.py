"""Settings of the training data: where it comes from, how it is split, batched, cropped and augmented."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from aurl.config._base import SECTION


class DataConfig(BaseModel):
    """What `aurl train` reads and how it turns pieces into batches (docs/data.md)."""

    model_config = SECTION

    # --- source and split ---------------------------------------------------------------------------
    data: Path | list[Path] | None = Field(
        default=None,
        description="A token cache folder made by `aurl preprocess` (holds manifest.json), or MIDI files "
        "and folders (preprocessed into cache_dir first), or a list of these; none: the bundled chorales.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Folder under which training keeps the token caches it builds (bundled chorales, "
        "MIDI given as data); none: the user cache folder.",
    )
    val_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Share of the pieces held out for validation (seeded, by piece) when the data has "
        "no split file; 0 holds out nothing.",
    )
    # --- batches -------------------------------------------------------------------------------------
    seq_len: int = Field(
        default=512,
        ge=8,
        description="Most tokens per sequence (the curriculum's final length); longer pieces are cropped "
        "to a window that starts at a bar line.",
    )
    batch_size: int = Field(
        default=16, ge=1, description="Sequences per global batch (over all processes of a DDP run)."
    )
    curriculum: list[tuple[int, int]] = Field(
        default_factory=list,
        description="Sequence-length stages as (step, seq_len) pairs, steps increasing from 0: from each "
        "step on, sequences hold at most that many tokens; empty: see curriculum_start.",
    )
    curriculum_start: int | None = Field(
        default=None,
        ge=8,
        description="Sequence length at step 0, doubled in equal shares of curriculum_steps until it "
        "reaches seq_len (e.g. 256 -> 2048); none: no curriculum, every step uses seq_len.",
    )
    curriculum_steps: int = Field(
        default=0, ge=0, description="Steps over which curriculum_start grows to seq_len."
    )
    bucket: bool = Field(
        default=True,
        description="Length bucketing: a batch gathers pieces of similar length, so it needs less padding.",
    )
    bucket_pool: int = Field(
        default=64,
        ge=1,
        description="Batches per pool that is sorted by length (bigger pools: less padding, batches "
        "less random).",
    )
    pad_multiple: int = Field(
        default=64,
        ge=1,
        description="A batch's width is rounded up to a multiple of this (few distinct shapes suit "
        "torch.compile and GPU kernels), never past the sequence length.",
    )
    workers: int = Field(
        default=2, ge=0, description="DataLoader worker processes building batches; 0 builds them in-process."
    )
    # --- augmentation ---------------------------------------------------------------------------------
    augment: bool = Field(
        default=True, description="Augment training batches on the fly (validation batches never are)."
    )
    transpose_prob: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Probability that a sequence is transposed."
    )
    transpose_semitones: int = Field(
        default=6,
        ge=0,
        le=24,
        description="Transpose by up to this many semitones either way, never moving a pitched note "
        "out of 0..127; drums are never transposed.",
    )
    tempo_prob: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Probability that a sequence's tempo is stretched."
    )
    tempo_range: tuple[float, float] = Field(
        default=(0.8, 1.25),
        description="(low, high) factor every tempo is multiplied by, drawn log-uniformly.",
    )
    velocity_prob: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Probability that a sequence's velocities are scaled."
    )
    velocity_range: tuple[float, float] = Field(
        default=(0.75, 1.25),
        description="(low, high) factor every velocity is multiplied by (then clipped to 1..127).",
    )
    instrument_prob: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Probability that a sequence's instruments are remapped, each program to a random one "
        "of its General MIDI family (a piano to another piano); drums never change.",
    )
    jitter_prob: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Probability that a sequence gets onset jitter."
    )
    jitter_steps: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Onset jitter moves a note's onset by 1..jitter_steps grid steps (32nd notes) "
        "either way.",
    )
    jitter_note_prob: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Share of the notes that onset jitter moves."
    )
    swing_prob: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Probability that a sequence is swung."
    )
    swing_steps: int = Field(
        default=2,
        ge=1,
        le=3,
        description="Swing delays the off-beat eighth notes by 1..swing_steps grid steps "
        "(2 is a dotted feel).",
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        for name in ("tempo_range", "velocity_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"data.{name} {(low, high)} must be (low, high) with 0 < low <= high")
        if self.curriculum and self.curriculum_start is not None:
            raise ValueError("set data.curriculum (stages) or data.curriculum_start, not both")
        if self.curriculum_start is not None:
            if self.curriculum_start > self.seq_len:
                raise ValueError(
                    f"data.curriculum_start {self.curriculum_start} exceeds data.seq_len {self.seq_len}"
                )
            if self.curriculum_steps == 0:
                raise ValueError("data.curriculum_start needs data.curriculum_steps > 0")
        self._check_stages()
        return self

    def _check_stages(self) -> None:
        steps = [step for step, _ in self.curriculum]
        if steps and (steps[0] != 0 or any(b <= a for a, b in zip(steps[:-1], steps[1:], strict=True))):
            raise ValueError(f"data.curriculum steps {steps} must start at 0 and increase")
        for _, length in self.curriculum:
            if not 8 <= length <= self.seq_len:
                raise ValueError(
                    f"data.curriculum length {length} must lie in 8..data.seq_len ({self.seq_len})"
                )

    @property
    def paths(self) -> list[Path]:
        """`data` as a list (empty for the bundled chorales)."""
        if self.data is None:
            return []
        return [self.data] if isinstance(self.data, Path) else list(self.data)
