"""Settings of training: optimizer, schedule, precision, checkpoints, evaluation and anomaly thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from aurl.config._base import SECTION

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "bf16", "fp16"]


class TrainConfig(BaseModel):
    """How `aurl train` optimises the model, where it writes, and what it watches for."""

    model_config = SECTION

    # --- optimisation -------------------------------------------------------------------------------
    optimizer: Literal["adamw", "adam", "sgd"] = Field(
        default="adamw",
        description="adamw (decoupled weight decay), adam, or sgd with Nesterov momentum betas[0].",
    )
    lr: float = Field(default=3e-4, gt=0.0, description="Peak learning rate, reached after the warm-up.")
    betas: tuple[float, float] = Field(
        default=(0.9, 0.95), description="Adam moment decay rates (beta1, beta2); sgd uses beta1 as momentum."
    )
    eps: float = Field(default=1e-8, gt=0.0, description="Adam's denominator epsilon.")
    weight_decay: float = Field(
        default=0.1, ge=0.0, description="Weight decay of matrices and embeddings (never of biases or norms)."
    )
    warmup_steps: int = Field(
        default=500, ge=0, description="Optimizer steps of linear learning-rate warm-up from 0."
    )
    schedule: Literal["cosine", "linear", "constant"] = Field(
        default="cosine",
        description="Decay after the warm-up: cosine or linear down to min_lr_ratio * lr at the last step, "
        "or constant.",
    )
    min_lr_ratio: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Final learning rate as a fraction of lr (cosine, linear)."
    )
    grad_accumulation: int = Field(
        default=1, ge=1, description="Micro-batches whose gradients are summed into one optimizer step."
    )
    clip_grad_norm: float = Field(
        default=1.0, ge=0.0, description="Clip the global gradient norm to this value; 0 turns clipping off."
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (default: run all epochs)."
    )
    epochs: int = Field(
        default=50, ge=1, description="Passes over the training set (max_steps may stop sooner)."
    )
    disc_lr: float = Field(default=1e-4, gt=0.0, description="vae_gan: learning rate of the discriminator.")
    adversarial_start: int = Field(
        default=1000,
        ge=0,
        description="vae_gan: step at which the discriminator starts training and the generator's "
        "adversarial term is switched on (before it the model trains as a vae).",
    )
    # --- machine ------------------------------------------------------------------------------------
    device: Device = Field(default="auto", description="auto (cuda, then mps, then cpu), cpu, cuda or mps.")
    precision: Precision = Field(
        default="fp32",
        description="fp32, bf16 autocast (CPU and CUDA), or fp16 autocast with a gradient scaler "
        "(CUDA only).",
    )
    compile: bool = Field(
        default=False, description="Compile the model with torch.compile (slow first steps)."
    )
    seed: int = Field(
        default=0, ge=0, description="Seed of the weights, dropout, data order and augmentation."
    )
    # --- run directory and checkpoints --------------------------------------------------------------
    run_dir: Path | None = Field(
        default=None,
        description="Folder of the run (default: runs/<name> in the user data folder).",
    )
    name: str | None = Field(
        default=None, description="Name of the run's folder under runs/ (default: the start time)."
    )
    checkpoint_every: int = Field(default=500, ge=1, description="Optimizer steps between checkpoints.")
    keep_last: int = Field(default=3, ge=1, description="Most recent checkpoints kept on disk.")
    keep_best: int = Field(
        default=2, ge=0, description="Checkpoints with the lowest validation loss kept besides the last ones."
    )
    average_best: int = Field(
        default=0,
        ge=0,
        description="At the end, write model-averaged.safetensors, the mean of the weights of this many "
        "best checkpoints (0: off).",
    )
    weights_dtype: Precision = Field(
        default="fp32",
        description="Type of the exported model.safetensors; bf16 or fp16 halve its size "
        "(checkpoints stay fp32 for exact resume).",
    )
    # --- evaluation and logging ---------------------------------------------------------------------
    eval_every: int = Field(
        default=500, ge=1, description="Optimizer steps between validations (also run at each checkpoint)."
    )
    eval_batches: int = Field(
        default=50, ge=0, description="Validation batches per evaluation (0: the whole validation set)."
    )
    log_every: int = Field(
        default=50, ge=1, description="Optimizer steps between log lines and metrics rows."
    )
    early_stopping: int = Field(
        default=0,
        ge=0,
        description="Stop after this many evaluations without a lower validation loss (0: never).",
    )
    quality_samples: int = Field(
        default=4, ge=0, description="Pieces sampled at each evaluation for the quality metrics (0: off)."
    )
    quality_tokens: int = Field(default=256, ge=8, description="Tokens per quality sample.")
    # --- anomalies and recovery ---------------------------------------------------------------------
    anomaly_grad_spike: float = Field(
        default=10.0, gt=1.0, description="Gradient norm above this multiple of its running mean is a spike."
    )
    anomaly_loss_spike: float = Field(
        default=3.0,
        gt=0.0,
        description="Loss this many running standard deviations above its mean is a spike.",
    )
    anomaly_divergence: float = Field(
        default=2.0,
        gt=1.0,
        description="Running loss above this multiple of its best value (for 20 steps) is divergence.",
    )
    anomaly_vanishing_grad: float = Field(
        default=1e-7, ge=0.0, description="Gradient norm below this (for 20 steps) is vanishing."
    )
    anomaly_no_progress: int = Field(
        default=1000,
        ge=10,
        description="Steps after the warm-up without a 1% lower running loss suggest a bad learning rate.",
    )
    anomaly_throughput_drop: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Tokens/s below this fraction of its running mean is a drop."
    )
    anomaly_stall_s: float = Field(
        default=60.0, gt=0.0, description="Seconds waiting for one batch that count as a data-loader stall."
    )
    anomaly_memory_growth: float = Field(
        default=1.5,
        gt=1.0,
        description="Memory in use above this multiple of its level after the first logged steps is growth.",
    )
    anomaly_kl_floor: float = Field(
        default=0.01, ge=0.0, description="vae modes: KL below this (nats per token) is posterior collapse."
    )
    recovery_skips: int = Field(
        default=3,
        ge=1,
        description="Bad batches (NaN/Inf, divergence) skipped in a row before rolling back to a checkpoint.",
    )
    recovery_lr_factor: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Learning rate multiplier applied at each roll-back."
    )
    recovery_rollbacks: int = Field(
        default=3, ge=0, description="Roll-backs allowed before training stops with an error."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.average_best > max(self.keep_best, 0) and self.average_best > 0:
            raise ValueError(
                f"train.average_best = {self.average_best} needs train.keep_best >= it "
                f"(is {self.keep_best}): the averaged checkpoints must stay on disk"
            )
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas = {self.betas} must both lie in [0, 1)")
        return self
