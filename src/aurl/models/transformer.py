"""Pre-norm Transformer blocks and stacks (the decoder, and the VAE's encoder).

A block is `x + attn(norm(x))` then `x + ffn(norm(x))` with a 4x GELU feed-forward. Blocks of a
latent-conditioned decoder also take a per-token condition and add a projection of it to their
input: skip connections from the latent into every layer, which keep the decoder from ignoring z
(Dieng et al. 2019, "Avoiding latent variable collapse with generative skip models").
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from aurl.models.attention import Attention, LayerCache
from aurl.models.geometry import Geometry


class FeedForward(nn.Module):
    """D -> ffn_mult * D -> D with tanh-approximated GELU (one fused kernel)."""

    def __init__(self, d_model: int, ffn_mult: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_mult * d_model)
        self.fc2 = nn.Linear(ffn_mult * d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """One pre-norm Transformer layer over (B, T, D).

    Args:
        d_model, n_heads: width D and number of heads (D / heads must be even for rotary angles).
        geometry: which keys the attention sees.
        dropout: dropout probability on the residual branches.
        attention_dropout: dropout on the attention weights (0 keeps the fused kernels).
        rope_base: rotary wavelength base.
        ffn_mult: feed-forward expansion (4).
        cond_dim: width of a per-token latent condition added to the block input; 0 for none.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        geometry: Geometry,
        dropout: float,
        rope_base: float,
        ffn_mult: int,
        cond_dim: int = 0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, geometry, attention_dropout, rope_base)
        self.ffn = FeedForward(d_model, ffn_mult)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Linear(cond_dim, d_model, bias=False) if cond_dim else None

    def _with_cond(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return x if self.skip is None or cond is None else x + self.skip(cond)

    def forward(self, x: Tensor, key_valid: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        x = self._with_cond(x, cond)
        x = x + self.drop(self.attn(self.norm1(x), key_valid))
        return x + self.drop(self.ffn(self.norm2(x)))

    def step(
        self, x: Tensor, pos0: int, cache: LayerCache | None, cond: Tensor | None = None
    ) -> tuple[Tensor, LayerCache]:
        """Causal step for new tokens at positions pos0 ..; returns (B, Tn, D) and the updated cache."""
        x = self._with_cond(x, cond)
        a, cache = self.attn.step(self.norm1(x), pos0, cache)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.norm2(x))), cache


class Stack(nn.Module):
    """`n_layers` blocks and a final LayerNorm.

    `checkpointing` recomputes each block in the backward pass instead of keeping its activations.
    """

    def __init__(
        self, n_layers: int, d_model: int, checkpointing: bool = False, **block_args: object
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(d_model, **block_args) for _ in range(n_layers))  # type: ignore[arg-type]
        self.norm = nn.LayerNorm(d_model)
        self.checkpointing = checkpointing

    def forward(self, x: Tensor, key_valid: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """(B, T, D) -> (B, T, D) over a whole sequence."""
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(block, x, key_valid, cond, use_reentrant=False)
            else:
                x = block(x, key_valid, cond)
        return self.norm(x)

    def step(
        self, x: Tensor, pos0: int, caches: list[LayerCache] | None, cond: Tensor | None = None
    ) -> tuple[Tensor, list[LayerCache]]:
        """Incremental causal pass; `caches` holds one LayerCache per block (None at the start)."""
        new: list[LayerCache] = []
        for i, block in enumerate(self.blocks):
            assert isinstance(block, Block)
            x, c = block.step(x, pos0, None if caches is None else caches[i], cond)
            new.append(c)
        return self.norm(x), new
