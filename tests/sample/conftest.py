"""Fixtures for the sampling tests: tiny models fitted to two short chorales, their weights files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aurl.models import MusicTransformerVAEGAN
from aurl.sample import TorchDecoder
from sample.builders import excerpt, piece_ids, save, table, train

# Training recipes, chosen so that the fixtures take a few seconds on a laptop CPU.
TRANSFORMER_BARS, TRANSFORMER_STEPS = 4, 50
# The vae learns from two bars of each piece; without a KL term and with some word dropout its
# decoder reads the latent within a few hundred steps (a 4/4 and a 3/4 piece help it tell them apart).
VAE_BARS, VAE_STEPS = 2, 300
VAE_RECIPE = dict(
    lr=1e-2,
    warmup=1,
    word_dropout=0.25,
    beta=0.0,
    free_bits=0.0,
    kl_warmup_steps=1,
    balance="fixed",
    constraint_weight=0.0,
)


@pytest.fixture(scope="session")
def pieces() -> list[np.ndarray]:
    """Token ids of the two chorales (4/4 and 3/4)."""
    return piece_ids()


@pytest.fixture(scope="session")
def transformer(pieces: list[np.ndarray]) -> MusicTransformerVAEGAN:
    """A tiny transformer trained for a few dozen steps on the first bars of both pieces."""
    return train("transformer", [excerpt(p, TRANSFORMER_BARS) for p in pieces], TRANSFORMER_STEPS)


@pytest.fixture(scope="session")
def vae_pieces(pieces: list[np.ndarray]) -> list[np.ndarray]:
    return [excerpt(p, VAE_BARS) for p in pieces]


@pytest.fixture(scope="session")
def vae(vae_pieces: list[np.ndarray]) -> MusicTransformerVAEGAN:
    """A tiny vae trained on two bars of each piece."""
    return train("vae", vae_pieces, VAE_STEPS, **VAE_RECIPE)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def untrained() -> MusicTransformerVAEGAN:
    """A seeded, untrained tiny transformer: for behaviour that does not depend on quality."""
    torch.manual_seed(0)
    return MusicTransformerVAEGAN.from_preset("tiny", mode="transformer", table=table()).eval()


@pytest.fixture()
def decoder(transformer: MusicTransformerVAEGAN) -> TorchDecoder:
    return TorchDecoder(transformer)


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory, transformer: MusicTransformerVAEGAN) -> Path:
    """The trained transformer as a weights file with its vocabulary version."""
    return save(transformer, tmp_path_factory.mktemp("weights") / "model.safetensors")


@pytest.fixture(scope="session")
def vae_weights(tmp_path_factory: pytest.TempPathFactory, vae: MusicTransformerVAEGAN) -> Path:
    return save(vae, tmp_path_factory.mktemp("vae") / "model.safetensors")
