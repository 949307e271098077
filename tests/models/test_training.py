"""A tiny model of each mode overfits one real chorale on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aurl.models import TokenTable
from models.builders import MODES, batch_of, tiny

STEPS = 200


@pytest.mark.parametrize("mode", MODES)
def test_tiny_model_overfits_one_chorale(mode: str, table: TokenTable, chorale_ids: np.ndarray) -> None:
    # Word dropout is off: it is a regulariser against memorising, the opposite of this test's aim.
    model = tiny(mode, table, seed=0, word_dropout=0.0)
    batch = batch_of(chorale_ids)
    g_opt = torch.optim.AdamW(model.generator_parameters(), lr=5e-3)
    # A short warm-up and clipping, as the trainer does: without them a tiny model may idle for
    # a hundred steps on the unigram plateau before it starts to memorise.
    warmup = torch.optim.lr_scheduler.LambdaLR(g_opt, lambda s: min(1.0, (s + 1) / 20))
    d_opt = torch.optim.AdamW(model.discriminator_parameters(), lr=5e-3) if mode == "vae_gan" else None
    recon, total = [], []
    for step in range(STEPS):
        out = model(batch, step=step)
        g_opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.generator_parameters(), 1.0)
        g_opt.step()
        warmup.step()
        if d_opt is not None:
            d_opt.zero_grad(set_to_none=True)  # drops what the generator's loss left on D
            model.discriminator_loss(batch, out).backward()
            d_opt.step()
        recon.append(out["recon"].item())
        total.append(out["loss"].item())
    assert recon[-1] <= 0.2 * recon[0], f"reconstruction {recon[0]:.3f} -> {recon[-1]:.3f}"
    assert total[-1] < total[0] - 0.8 * abs(total[0])
    assert all(np.isfinite(total))
