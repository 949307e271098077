"""Latent helpers for the vae modes: spherical interpolation, and joining a posterior to prior draws.

A `Latent` has three levels (piece (B, Zg), bar (B, NB, Zb), fine (B, NW, Zf)). Two encodings may
cover different numbers of bars and windows; the shorter is padded with the prior mean (0), which
is also what the decoder reads past the last given bar.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from aurl.models import Latent

_PARALLEL = 1e-4  # below this angle (radians) slerp and lerp agree; lerp avoids dividing by sin ~ 0


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation from a (t = 0) to b (t = 1), over the whole tensor as one vector.

    The norm is interpolated linearly and the direction along the great circle, so a path between
    two typical N(0, I) draws stays at a typical radius (a straight line would dip towards 0).
    A zero or (anti)parallel end falls back to linear interpolation.
    """
    na, nb = a.norm(), b.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        return torch.lerp(a, b, t)
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    if float(omega) < _PARALLEL or float(torch.pi - omega) < _PARALLEL:
        return torch.lerp(a, b, t)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction * torch.lerp(na, nb, t)


def _pad_rows(x: Tensor, n: int) -> Tensor:
    """(B, N, Z) -> (B, n, Z) with zero rows added at the end."""
    return F.pad(x, (0, 0, 0, n - x.shape[1]))


def _pad_mask(mask: Tensor, n: int) -> Tensor:
    return F.pad(mask, (0, n - mask.shape[1]), value=True)


def aligned(a: Latent, b: Latent) -> tuple[Latent, Latent]:
    """Both latents padded to the same numbers of bars and windows (prior mean in the padding)."""
    nb, nw = max(a.bar.shape[1], b.bar.shape[1]), max(a.fine.shape[1], b.fine.shape[1])

    def pad(z: Latent) -> Latent:
        return Latent(z.piece, _pad_rows(z.bar, nb), _pad_rows(z.fine, nw), _pad_mask(z.bar_mask, nb),
                      _pad_mask(z.fine_mask, nw))  # fmt: skip

    return pad(a), pad(b)


def interpolate(a: Latent, b: Latent, steps: int) -> list[Latent]:
    """`steps` latents from a to b (both included), each level interpolated spherically on its own.

    Args:
        a, b: one-row latents (e.g. posterior means of two pieces).
        steps: >= 2.
    """
    a, b = aligned(a, b)
    out = []
    for i in range(steps):
        t = i / (steps - 1)
        out.append(Latent(slerp(a.piece, b.piece, t), slerp(a.bar, b.bar, t), slerp(a.fine, b.fine, t),
                          a.bar_mask, a.fine_mask))  # fmt: skip
    return out


def extend(posterior: Latent, prior: Latent) -> Latent:
    """The posterior's piece latent with its bars and windows, followed by the prior's later ones.

    Used to continue a primer in vae mode: the primer's own latents where it has them, fresh
    draws for the bars and windows it does not reach. Rows of `posterior` are repeated to match
    `prior`'s batch.
    """
    rows = prior.piece.shape[0]

    def join(known: Tensor, drawn: Tensor) -> Tensor:
        known = known.expand(rows, *known.shape[1:])
        return torch.cat([known, drawn[:, known.shape[1] :]], 1) if drawn.shape[1] > known.shape[1] else known

    return dataclasses.replace(
        prior,
        piece=posterior.piece.expand(rows, -1),
        bar=join(posterior.bar, prior.bar),
        fine=join(posterior.fine, prior.fine),
        bar_mask=join(posterior.bar_mask, prior.bar_mask),
        fine_mask=join(posterior.fine_mask, prior.fine_mask),
    )
