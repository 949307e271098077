"""A multi-scale discriminator with spectral norm that reads token distributions.

It takes (B, T, V) distributions over tokens: one-hot rows for real data, Gumbel-softmax rows of the
decoder for generated data, so the generator gets gradients through them. Every linear map and
convolution is spectrally normalised (Miyato et al. 2018). It judges at three scales and through
three small musical heads, each returning one score per unit (token, bar, piece, ...):

- note: dilated convolutions over the token sequence;
- phrase: convolutions over bars (token features pooled per bar);
- global: the piece (features pooled over all tokens);
- rhythm: features pooled by position in the bar (16 phases of the bar);
- harmony: features pooled per time step (the tokens that sound together);
- melody: convolution over the sequence of time steps (how one step leads to the next).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from aurl.config import ModelConfig
from aurl.models import losses as L
from aurl.models.pooling import masked_mean, segment_mean
from aurl.models.positions import N_PHASES, BeatEmbedding, BeatFeatures

SCALES = ("note", "phrase", "global", "rhythm", "harmony", "melody")
Features = list[tuple[Tensor, Tensor]]  # per layer: (B, N, C) features and their (B, N) mask


@dataclass(frozen=True)
class Judgement:
    """What the discriminator says of a batch, per scale in SCALES.

    Attributes:
        scores: (B, N) one score per unit of the scale (higher: more real).
        masks: (B, N) bool, the units that exist.
        features: per layer, (B, N, C) hidden features and their mask, for feature matching.
    """

    scores: dict[str, Tensor]
    masks: dict[str, Tensor]
    features: dict[str, Features]

    def rows(self, start: int, stop: int) -> Judgement:
        """The judgement of batch rows start .. stop - 1."""
        cut = slice(start, stop)
        return Judgement(
            {s: v[cut] for s, v in self.scores.items()},
            {s: v[cut] for s, v in self.masks.items()},
            {s: [(f[cut], m[cut]) for f, m in fs] for s, fs in self.features.items()},
        )

    def valid_scores(self, scale: str) -> Tensor:
        """The scores of the units that exist, flattened."""
        return self.scores[scale][self.masks[scale]]

    def as_dict(self) -> dict[str, dict]:
        return {"scores": self.scores, "masks": self.masks, "features": self.features}


class ConvStack(nn.Module):
    """Spectral-normed 1-d convolutions over (B, N, C) with LeakyReLU; keeps every layer's output."""

    def __init__(self, width: int, layers: int, kernel: int, dilate: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            spectral_norm(nn.Conv1d(width, width, kernel, dilation=2**i if dilate else 1, padding="same"))
            for i in range(layers)
        )
        self.out = spectral_norm(nn.Conv1d(width, 1, 1))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Features]:
        """Scores (B, N) and per-layer features for x (B, N, C) with mask (B, N)."""
        h, feats = x.transpose(1, 2), []
        keep = mask[:, None].to(x.dtype)
        for conv in self.convs:
            h = F.leaky_relu(conv(h * keep), 0.2)
            feats.append((h.transpose(1, 2), mask))
        return self.out(h).squeeze(1), feats


