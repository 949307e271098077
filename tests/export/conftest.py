"""Fixtures for the export tests: tiny models saved as aurl weights files, one per mode and attention."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aurl.models import MusicTransformerVAEGAN, TokenTable, save_weights
from aurl.tokens import model_tables
from aurl.tokens.vocab import VOCAB_VERSION

# Sliding windows small enough that the test sequences (40 random, 512 chorale tokens) cross many.
SLIDING = {"attention": "sliding", "sliding_window": 12, "sliding_overlap": 4}
HIERARCHICAL = {"attention": "hierarchical", "local_window": 8, "global_tokens": 3}


def tiny_model(mode: str = "transformer", seed: int = 0, **overrides: object) -> MusicTransformerVAEGAN:
    """A seeded tiny model whose logits spread over several units (GPT-2 initialisation gives
    near-uniform logits, on which greedy decoding and loss comparisons say little)."""
    torch.manual_seed(seed)
    model = MusicTransformerVAEGAN.from_preset(
        "tiny", mode=mode, table=TokenTable(**model_tables()), dropout=0.0, **overrides
    )
    with torch.no_grad():
        if model.config.shared_pitch_rows:  # the table is computed: scale its own rows, fill the shared ones
            rows = model.embed.parametrizations.weight
            rows.original.mul_(10.0)
            rows[0].pitch_class.normal_()
            rows[0].octave.normal_()
        else:
            model.embed.weight.mul_(10.0)
    return model.eval()


def save_tiny(folder: Path, name: str, mode: str = "transformer", **overrides: object) -> Path:
    path = folder / f"{name}.safetensors"
    save_weights(tiny_model(mode, **overrides), path, {"vocab_version": VOCAB_VERSION, "step": "7"})
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def transformer_file(model_dir: Path) -> Path:
    """A tiny transformer-mode model with full attention."""
    return save_tiny(model_dir, "transformer")


@pytest.fixture(scope="session")
def vae_sliding_file(model_dir: Path) -> Path:
    """A tiny vae-mode model with sliding-window attention."""
    return save_tiny(model_dir, "vae_sliding", "vae", **SLIDING)


@pytest.fixture(scope="session")
def vae_gan_file(model_dir: Path) -> Path:
    """A tiny vae_gan-mode model with full attention (its discriminator stays out of every export)."""
    return save_tiny(model_dir, "vae_gan", "vae_gan")


@pytest.fixture(scope="session")
def hierarchical_file(model_dir: Path) -> Path:
    """A tiny transformer-mode model with hierarchical attention in blocks of 8 tokens."""
    return save_tiny(model_dir, "hierarchical", **HIERARCHICAL)
