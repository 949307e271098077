"""The hierarchical latent: encoder, posterior heads per level, and the decoder's latent condition.

Three levels, nested in time:
- piece: one z (B, Zg) for the whole sequence (mean of the encoder states);
- bar: one z per bar (B, NB, Zb); bar k holds the tokens after the k-th bar line (bar 0: before it);
- fine: one z per window of `fine_window` tokens (B, NW, Zf).
Each level's posterior is a diagonal Gaussian read from the encoder states pooled over its span;
the prior of every level is N(0, I). The decoder sees, at each token, the sum of projections of
its piece, bar and window latents; a bar or window beyond those given reads the prior mean, 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aurl.config import ModelConfig
from aurl.models.geometry import Geometry
from aurl.models.pooling import masked_mean, segment_mean
from aurl.models.positions import BeatEmbedding, BeatFeatures
from aurl.models.transformer import Stack


@dataclass(frozen=True)
class Latent:
    """One tensor per latent level (means, log-variances or samples), with the masks of the levels.

    Attributes:
        piece: (B, Zg) the global level.
        bar: (B, NB, Zb) one row per bar.
        fine: (B, NW, Zf) one row per window of `fine_window` tokens.
        bar_mask, fine_mask: (B, NB) and (B, NW) bool, True where the bar or window holds tokens.
    """

    piece: Tensor
    bar: Tensor
    fine: Tensor
    bar_mask: Tensor
    fine_mask: Tensor

    def map(self, fn: Callable[[Tensor], Tensor]) -> Latent:
        """Apply fn to each level (masks unchanged)."""
        return Latent(fn(self.piece), fn(self.bar), fn(self.fine), self.bar_mask, self.fine_mask)

    @classmethod
    def prior(
        cls,
        config: ModelConfig,
        batch: int,
        n_bars: int = 0,
        n_windows: int = 0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Latent:
        """A draw from N(0, I) with n_bars bars and n_windows windows.

        With 0 bars or windows, those levels read the prior mean (0) at every token.
        """

        def draw(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator).to(device)

        return cls(
            draw(batch, config.latent_global),
            draw(batch, n_bars, config.latent_bar),
            draw(batch, n_windows, config.latent_fine),
            torch.ones(batch, n_bars, dtype=torch.bool, device=device),
            torch.ones(batch, n_windows, dtype=torch.bool, device=device),
        )


def reparameterize(mu: Latent, logvar: Latent) -> Latent:
    """z = mu + sigma * eps, level by level."""

    def draw(m: Tensor, lv: Tensor) -> Tensor:
        return m + torch.randn_like(m) * (0.5 * lv).exp()

    return Latent(
        draw(mu.piece, logvar.piece),
        draw(mu.bar, logvar.bar),
        draw(mu.fine, logvar.fine),
        mu.bar_mask,
        mu.fine_mask,
    )


class LatentEncoder(nn.Module):
    """Bidirectional Transformer over the tokens -> posterior mean and log-variance of each level."""

    def __init__(self, config: ModelConfig, steps_per_beat: int) -> None:
        super().__init__()
        c = config
        d = c.encoder_d_model
        self.fine_window = c.fine_window
        self.embed = nn.Embedding(c.vocab_size, d)
        self.beat = BeatEmbedding(d, steps_per_beat, c.bar_period)
        geometry = Geometry(
            c.attention, False, c.sliding_window, c.sliding_overlap, c.local_window, c.global_tokens
        )
        self.stack = Stack(
            c.encoder_layers, d, c.checkpointing, n_heads=c.encoder_heads, geometry=geometry,
            dropout=c.dropout, attention_dropout=c.attention_dropout, rope_base=c.rope_base,
            ffn_mult=c.ffn_mult,
        )  # fmt: skip
        self.to_piece = nn.Linear(d, 2 * c.latent_global)
        self.to_bar = nn.Linear(d, 2 * c.latent_bar)
        self.to_fine = nn.Linear(d, 2 * c.latent_fine)

    def forward(self, ids: Tensor, valid: Tensor, feats: BeatFeatures) -> tuple[Latent, Latent]:
        """Posterior (mu, logvar) of every level for ids (B, T) with valid (B, T) bool."""
        h = self.stack(self.embed(ids) + self.beat(feats), key_valid=valid)  # (B, T, De)
        piece = self.to_piece(masked_mean(h, valid))
        bars, bar_mask = segment_mean(h, feats.bar, valid)
        window = torch.arange(ids.shape[1], device=ids.device).expand_as(ids) // self.fine_window
        n_windows = -(-ids.shape[1] // self.fine_window)
        windows, fine_mask = segment_mean(h, window, valid, n_windows)
        (mu_p, lv_p), (mu_b, lv_b), (mu_f, lv_f) = (
            x.chunk(2, -1) for x in (piece, self.to_bar(bars), self.to_fine(windows))
        )
        # Bounded log-variance: exp() of an unbounded head overflows early in training.
        lv_p, lv_b, lv_f = (lv.clamp(-10.0, 6.0) for lv in (lv_p, lv_b, lv_f))
        return Latent(mu_p, mu_b, mu_f, bar_mask, fine_mask), Latent(lv_p, lv_b, lv_f, bar_mask, fine_mask)


class LatentCondition(nn.Module):
    """Latent -> per-token condition (B, T, latent_cond): piece + its bar's z + its window's z."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fine_window = config.fine_window
        self.piece = nn.Linear(config.latent_global, config.latent_cond)
        self.bar = nn.Linear(config.latent_bar, config.latent_cond, bias=False)
        self.fine = nn.Linear(config.latent_fine, config.latent_cond, bias=False)

    def forward(self, z: Latent, bar_index: Tensor, positions: Tensor) -> Tensor:
        """Condition for tokens with bar indices (B, T) and absolute positions (T,)."""
        return self.combine(self.project(z), bar_index, positions)

    def project(self, z: Latent) -> tuple[Tensor, Tensor, Tensor]:
        """The three levels in condition space: (B, C), (B, bars, C), (B, windows, C). A decoder that
        runs token by token projects once per piece and combines per token."""
        return self.piece(z.piece), self.bar(z.bar), self.fine(z.fine)

    def combine(
        self, projected: tuple[Tensor, Tensor, Tensor], bar_index: Tensor, positions: Tensor
    ) -> Tensor:
        """Condition (B, T, C) from `project`'s output for bar indices (B, T) and positions (T,)."""
        piece, bars, windows = projected
        window = (positions // self.fine_window)[None].expand_as(bar_index)
        return piece[:, None] + _pick(bars, bar_index) + _pick(windows, window)


def _pick(rows: Tensor, index: Tensor) -> Tensor:
    """rows (B, N, C) gathered at index (B, T); an index >= N reads 0 (the prior mean's projection)."""
    b, n, c = rows.shape
    padded = torch.cat([rows, rows.new_zeros(b, 1, c)], 1)
    idx = index.clamp(max=n)
    return padded.gather(1, idx[..., None].expand(-1, -1, c))


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) element by element, in nats."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)


def kl_levels(mu: Latent, logvar: Latent) -> dict[str, tuple[Tensor, Tensor]]:
    """Per level: KL per element (B, N, Z) and the mask (B, N) of the rows that exist."""
    ones = torch.ones(mu.piece.shape[0], 1, dtype=torch.bool, device=mu.piece.device)
    return {
        "global": (kl_per_dim(mu.piece, logvar.piece)[:, None], ones),
        "bar": (kl_per_dim(mu.bar, logvar.bar), mu.bar_mask),
        "fine": (kl_per_dim(mu.fine, logvar.fine), mu.fine_mask),
    }