class Mlp(nn.Module):
    """Spectral-normed two-layer scorer over (B, N, C): scores (B, N) and the hidden features."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.hidden = spectral_norm(nn.Linear(width, width))
        self.out = spectral_norm(nn.Linear(width, 1))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Features]:
        h = F.leaky_relu(self.hidden(x), 0.2)
        return self.out(h).squeeze(-1), [(h, mask)]


class MultiScaleDiscriminator(nn.Module):
    """Judges token distributions (B, T, V) at the scales in SCALES."""

    def __init__(self, config: ModelConfig, steps_per_beat: int) -> None:
        super().__init__()
        d = config.disc_d_model
        self.embed = spectral_norm(nn.Linear(config.vocab_size, d, bias=False))
        self.beat = BeatEmbedding(d, steps_per_beat, config.bar_period)
        self.note = ConvStack(d, config.disc_layers, config.disc_kernel, dilate=True)
        self.phrase = ConvStack(d, config.disc_layers, 3, dilate=False)
        self.melody = ConvStack(d, 1, 3, dilate=False)
        self.whole = Mlp(d)
        self.rhythm = Mlp(d)
        self.harmony = Mlp(d)

    def forward(self, dist: Tensor, feats: BeatFeatures, valid: Tensor, time_advance: Tensor) -> Judgement:
        """Scores per scale and the features for feature matching.

        Args:
            dist: (B, T, V) token distributions (rows sum to 1).
            feats: beat features of the token positions (from the real ids).
            valid: (B, T) bool, the positions to judge.
            time_advance: (V,) grid steps per token: the expected advance marks where time steps end.

        """
        x = self.embed(dist) + self.beat(feats)  # (B, T, D)
        scores: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        features: dict[str, Features] = {}

        def judge(name: str, module: nn.Module, h: Tensor, mask: Tensor) -> Tensor:
            scores[name], features[name] = module(h, mask)
            masks[name] = mask
            return features[name][-1][0]

        notes = judge("note", self.note, x, valid)
        bars, bar_mask = segment_mean(notes, feats.bar, valid)
        judge("phrase", self.phrase, bars, bar_mask)
        judge("global", self.whole, masked_mean(notes, valid)[:, None], valid.any(1, keepdim=True))
        phase = (feats.pos_in_bar * N_PHASES // feats.bar_len.clamp(min=1)).clamp(0, N_PHASES - 1)
        judge("rhythm", self.rhythm, *segment_mean(notes, phase, valid, N_PHASES))
        steps, step_mask = segment_mean(notes, _time_step(dist, time_advance), valid)
        judge("harmony", self.harmony, steps, step_mask)
        judge("melody", self.melody, steps, step_mask)
        return Judgement(scores, masks, features)


def _time_step(dist: Tensor, time_advance: Tensor) -> Tensor:
    """(B, T) index of the time step each token belongs to: the count of earlier time-advancing tokens.

    Read from the distributions (their most likely token), so real and generated rows group alike.
    """
    advances = (time_advance[dist.argmax(-1)] > 0).long()
    return torch.cumsum(advances, 1) - advances


def judge_pair(
    disc: MultiScaleDiscriminator, targets: Tensor, soft: Tensor, valid: Tensor, feats: BeatFeatures,
    time_advance: Tensor,
) -> tuple[Judgement, Judgement]:  # fmt: skip
    """Judge real targets (B, T') and generated distributions (B, T', V) in one batched pass.

    Args:
        feats: beat features of the whole sequence (B, T' + 1); target t sits at position t + 1.
    """
    real = F.one_hot(targets, soft.shape[-1]).to(soft.dtype)
    shifted = BeatFeatures(*(torch.cat([t[:, 1:], t[:, 1:]]) for t in _fields(feats)))
    both = disc(torch.cat([real, soft]), shifted, torch.cat([valid, valid]), time_advance)
    b = targets.shape[0]
    return both.rows(0, b), both.rows(b, 2 * b)


def _fields(f: BeatFeatures) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return f.time, f.bar, f.pos_in_bar, f.bar_len


def generator_terms(real: Judgement, fake: Judgement, objective: str) -> tuple[Tensor, Tensor]:
    """Adversarial and feature-matching losses of the generator, averaged over the scales."""
    g_loss = L.hinge_g if objective == "hinge" else L.non_saturating_g
    adv = torch.stack([g_loss(fake.valid_scores(s)) for s in SCALES]).mean()
    matching = L.feature_matching(
        [f for s in SCALES for f in real.features[s]], [f for s in SCALES for f in fake.features[s]]
    )
    return adv, matching


def discriminator_term(real: Judgement, fake: Judgement, objective: str) -> Tensor:
    """The discriminator's loss, averaged over the scales."""
    d_loss = L.hinge_d if objective == "hinge" else L.non_saturating_d
    return torch.stack([d_loss(real.valid_scores(s), fake.valid_scores(s)) for s in SCALES]).mean()
