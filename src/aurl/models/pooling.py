"""Masked means over the token axis: whole sequences, and segments such as bars or time steps."""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    """Mean over T of x (B, T, C) where valid (B, T) is True; (B, C). A row with no valid token gives 0."""
    w = valid.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def segment_mean(
    x: Tensor, segment: Tensor, valid: Tensor, n_segments: int | None = None
) -> tuple[Tensor, Tensor]:
    """Mean of x (B, T, C) over the tokens of each segment.

    Args:
        x: (B, T, C) token features.
        segment: (B, T) int64 segment index of each token, >= 0 (e.g. its bar index).
        valid: (B, T) bool; invalid tokens are left out.
        n_segments: N; default one more than the largest index among valid tokens.

    Returns:
        (B, N, C) means (0 for empty segments) and (B, N) bool, True where a segment has a token.
    """
    b, _, c = x.shape
    if n_segments is None:
        n_segments = int(torch.where(valid, segment, 0).max()) + 1 if bool(valid.any()) else 1
    index = torch.where(valid, segment, n_segments).clamp(max=n_segments)  # invalid -> a spill slot
    sums = x.new_zeros(b, n_segments + 1, c).scatter_add_(1, index[..., None].expand(-1, -1, c), x)
    counts = x.new_zeros(b, n_segments + 1).scatter_add_(1, index, torch.ones_like(index, dtype=x.dtype))
    counts = counts[:, :n_segments]
    return sums[:, :n_segments] / counts.clamp(min=1)[..., None], counts > 0
