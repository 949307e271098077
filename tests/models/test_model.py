"""MusicTransformerVAEGAN: outputs per mode, causality, KV cache, gradients, spectral norm, errors."""

from __future__ import annotations

import pytest
import torch

from aurl.errors import ConfigError
from aurl.models import LOSS_TERMS, Latent, MusicTransformerVAEGAN, TokenTable
from models.builders import KINDS, MODES, SMALL_WINDOWS, batch_of, synthetic_ids, tiny

V = 774


@pytest.mark.parametrize("mode", MODES)
def test_forward_shapes_and_terms(mode: str, table: TokenTable, batch: dict) -> None:
    model = tiny(mode, table)
    out = model(batch)
    b, t = batch["ids"].shape
    assert out["logits"].shape == (b, t, V) and out["logits"].dtype == torch.float32
    for name in LOSS_TERMS:
        assert out[name].dim() == 0 and torch.isfinite(out[name]), name
    assert out["recon"] > 0
    has_latent = mode != "transformer"
    assert (out["kl"] > 0) == has_latent
    assert torch.allclose(out["kl"], out["kl_global"] + out["kl_bar"] + out["kl_fine"])
    assert ("soft_tokens" in out) == (mode == "vae_gan")
    if mode == "vae_gan":
        assert out["soft_tokens"].shape == (b, t - 1, V)
        assert torch.allclose(out["soft_tokens"].sum(-1), torch.ones(b, t - 1), atol=1e-5)


