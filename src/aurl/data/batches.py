"""Batches: a deterministic, length-bucketed plan per epoch; cropped, augmented, padded rows; a DataLoader.

Global batch `index` of `epoch` is a pure function of (seed, epoch, index, seq_len): which pieces it
holds comes from the epoch's plan (seed, epoch), and each row's crop and augmentation from its own
random stream (seed, epoch, index, row). A process of a DDP run builds only its rows, so 2 ranks
together build exactly the 1-rank batch, a run resumed at any batch on any number of processes sees
what it would have seen, and DataLoader workers cannot change a batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from aurl.config.data import DataConfig
from aurl.data.augment import augment as augment_score
from aurl.data.dataset import TokenDataset
from aurl.data.scores import token_steps, window_notes
from aurl.errors import ConfigError
from aurl.tokens import encode, vocab

if TYPE_CHECKING:
    import torch

_PLAN_STREAM = 0x9A7C_0001  # random streams of the plan and of the rows, apart from other uses of the seed
_ROW_STREAM = 0x9A7C_0002
_WHOLE_PIECE = 2  # pieces up to this many batch widths are augmented whole, longer ones by window
_JITTER_GROWTH = (
    0.3  # measured on the chorales: jittering a share p of the notes adds <= 0.27 p (docs/data.md)
)
_SWING_GROWTH = 0.01  # measured: <= 0.003


class Batches:
    """The batches of one epoch after another over a dataset, for one process of `world_size`.

    Args:
        dataset: the pieces.
        config: batch_size (global), bucket, bucket_pool, pad_multiple and the augmentation settings.
        seed: the run's seed.
        augment: augment rows (training) or not (validation); `config.augment` False turns it off too.
        rank, world_size: this process's place in a DDP run; it builds rows
            rank * b .. (rank + 1) * b - 1 of each global batch, b = batch_size // world_size.

    Raises:
        ConfigError: batch_size is not a multiple of world_size, or rank is outside 0..world_size-1.
    """

    def __init__(
        self,
        dataset: TokenDataset,
        config: DataConfig,
        *,
        seed: int,
        augment: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside 0..{world_size - 1} (world size {world_size})")
        if config.batch_size % world_size:
            raise ConfigError(
                f"data.batch_size {config.batch_size} is not a multiple of the world size {world_size}; "
                f"use a batch size such as {world_size * max(1, config.batch_size // world_size)}"
            )
        self.dataset, self.config, self.seed = dataset, config, seed
        self.augment = augment and config.augment
        self.rank, self.world_size = rank, world_size
        self.local_batch_size = config.batch_size // world_size
        self._plan: tuple[int, np.ndarray] | None = None

    def num_batches(self, epoch: int) -> int:
        """Global batches in `epoch` (the same every epoch): ceil(pieces / batch_size)."""
        return math.ceil(len(self.dataset) / self.config.batch_size)

    def plan(self, epoch: int) -> np.ndarray:
        """(num_batches, batch_size) int64: the pieces of every global batch of `epoch`, in order.

        The pieces are shuffled; the last batch is filled up with pieces from the start of that
        order. With bucketing, pools of `bucket_pool` batches are each sorted by length before they
        are cut into batches; the order of the batches is shuffled again either way.
        """
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1]
        size, n = self.config.batch_size, len(self.dataset)
        rng = np.random.default_rng([self.seed, epoch, _PLAN_STREAM])
        order = np.resize(rng.permutation(n), self.num_batches(epoch) * size)
        if self.config.bucket:
            pool = self.config.bucket_pool * size
            for first in range(0, len(order), pool):
                chunk = order[first : first + pool]
                order[first : first + pool] = chunk[np.argsort(self.dataset.lengths[chunk], kind="stable")]
        batches = order.reshape(-1, size)[rng.permutation(self.num_batches(epoch))]
        self._plan = (epoch, batches)
        return batches

    def width(self, pieces: np.ndarray, seq_len: int) -> int:
        """Tokens per row of a global batch of `pieces`: the longest piece, with room for what
        augmentation may add, rounded up to `pad_multiple`, at most `seq_len`."""
        longest = int(self.dataset.lengths[pieces].max())
        growth = self._growth() if self.augment else 0.0
        multiple = self.config.pad_multiple
        return min(seq_len, -(-math.ceil(longest * (1.0 + growth)) // multiple) * multiple)

    def _growth(self) -> float:
        """Upper share of tokens that jitter and swing add (the other augmentations never add any)."""
        c = self.config
        jitter = _JITTER_GROWTH * c.jitter_note_prob if c.jitter_prob > 0 else 0.0
        return jitter + (_SWING_GROWTH if c.swing_prob > 0 else 0.0)

    def arrays(self, epoch: int, index: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows of global batch `index` as numpy: ids (b, W) int64 and mask (b, W) bool."""
        if not 0 <= index < self.num_batches(epoch):
            raise IndexError(f"batch {index} outside 0..{self.num_batches(epoch) - 1} of epoch {epoch}")
        pieces = self.plan(epoch)[index]
        width = self.width(pieces, seq_len)
        b = self.local_batch_size
        ids = np.full((b, width), vocab.PAD, np.int64)
        mask = np.zeros((b, width), np.bool_)
        for local in range(b):
            row = self.rank * b + local
            tokens = self.row(epoch, index, row, int(pieces[row]), width)
            ids[local, : len(tokens)] = tokens
            mask[local, : len(tokens)] = True
        return ids, mask

    def batch(self, epoch: int, index: int, seq_len: int) -> dict[str, torch.Tensor]:
        """This process's rows of global batch `index`: {"ids": (b, W) int64, "mask": (b, W) bool}.

        W <= seq_len; padding is PAD (0) with mask False, on the right.
        """
        import torch

        ids, mask = self.arrays(epoch, index, seq_len)
        return {"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)}

    def row(self, epoch: int, index: int, row: int, piece: int, width: int) -> np.ndarray:
        """The tokens of row `row` of global batch `index`: piece `piece`, augmented, at most `width`."""
        rng = np.random.default_rng([self.seed, epoch, index, row, _ROW_STREAM])
        ids = self.dataset[piece]
        if not self.augment:
            return crop(ids, width, rng)
        if len(ids) > _WHOLE_PIECE * width:
            return self._augmented_window(ids, piece, width, rng)
        score = self.dataset.score(piece)
        augmented = augment_score(score, self.config, rng)
        # Nothing applied: encode(score) would give `ids` back, so skip it.
        return crop(ids if augmented is score else encode(augmented), width, rng)

    def _augmented_window(
        self, ids: np.ndarray, piece: int, width: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Augment only the part of a long piece around its window: cost grows with the window."""
        start = window_start(ids, width, rng)
        steps = token_steps(ids)
        later_bars = np.flatnonzero(ids[start + _WHOLE_PIECE * width :] == vocab.BAR)
        stop = int(steps[start + _WHOLE_PIECE * width + later_bars[0]]) if len(later_bars) else None
        notes = window_notes(self.dataset.score(piece), int(steps[start]), stop)
        augmented = augment_score(notes, self.config, rng)
        if augmented is notes:
            return ids[start : start + width]
        tokens = encode(augmented)
        token_step = token_steps(tokens)
        first = 0
        if start > 0:
            at_start = np.flatnonzero((tokens == vocab.BAR) & (token_step == steps[start]))
            first = int(at_start[0])  # the bar line at the window's step exists: a kept note reaches it
        last = len(tokens) if stop is None else int(np.searchsorted(token_step, stop))
        return tokens[first : min(last, first + width)]

    def loader(
        self, epoch: int, start: int, seq_len: int, *, num_workers: int, pin_memory: bool
    ) -> Iterable[tuple[int, dict[str, torch.Tensor]]]:
        """Batches `start` .. num_batches - 1 of `epoch` as (index, batch), in order.

        A torch DataLoader over batch indices: each worker builds whole batches with `batch`, so
        the batches are the same for any `num_workers`. Build a new loader when seq_len changes.

        Args:
            epoch, start: the epoch and its first batch (a resumed run starts mid-epoch).
            seq_len: most tokens per row.
            num_workers: worker processes (0: batches are built in this process when iterated).
            pin_memory: pin the tensors (for a faster copy to a CUDA device).
        """
        from torch.utils.data import DataLoader

        indices = _BatchIndices(self, epoch, start, seq_len)
        return DataLoader(
            indices,  # type: ignore[arg-type]
            batch_size=None,
            shuffle=False,
            num_workers=num_workers,
            pin_memory=pin_memory,
            prefetch_factor=4 if num_workers else None,
        )


class _BatchIndices:
    """A map-style dataset whose item i is (start + i, batch start + i) of one epoch."""

    def __init__(self, batches: Batches, epoch: int, start: int, seq_len: int) -> None:
        self.batches, self.epoch, self.start, self.seq_len = batches, epoch, start, seq_len

    def __len__(self) -> int:
        return max(0, self.batches.num_batches(self.epoch) - self.start)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        index = self.start + i
        return index, self.batches.batch(self.epoch, index, self.seq_len)


def window_start(ids: np.ndarray, width: int, rng: np.random.Generator) -> int:
    """Where a window of `width` tokens of `ids` starts: BOS (0) or a Bar token, drawn uniformly.

    Candidates are position 0 and every Bar after the header's that leaves `width` tokens to its
    right (a piece shorter than `width` starts at 0 without a draw).
    """
    if len(ids) <= width:
        return 0
    bars = np.flatnonzero(ids[2 : len(ids) - width + 1] == vocab.BAR) + 2
    return int(np.concatenate([[0], bars])[rng.integers(len(bars) + 1)])


def crop(ids: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """`ids` when it fits in `width`, else the window of `width` tokens at `window_start`."""
    start = window_start(ids, width, rng)
    return ids[start : start + width]
