"""Settings of the network: mode, sizes, attention, latent, discriminator and loss balancing."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from aurl.config._base import SECTION
from aurl.errors import ConfigError

ModelMode = Literal["transformer", "vae", "vae_gan"]
AttentionKind = Literal["full", "hierarchical", "sliding"]

# Named sizes; the field defaults below are `full` (the specification: hidden 512, 8 layers = 6 decoder
# + 2 encoder, latent 128; about 21M parameters in vae_gan mode). docs/model.md lists the counts.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        d_model=64,
        n_heads=4,
        decoder_layers=2,
        encoder_layers=1,
        encoder_d_model=64,
        encoder_heads=4,
        latent_global=32,
        latent_bar=16,
        latent_fine=16,
        latent_cond=32,
        fine_window=32,
        disc_d_model=32,
        local_window=64,
        global_tokens=16,
        sliding_window=128,
        sliding_overlap=32,
        dropout=0.0,
    ),
    "small": dict(
        d_model=256,
        n_heads=4,
        decoder_layers=4,
        encoder_layers=2,
        encoder_d_model=128,
        encoder_heads=4,
        latent_global=64,
        latent_bar=32,
        latent_fine=16,
        latent_cond=64,
        disc_d_model=64,
    ),
    "base": dict(
        d_model=384,
        n_heads=6,
        decoder_layers=6,
        encoder_layers=2,
        encoder_d_model=192,
        encoder_heads=4,
        latent_global=96,
        latent_bar=48,
        latent_fine=24,
        latent_cond=96,
        disc_d_model=96,
    ),
    "full": {},
}


class ModelConfig(BaseModel):
    """The network: mode, sizes, attention kind, latent, discriminator and how the losses are balanced."""

    model_config = SECTION

    mode: ModelMode = Field(
        default="transformer",
        description="transformer (causal language model), vae (encoder, hierarchical latent, decoder) "
        "or vae_gan (vae plus a multi-scale discriminator).",
    )
    vocab_size: int = Field(default=774, ge=8, description="Number of token ids V (the vocabulary's size).")
    d_model: int = Field(
        default=512, ge=8, description="Width D of the decoder (and of the token embedding)."
    )
    n_heads: int = Field(
        default=8, ge=1, description="Attention heads per decoder layer; D / heads must be even."
    )
    decoder_layers: int = Field(default=6, ge=1, description="Transformer layers of the decoder.")
    encoder_layers: int = Field(default=2, ge=1, description="Transformer layers of the VAE encoder.")
    encoder_d_model: int = Field(default=256, ge=8, description="Width of the VAE encoder.")
    encoder_heads: int = Field(default=4, ge=1, description="Attention heads per encoder layer.")
    ffn_mult: int = Field(
        default=4, ge=1, description="Feed-forward expansion: its hidden width is ffn_mult * D."
    )
    dropout: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Dropout probability on the embeddings and residual branches.",
    )
    attention_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on attention weights; above 0 the fused (flash) kernels cannot run, "
        "so memory grows with the square of the window.",
    )
    attention: AttentionKind = Field(
        default="full",
        description="full (every earlier token), hierarchical (local window + block summaries) or sliding "
        "(overlapping windows); the last two keep memory linear in sequence length.",
    )
    local_window: int = Field(
        default=256,
        ge=2,
        description="hierarchical: local window in tokens, also the length of a summarised block.",
    )
    global_tokens: int = Field(
        default=64, ge=1, description="hierarchical: block summaries each query may read."
    )
    sliding_window: int = Field(default=512, ge=2, description="sliding: tokens per window.")
    sliding_overlap: int = Field(
        default=128, ge=0, description="sliding: tokens that neighbouring windows share (< sliding_window)."
    )
    shared_pitch_rows: bool = Field(
        default=False,
        description="Give every NoteOn token's vector a learned part shared by its pitch class and one "
        "shared by its octave, in the input and the tied output: what the model learns of a pitch carries "
        "over to the same note in other octaves (the bundled model has it on).",
    )
    rope_base: float = Field(default=10000.0, gt=1.0, description="Wavelength base of the rotary positions.")
    bar_period: int = Field(
        default=64, ge=1, description="Bar indices are embedded modulo this many bars (phrase cycles)."
    )
    checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory, about 30% slower.",
    )
    latent_global: int = Field(default=128, ge=1, description="Size of the global (whole piece) latent z.")
    latent_bar: int = Field(default=64, ge=1, description="Size of the per-bar latent.")
    latent_fine: int = Field(default=32, ge=1, description="Size of the fine (per window of tokens) latent.")
    fine_window: int = Field(default=64, ge=1, description="Tokens per fine latent.")
    latent_cond: int = Field(
        default=128, ge=1, description="Width of the latent condition fed into every decoder layer."
    )
    word_dropout: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="vae modes: chance that a decoder input token is replaced by MASK in training.",
    )
    beta: float = Field(default=1.0, ge=0.0, description="Final weight of the KL terms (beta-VAE).")
    kl_schedule: Literal["linear", "cyclical", "constant"] = Field(
        default="linear",
        description="KL weight schedule: linear warm-up, cyclical (Fu et al. 2019) or constant beta.",
    )
    kl_warmup_steps: int = Field(
        default=5000, ge=1, description="Steps of the linear KL warm-up, or the length of one cycle."
    )
    kl_cycles: int = Field(
        default=4, ge=1, description="cyclical: number of cycles before beta stays constant."
    )
    free_bits: float = Field(
        default=0.1, ge=0.0, description="KL below this many nats per latent dimension is not penalised."
    )
    disc_d_model: int = Field(default=128, ge=4, description="vae_gan: width of the discriminator.")
    disc_layers: int = Field(default=2, ge=1, description="vae_gan: convolutions per discriminator scale.")
    disc_kernel: int = Field(
        default=5, ge=1, description="vae_gan: kernel size of the note-level convolutions."
    )
    adversarial_loss: Literal["hinge", "non_saturating"] = Field(
        default="hinge", description="vae_gan: adversarial objective."
    )
    adv_weight: float = Field(
        default=0.1, ge=0.0, description="vae_gan: final weight of the adversarial loss."
    )
    adv_warmup_steps: int = Field(
        default=2000, ge=0, description="vae_gan: steps over which the adversarial weight ramps up from 0."
    )
    feature_matching_weight: float = Field(
        default=1.0, ge=0.0, description="vae_gan: weight of the discriminator feature-matching loss."
    )
    gumbel_tau: float = Field(
        default=1.0, gt=0.0, description="vae_gan: Gumbel-softmax temperature of the soft generated tokens."
    )
    label_smoothing: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Label smoothing of the reconstruction cross-entropy."
    )
    constraint_weight: float = Field(
        default=1.0,
        ge=0.0,
        description="Weight of the musical-constraint terms (forbidden tokens, grammar, bars).",
    )
    balance: Literal["uncertainty", "fixed"] = Field(
        default="uncertainty",
        description="uncertainty: learn one weight per loss term (Kendall et al. 2018); "
        "fixed: the weights above.",
    )

    @model_validator(mode="after")
    def _check_widths(self) -> ModelConfig:
        for width, heads in (("d_model", "n_heads"), ("encoder_d_model", "encoder_heads")):
            d, h = getattr(self, width), getattr(self, heads)
            if d % h or (d // h) % 2:
                raise ValueError(f"model.{width} = {d} over model.{heads} = {h} must give an even head width")
        if self.sliding_overlap >= self.sliding_window:
            raise ValueError(
                f"model.sliding_overlap = {self.sliding_overlap} must be below "
                f"model.sliding_window = {self.sliding_window}"
            )
        return self

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """The named sizes (tiny, small, base, full) with `overrides` on top.

        Example: `ModelConfig.preset("tiny", mode="vae")`.

        Raises:
            ConfigError: unknown name, or an override that is not a valid setting.
        """
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown model preset '{name}'; choose one of {', '.join(MODEL_PRESETS)}")
        try:
            return cls(**{**MODEL_PRESETS[name], **overrides})
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            key = ".".join(str(part) for part in first["loc"]) or "model"
            raise ConfigError(f"model preset '{name}': invalid '{key}': {first['msg'].rstrip('.')}") from None