def test_encode_decode_discriminate_shapes(table: TokenTable, batch: dict) -> None:
    model = tiny("vae_gan", table).eval()
    ids, mask = batch["ids"], batch["mask"]
    mu, logvar, z = model.encode(ids, mask)
    c = model.config
    n_bars = int(model._features(ids).bar.max()) + 1
    n_windows = -(-ids.shape[1] // c.fine_window)
    for level in (mu, logvar, z):
        assert isinstance(level, Latent)
        assert level.piece.shape == (2, c.latent_global)
        assert level.bar.shape == (2, n_bars, c.latent_bar)
        assert level.fine.shape == (2, n_windows, c.latent_fine)
    assert not torch.equal(z.piece, mu.piece)  # z is a sample
    assert bool(mu.bar_mask[1, -1]) is False or n_bars <= 4  # the shorter piece has fewer bars
    logits = model.decode(z, ids)
    assert logits.shape == (*ids.shape, V)
    judged = model.discriminate(ids, mask)
    soft = torch.softmax(logits[:, :-1], -1)
    judged_soft = model.discriminate(soft, mask[:, 1:], ids=ids[:, 1:])
    for out in (judged, judged_soft):
        assert set(out["scores"]) == {"note", "phrase", "global", "rhythm", "harmony", "melody"}
        assert out["scores"]["note"].shape == out["masks"]["note"].shape
        assert out["scores"]["global"].shape == (2, 1)
        assert all(isinstance(f, torch.Tensor) for fs in out["features"].values() for f, _ in fs)


def test_transformer_mode_has_no_encoder_or_discriminator(table: TokenTable, batch: dict) -> None:
    model = tiny("transformer", table)
    with pytest.raises(ConfigError, match="mode"):
        model.encode(batch["ids"])
    with pytest.raises(ConfigError, match="vae_gan"):
        model.discriminate(batch["ids"])
    with pytest.raises(ConfigError, match="vae_gan"):
        model.discriminator_loss(batch, model(batch))


def test_table_size_must_match_config(table: TokenTable) -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        MusicTransformerVAEGAN.from_preset("tiny", table=table, vocab_size=100)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
@torch.no_grad()
def test_decoder_is_causal(mode: str, kind: str, table: TokenTable) -> None:
    model = tiny(mode, table, attention=kind, **SMALL_WINDOWS).eval()
    ids = torch.as_tensor(synthetic_ids(3))[None]
    t = 20
    changed = ids.clone()
    changed[0, t + 1 :] = torch.randint(4, V, (ids.shape[1] - t - 1,))
    z = model.encode(ids)[0] if mode != "transformer" else None
    a, b = model.decode(z, ids), model.decode(z, changed)
    assert torch.equal(a[0, : t + 1], b[0, : t + 1])
    assert not torch.allclose(a[0, t + 1 :], b[0, t + 1 :])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
@torch.no_grad()
def test_kv_cache_gives_the_logits_of_a_full_pass(mode: str, kind: str, table: TokenTable) -> None:
    model = tiny(mode, table, attention=kind, **SMALL_WINDOWS).eval()
    ids = torch.as_tensor(synthetic_ids(4, seed=3))[None].repeat(2, 1)
    ids[1, 5:9] = torch.tensor([570, 580, 204, 706])
    z = model.encode(ids)[2] if mode != "transformer" else None
    whole = model.decode(z, ids)
    logits, cache = model.step(ids, z=z)  # all at once through the cache path
    assert (logits - whole).abs().max() <= 1e-5
    cache, steps = None, []
    for i in range(ids.shape[1]):  # token by token
        logits, cache = model.step(ids[:, i : i + 1], cache, z=z if i == 0 else None)
        steps.append(logits)
    assert (torch.cat(steps, 1) - whole).abs().max() <= 1e-5
    final = model._features(ids)
    assert torch.equal(cache.beat.time, final.time[:, -1]) and torch.equal(cache.beat.bar, final.bar[:, -1])
    assert torch.equal(cache.beat.bar_len, final.bar_len[:, -1]) and cache.pos == ids.shape[1]
    if kind != "full":
        assert all(layer.k.shape[2] <= 12 for layer in cache.layers)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_every_parameter(mode: str, table: TokenTable, batch: dict) -> None:
    model = tiny(mode, table, dropout=0.1).train()
    out = model(batch)
    loss = out["loss"] + (model.discriminator_loss(batch, out) if mode == "vae_gan" else 0.0)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_discriminator_loss_leaves_the_generator_alone(table: TokenTable, batch: dict) -> None:
    model = tiny("vae_gan", table)
    out = model(batch)
    model.discriminator_loss(batch, out).backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert all(p.grad is not None for p in model.discriminator_parameters())
    assert len(model.generator_parameters()) + len(model.discriminator_parameters()) == len(
        list(model.parameters())
    )


def test_spectral_norm_is_active_on_the_discriminator(table: TokenTable) -> None:
    model = tiny("vae_gan", table).train()
    layers = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv1d)]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    for _ in range(30):  # power iterations converge while the module runs
        model.discriminate(torch.as_tensor(synthetic_ids(2))[None])
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.05)
        assert torch.linalg.matrix_norm(
            m.parametrizations.weight.original.detach().reshape(w.shape), ord=2
        ) != pytest.approx(1.0, abs=0.05)


def test_word_dropout_masks_inputs_only_in_training(table: TokenTable) -> None:
    model = tiny("vae", table, word_dropout=0.5)
    ids = torch.as_tensor(synthetic_ids(4))[None]
    valid = torch.ones_like(ids, dtype=torch.bool)
    dropped = model._word_dropout(ids, valid)
    assert dropped[0, 0] == ids[0, 0] and 0 < int((dropped == table.mask_id).sum()) < ids.shape[1]
    model.eval()
    torch.testing.assert_close(
        model(batch_of(ids[0].numpy()))["recon"], model(batch_of(ids[0].numpy()))["recon"]
    )


def test_padding_does_not_change_the_loss(table: TokenTable) -> None:
    model = tiny("vae", table).eval()
    seq = synthetic_ids(3)
    alone = model(batch_of(seq))
    padded = model(batch_of(seq, synthetic_ids(5, seed=4)))
    # Row 0 is padded in the pair; its logits over its own tokens must not move.
    torch.testing.assert_close(padded["logits"][0, : len(seq)], alone["logits"][0], atol=1e-5, rtol=1e-5)
