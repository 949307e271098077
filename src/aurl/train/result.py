"""TrainResult: what `train` returns to its caller (and `aurl train --json` prints)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainResult(BaseModel):
    """The outcome of one training session of a run."""

    model_config = ConfigDict(frozen=True)

    run_dir: str = Field(title="run folder", description="The run's folder.")
    mode: str = Field(title="mode", description="Model mode: transformer, vae or vae_gan.")
    parameters: int = Field(title="parameters", description="Trainable parameters of the model.")
    step: int = Field(title="step", description="Optimizer steps taken by the run so far.")
    epoch: int = Field(title="epoch", description="Epoch the next training batch belongs to.")
    tokens: int = Field(title="tokens", description="Training tokens seen by the run so far.")
    stopped: str = Field(
        title="stopped by",
        description="Why this session ended: max_steps, epochs, early_stopping or interrupted.",
    )
    resumed_from: int | None = Field(
        default=None, title="resumed from step", description="Checkpoint step this session started from."
    )
    train_loss: float | None = Field(
        default=None, title="train loss", description="Reconstruction loss of the last step (nats/token)."
    )
    val_loss: float | None = Field(
        default=None, title="validation loss", description="Validation loss at the last evaluation."
    )
    best_val_loss: float | None = Field(
        default=None, title="best validation loss", description="Lowest validation loss of the run."
    )
    best_step: int | None = Field(
        default=None, title="best step", description="Step of the weights in model.safetensors."
    )
    val_perplexity: float | None = Field(
        default=None,
        title="validation perplexity",
        description="exp(validation loss) at the last evaluation.",
    )
    val_bits_per_token: float | None = Field(
        default=None, title="bits per token", description="Validation loss in bits per token."
    )
    averaged_val_loss: float | None = Field(
        default=None,
        title="averaged model val loss",
        description="Validation loss of model-averaged.safetensors (with train.average_best).",
    )
    seconds: float = Field(title="seconds", description="Wall-clock seconds of this session.")
    tokens_per_second: float = Field(
        title="tokens/s", description="Training tokens per second of this session (all ranks)."
    )
    model_path: str | None = Field(
        default=None, title="model", description="The best weights: the file sample/evaluate/export take."
    )
    averaged_path: str | None = Field(
        default=None, title="averaged model", description="Mean of the best checkpoints' weights, if asked."
    )
    last_checkpoint: str | None = Field(
        default=None, title="last checkpoint", description="Folder of the newest checkpoint."
    )
    anomalies: int = Field(default=0, title="anomalies", description="Anomalies reported in this session.")
    skipped_steps: int = Field(default=0, title="skipped steps", description="Updates skipped as anomalies.")
    rollbacks: int = Field(default=0, title="roll-backs", description="Roll-backs to a checkpoint so far.")
    quality: dict[str, float | None] = Field(
        default_factory=dict, title="sample quality", description="Quality metrics of the last samples."
    )
