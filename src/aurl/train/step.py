"""One optimizer step: forward and backward over the micro-batches, clipping, and the measured terms.

Each micro-batch's loss is weighted by its share of the predicted tokens of the whole global step
(all micro-batches on all ranks), times the world size that DDP's gradient mean divides by again.
A step over 2 ranks x 2 micro-batches therefore follows the same gradient as one batch holding all
the sequences, whatever the padding of each shard.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from aurl.models import MusicTransformerVAEGAN

# Scalars reported per step (token-weighted means over the global batch).
REPORTED = ("loss", "recon", "kl", "adv", "feature_matching", "beta", "adv_weight")


def predicted_tokens(batch: dict[str, Tensor]) -> int:
    """Tokens whose prediction counts in the loss: every valid position after the first."""
    return int(batch["mask"][:, 1:].sum())


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The batch on `device` (asynchronous copies from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def weighted_backward(
    forward: nn.Module,
    batches: list[dict[str, Tensor]],
    *,
    step: int,
    total_tokens: int,
    world_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[None]],
    scaler: torch.amp.GradScaler | None,
    adversarial: bool,
    keep_outputs: bool,
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Forward and backward of every micro-batch; returns the local weighted sums of REPORTED terms.

    Args:
        forward: the model as called (DDP or compiled wrapper, or the model itself).
        batches: this rank's micro-batches, already on the device.
        step: the optimizer step (for the model's KL and adversarial schedules).
        total_tokens: predicted tokens of the global step, all micro-batches on all ranks.
        world_size: ranks whose gradients DDP averages.
        autocast: makes the precision context of one forward pass.
        scaler: the fp16 gradient scaler, or None.
        adversarial: False removes the generator's adversarial term (before train.adversarial_start).
        keep_outputs: keep each forward's "soft_tokens" for the discriminator's step.

    Returns:
        (sums (len(REPORTED),) float64 tensor: sum over micro-batches of share * term, outputs kept).
    """
    device = batches[0]["ids"].device
    sums = torch.zeros(len(REPORTED), dtype=torch.float64, device=device)
    kept: list[dict[str, Tensor]] = []
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        no_sync = getattr(forward, "no_sync", None)  # DDP: reduce gradients once, after the last micro-batch
        sync = no_sync() if callable(no_sync) and not last else contextlib.nullcontext()
        share = predicted_tokens(batch) / max(total_tokens, 1)
        with sync:
            with autocast():
                out = forward(batch, step=step)
            loss = out["loss"]
            if not adversarial and "soft_tokens" in out:
                loss = loss - out["adv_weight"] * out["adv"]
            weighted = loss.float() * (share * world_size)
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
        values = [loss if name == "loss" else out[name] for name in REPORTED]
        sums += torch.stack([v.detach().double() for v in values]) * share
        if keep_outputs:
            kept.append({"soft_tokens": out["soft_tokens"].detach()})
    return sums, kept


def clip(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip the gradients' global norm to `max_norm` (0: only measure it); returns the norm before."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm if max_norm > 0 else math.inf, foreach=False)
    return float(norm)


def discriminator_backward(
    model: MusicTransformerVAEGAN,
    batches: list[dict[str, Tensor]],
    outputs: list[dict[str, Tensor]],
    *,
    total_tokens: int,
    world_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager[None]],
    scaler: torch.amp.GradScaler | None,
) -> Tensor:
    """Backward of the discriminator's loss on every micro-batch; returns its local weighted sum."""
    total = torch.zeros((), dtype=torch.float64, device=batches[0]["ids"].device)
    for batch, out in zip(batches, outputs, strict=True):
        share = predicted_tokens(batch) / max(total_tokens, 1)
        with autocast():
            loss = model.discriminator_loss(batch, out)
        weighted = loss.float() * (share * world_size)
        (scaler.scale(weighted) if scaler is not None else weighted).backward()
        total += loss.detach().double() * share
    return total
