"""The loss framework: reconstruction, KL with free bits, adversarial and feature-matching terms,
data-driven musical constraints, schedules for beta and the adversarial weight, and learned
uncertainty weights that balance the terms.

It lives in models/ (not train/) so that the model's `forward` can report every term and the
trainer, which knows nothing about the model, only minimises `out["loss"]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aurl.config import ModelConfig

# Scalar terms every forward pass reports (0 where a mode has no such term).
LOSS_TERMS = (
    "loss",
    "recon",
    "kl",
    "kl_global",
    "kl_bar",
    "kl_fine",
    "adv",
    "feature_matching",
    "constraint_forbidden",
    "constraint_grammar",
    "constraint_bar",
    "beta",
    "adv_weight",
)


def reconstruction(logits: Tensor, targets: Tensor, valid: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of logits (B, T, V) against targets (B, T) where valid (B, T); padding ignored."""
    targets = targets.masked_fill(~valid, -100)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100,
        label_smoothing=label_smoothing,
    )  # fmt: skip


def kl_free_bits(kl: Tensor, rows: Tensor, free_bits: float, n_tokens: Tensor) -> tuple[Tensor, Tensor]:
    """KL of one latent level in nats per token: as measured, and as penalised with free bits.

    Args:
        kl: (B, N, Z) KL per latent element.
        rows: (B, N) bool, the latent rows that exist.
        free_bits: nats per latent dimension (averaged over the rows of the batch) left unpenalised.
        n_tokens: number of predicted tokens in the batch (the per-token normaliser).

    Returns:
        (measured, penalised), both scalars; penalised = rows * sum_d max(mean KL_d, free_bits).
    """
    w = rows.to(kl.dtype)[..., None]
    n_rows = w.sum().clamp(min=1)
    per_dim = (kl * w).sum((0, 1)) / n_rows  # (Z,)
    measured = per_dim.sum() * n_rows / n_tokens
    penalised = per_dim.clamp(min=free_bits).sum() * n_rows / n_tokens
    return measured, penalised


def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    """Discriminator hinge loss on scores of real and generated samples."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    """Generator hinge loss: raise the discriminator's score of generated samples."""
    return -fake.mean()


def non_saturating_d(real: Tensor, fake: Tensor) -> Tensor:
    """Discriminator loss of the original GAN: -log D(real) - log(1 - D(fake)) on logits."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def non_saturating_g(fake: Tensor) -> Tensor:
    """Non-saturating generator loss: -log D(fake) on logits."""
    return F.softplus(-fake).mean()


def feature_matching(real: list[tuple[Tensor, Tensor]], fake: list[tuple[Tensor, Tensor]]) -> Tensor:
    """L1 distance between the mean discriminator features of real and generated data (Salimans 2016).

    Args:
        real, fake: per layer, features (B, N, C) and their mask (B, N); real is treated as a constant.
    """
    total = real[0][0].new_zeros(())
    for (fr, mr), (ff, mf) in zip(real, fake, strict=True):
        mean_r = (fr * mr[..., None]).sum((0, 1)) / mr.sum().clamp(min=1)
        mean_f = (ff * mf[..., None]).sum((0, 1)) / mf.sum().clamp(min=1)
        total = total + (mean_r.detach() - mean_f).abs().mean()
    return total / max(len(real), 1)


def forbidden_mass(probs: Tensor, forbidden: Tensor, valid: Tensor) -> Tensor:
    """Mean probability put on tokens that must never be predicted; probs (B, T, V), forbidden (V,) bool."""
    mass = probs @ forbidden.to(probs.dtype)  # (B, T)
    return _masked_mean(mass, valid)


def grammar_mass(probs: Tensor, previous: Tensor, follow: Tensor, valid: Tensor) -> Tensor:
    """Mean probability put on tokens that may not follow the previous token; follow (V, V) bool."""
    allowed = follow[previous].to(probs.dtype)  # (B, T, V)
    return _masked_mean(1.0 - (probs * allowed).sum(-1), valid)


def bar_overflow(
    probs: Tensor, pos_in_bar: Tensor, bar_len: Tensor, time_advance: Tensor, valid: Tensor
) -> Tensor:
    """Expected overshoot past the bar line, in bars, of the next token's time advance.

    Args:
        probs: (B, T, V) next-token distributions.
        pos_in_bar, bar_len: (B, T) grid steps into the current bar and its length.
        time_advance: (V,) grid steps each token advances.
        valid: (B, T) positions whose prediction counts.
    """
    room = (bar_len - pos_in_bar).clamp(min=0).to(probs.dtype)[..., None]  # (B, T, 1)
    over = F.relu(time_advance.to(probs.dtype)[None, None] - room) / bar_len.clamp(min=1)[..., None]
    return _masked_mean((probs * over).sum(-1), valid)


def _masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    w = valid.to(x.dtype)
    return (x * w).sum() / w.sum().clamp(min=1)


def beta_at(config: ModelConfig, step: int | None) -> float:
    """KL weight at a training step (None: the final weight `config.beta`)."""
    if step is None or config.kl_schedule == "constant":
        return config.beta
    length = config.kl_warmup_steps
    if config.kl_schedule == "linear":
        return config.beta * min(1.0, step / length)
    if step >= length * config.kl_cycles:
        return config.beta
    # Fu et al. 2019: within each cycle, ramp up over the first half, then hold.
    return config.beta * min(1.0, 2.0 * (step % length) / length)


def adv_weight_at(config: ModelConfig, step: int | None) -> float:
    """Adversarial weight at a training step: a linear ramp over `adv_warmup_steps` (None: final)."""
    if step is None or config.adv_warmup_steps == 0:
        return config.adv_weight
    return config.adv_weight * min(1.0, step / config.adv_warmup_steps)


class LossBalancer(nn.Module):
    """Sums loss terms; under `balance="uncertainty"` each balanced term i gets a learned log-variance s_i.

    total = sum_i w_i * (exp(-s_i) * L_i + s_i) over the balanced terms (Kendall, Gal and Cipolla
    2018; every balanced term is non-negative) plus the scheduled terms (KL and adversarial) at
    their own weights.
    """

    def __init__(self, names: tuple[str, ...], balance: str) -> None:
        super().__init__()
        self.names = names
        self.log_vars = nn.ParameterDict(
            {name: nn.Parameter(torch.zeros(())) for name in names} if balance == "uncertainty" else {}
        )

    def forward(
        self, balanced: dict[str, tuple[Tensor, float]], scheduled: list[tuple[Tensor, float]]
    ) -> Tensor:
        """Total loss from {name: (term, weight)} and [(term, weight)]; a weight of 0 drops the term."""
        total = next(iter(balanced.values()))[0].new_zeros(())
        for name, (term, weight) in balanced.items():
            if weight == 0.0:
                continue
            if name in self.log_vars:
                s = self.log_vars[name]
                total = total + weight * (torch.exp(-s) * term + s)
            else:
                total = total + weight * term
        for term, weight in scheduled:
            if weight != 0.0 and math.isfinite(weight):
                total = total + weight * term
        return total
