"""Builders for the sampling tests: tiny models trained for a few dozen steps on two short chorales."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from aurl.data.corpus import bach_files
from aurl.midi import read_midi
from aurl.models import MusicTransformerVAEGAN, TokenTable, save_weights
from aurl.tokens import VOCAB_SIZE, VOCAB_VERSION, decode, encode, model_tables, vocab

PIECES = ("bwv323.mid", "bwv153.9.mid")  # short chorales in 4/4 and 3/4 (438 and 634 tokens)


def table() -> TokenTable:
    return TokenTable(**model_tables())


def piece_paths() -> list[Path]:
    files = {p.name: p for p in bach_files()}
    return [files[name] for name in PIECES]


def piece_ids() -> list[np.ndarray]:
    return [encode(read_midi(p)).astype(np.int64) for p in piece_paths()]


def excerpt(ids: np.ndarray, bars: int) -> np.ndarray:
    """The grammatical token ids of the first `bars` bars of a piece (notes cut at the bar line)."""
    lines = np.flatnonzero(ids == vocab.BAR)
    if len(lines) <= bars:
        return ids
    return encode(decode(ids[: lines[bars]])).astype(np.int64)


def batch(pieces: list[np.ndarray]) -> dict[str, torch.Tensor]:
    t = max(len(p) for p in pieces)
    ids = torch.zeros(len(pieces), t, dtype=torch.long)
    mask = torch.zeros(len(pieces), t, dtype=torch.bool)
    for i, p in enumerate(pieces):
        ids[i, : len(p)] = torch.as_tensor(p)
        mask[i, : len(p)] = True
    return {"ids": ids, "mask": mask}


def train(
    mode: str,
    pieces: list[np.ndarray],
    steps: int,
    lr: float = 5e-3,
    warmup: int = 10,
    seed: int = 0,
    **overrides: object,
) -> MusicTransformerVAEGAN:
    """A tiny model fitted to `pieces` with AdamW (warm-up, clipping), in eval mode."""
    with one_thread():
        return _fit(mode, pieces, steps, lr, warmup, seed, **overrides)


def _fit(
    mode: str, pieces: list[np.ndarray], steps: int, lr: float, warmup: int, seed: int, **overrides: object
) -> MusicTransformerVAEGAN:
    torch.manual_seed(seed)
    model = MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table(), **overrides)
    data = batch(pieces)
    optimizer = torch.optim.AdamW(model.generator_parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)))
    model.train()
    for step in range(steps):
        loss = model(data, step=step)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.generator_parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return model.eval()


def save(model: MusicTransformerVAEGAN, path: Path, vocab_version: str | None = VOCAB_VERSION) -> Path:
    save_weights(model, path, {"vocab_version": vocab_version} if vocab_version else {})
    return path


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BigramDecoder:
    """A Decoder test double: a random bigram model (logits depend on the last token only).

    Cheap enough to run hundreds of generations; `eos_bias` is added to EOS's logit.
    """

    def __init__(self, seed: int, scale: float = 3.0, eos_bias: float = 0.0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.randn(VOCAB_SIZE, VOCAB_SIZE, generator=generator) * scale
        self.table[:, vocab.EOS] += eos_bias
        self.vocab_size = VOCAB_SIZE
        self.calls: list[tuple[int, int]] = []  # (batch, new tokens) of each step

    def start(self, batch: int, z: object = None) -> torch.Tensor:
        return torch.arange(batch)  # the cache: which original row each row is

    def step(self, ids: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert ids.shape[0] == cache.shape[0], "batch and cache disagree"
        self.calls.append(tuple(ids.shape))
        return self.table[ids], cache

    def reorder(self, cache: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return cache.index_select(0, index)
