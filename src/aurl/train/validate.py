"""Validation: loss, perplexity and bits per token of held-out pieces.

The validation loss is the reconstruction cross-entropy in nats per predicted token; in vae modes
the measured KL per token is added, which makes it the negative ELBO (an upper bound of the
negative log-likelihood) with the latent at the posterior mean. Perplexity is exp(loss), bits per
token loss / ln 2. Sums run over all ranks' shards, so every rank gets the same numbers.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch

from aurl.models import MusicTransformerVAEGAN
from aurl.train.device import same_rng
from aurl.train.distributed import Dist
from aurl.train.step import predicted_tokens, to_device
from aurl.train.stream import BatchSource


def validate(
    model: MusicTransformerVAEGAN,
    source: BatchSource | None,
    *,
    max_batches: int,
    seq_len: int,
    device: torch.device,
    dist: Dist,
    autocast: Callable[[], contextlib.AbstractContextManager[None]],
) -> dict[str, float] | None:
    """Validation metrics over the first `max_batches` batches (0: all); None without validation data.

    Returns:
        {"val_loss", "val_recon", "val_kl", "val_perplexity", "val_bits_per_token", "val_tokens"}.
    """
    if source is None or source.num_batches(0) == 0:
        return None
    n = source.num_batches(0) if max_batches == 0 else min(max_batches, source.num_batches(0))
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # recon * n, kl * n, n
    was_training = model.training
    model.eval()
    try:
        with same_rng(), torch.no_grad():
            for index in range(n):
                batch = to_device(source.batch(0, index, seq_len), device)
                tokens = predicted_tokens(batch)
                with autocast():
                    out = model(batch)
                values = [float(out["recon"]) * tokens, float(out["kl"]) * tokens, tokens]
                sums += torch.tensor(values, dtype=torch.float64, device=device)
    finally:
        model.train(was_training)
    recon, kl, count = (float(v) for v in dist.sum(sums))
    if count == 0:
        return None
    loss = (recon + kl) / count
    return {
        "val_loss": loss,
        "val_recon": recon / count,
        "val_kl": kl / count,
        "val_perplexity": math.exp(min(loss, 700.0)),
        "val_bits_per_token": loss / math.log(2),
        "val_tokens": count,
    }
