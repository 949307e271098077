"""Fixtures for the model tests: the real token table, a real chorale's tokens, a small batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aurl.models import TokenTable
from models.builders import batch_of, real_table, synthetic_ids


@pytest.fixture(scope="session")
def table() -> TokenTable:
    return real_table()


@pytest.fixture()
def batch() -> dict[str, torch.Tensor]:
    """Two synthetic pieces of different lengths (the second is right-padded)."""
    return batch_of(synthetic_ids(4, seed=1), synthetic_ids(3, seed=2))


@pytest.fixture(scope="session")
def chorale_ids() -> np.ndarray:
    """Tokens of one short bundled Bach chorale (BWV 153.9, 634 tokens), read and encoded by aurl."""
    from aurl.data.corpus import bach_files
    from aurl.midi import read_midi
    from aurl.tokens import encode

    files = {Path(p).name: Path(p) for p in bach_files()}
    path = files.get("bwv153.9.mid") or min(files.values(), key=lambda p: p.stat().st_size)
    return encode(read_midi(path)).astype(np.int64)
