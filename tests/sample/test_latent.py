"""The vae modes: spherical interpolation, prior draws, and latents that reconstruct their pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aurl.models import Latent, MusicTransformerVAEGAN
from aurl.sample import TorchDecoder, interpolate, slerp
from aurl.sample.latent import aligned, extend

vectors = st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=2, max_size=12)


@given(vectors, vectors, st.floats(0.0, 1.0))
@settings(max_examples=80, deadline=None)
def test_slerp_interpolates_norm_and_direction(a: list[float], b: list[float], t: float) -> None:
    n = min(len(a), len(b))
    x, y = torch.tensor(a[:n]), torch.tensor(b[:n])
    out = slerp(x, y, t)
    assert torch.isfinite(out).all()
    # Opposite directions have no great circle; slerp falls back to a straight line through 0 there.
    assume(float(F.cosine_similarity(x, y, dim=0)) > -0.999)
    torch.testing.assert_close(slerp(x, y, 0.0), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(slerp(x, y, 1.0), y, atol=1e-4, rtol=1e-4)
    expected_norm = (1 - t) * x.norm() + t * y.norm()
    assert abs(float(out.norm()) - float(expected_norm)) < 1e-3 * (1 + float(expected_norm))


def test_slerp_follows_the_great_circle() -> None:
    x, y = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    mid = slerp(x, y, 0.5)
    angle = torch.atan2(mid[1], mid[0])
    assert torch.isclose(angle, torch.tensor(torch.pi / 4)) and torch.isclose(mid.norm(), torch.tensor(1.5))


def _latent(bars: int, windows: int, seed: int) -> Latent:
    g = torch.Generator().manual_seed(seed)
    return Latent(
        torch.randn(1, 4, generator=g),
        torch.randn(1, bars, 3, generator=g),
        torch.randn(1, windows, 2, generator=g),
        torch.ones(1, bars, dtype=torch.bool),
        torch.ones(1, windows, dtype=torch.bool),
    )


def test_interpolation_ends_at_the_two_encodings() -> None:
    a, b = _latent(3, 5, 0), _latent(5, 4, 1)
    path = interpolate(a, b, 4)
    assert len(path) == 4
    wide_a, wide_b = aligned(a, b)
    for level in ("piece", "bar", "fine"):
        torch.testing.assert_close(getattr(path[0], level), getattr(wide_a, level))
        torch.testing.assert_close(getattr(path[-1], level), getattr(wide_b, level), atol=1e-5, rtol=1e-5)
    assert path[1].bar.shape == (1, 5, 3) and path[1].fine.shape == (1, 5, 2)
    assert torch.equal(wide_a.bar[0, 3:], torch.zeros(2, 3))  # padded with the prior mean


def test_extend_keeps_the_posterior_and_appends_prior_draws() -> None:
    posterior, prior = _latent(2, 3, 0), _latent(6, 8, 1)
    prior = Latent(
        *(
            x.expand(3, *x.shape[1:])
            for x in (prior.piece, prior.bar, prior.fine, prior.bar_mask, prior.fine_mask)
        )
    )
    z = extend(posterior, prior)
    assert z.bar.shape == (3, 6, 3) and z.fine.shape == (3, 8, 2) and z.piece.shape == (3, 4)
    assert torch.equal(z.bar[:, :2], posterior.bar.expand(3, -1, -1))
    assert torch.equal(z.bar[:, 2:], prior.bar[:, 2:]) and torch.equal(z.piece[1], posterior.piece[0])


def test_prior_draws_are_per_row_and_reproducible(vae: MusicTransformerVAEGAN) -> None:
    decoder = TorchDecoder(vae)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    z1, z2 = decoder.prior(gens(), n_bars=4, n_tokens=100), decoder.prior(gens(), n_bars=4, n_tokens=100)
    assert torch.equal(z1.piece, z2.piece) and not torch.equal(z1.piece[0], z1.piece[1])
    assert z1.bar.shape[:2] == (2, 4) and z1.fine.shape[1] == -(-100 // vae.config.fine_window)


def _nll(decoder: TorchDecoder, ids: np.ndarray, z: Latent) -> torch.Tensor:
    """Mean next-token loss of `ids` decoded with each row of z, (rows,)."""
    rows = z.piece.shape[0]
    x = torch.as_tensor(ids)[None].expand(rows, -1)
    logits, _ = decoder.step(x, decoder.start(rows, z))
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none").mean(1)


def test_interpolation_endpoints_reconstruct_their_pieces_better_than_random_z(
    vae: MusicTransformerVAEGAN, vae_pieces: list[np.ndarray]
) -> None:
    decoder = TorchDecoder(vae)
    a, b = (decoder.encode(torch.as_tensor(ids)[None]) for ids in vae_pieces)
    path = interpolate(a, b, 5)
    random_z = decoder.prior([torch.Generator().manual_seed(s) for s in range(8)], n_bars=4, n_tokens=256)
    for ids, endpoint in ((vae_pieces[0], path[0]), (vae_pieces[1], path[-1])):
        own = float(_nll(decoder, ids, endpoint)[0])
        random = _nll(decoder, ids, random_z)
        assert own < float(random.mean()) - 0.05, (own, random.tolist())
        assert own < float(random.median())


@pytest.mark.parametrize("steps", [2, 3])
def test_interpolation_paths_have_the_asked_length(steps: int) -> None:
    assert len(interpolate(_latent(1, 1, 0), _latent(1, 1, 1), steps)) == steps
