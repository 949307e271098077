"""The training micro-batches in order, epoch after epoch, from a position that a checkpoint records.

`Batches` makes batch (epoch, index) at a sequence length as a pure function of the seed, so the
stream needs only (epoch, index) to continue exactly where a run stopped. It keeps one DataLoader
iterator alive while the epoch and the curriculum's sequence length stay the same, and starts a
new one when either changes. Every draw from the loader runs under `same_rng`: DataLoader start-up
takes a seed from torch's global generator, which must stay the training step's alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import torch

from aurl.train.device import same_rng

Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """What the stream needs of `aurl.data.Batches`."""

    def num_batches(self, epoch: int) -> int: ...

    def batch(self, epoch: int, index: int, seq_len: int) -> Batch: ...

    def loader(self, epoch: int, start: int, seq_len: int, *, num_workers: int, pin_memory: bool) -> Any: ...


class DataStream:
    """Micro-batches from (epoch, index) on, until `epochs` epochs are done.

    Args:
        source: the training `Batches` (this rank's shard).
        epochs: epochs in the run; the stream ends after the last batch of epoch `epochs - 1`.
        epoch, index: the first micro-batch to yield.
        workers: DataLoader worker processes (0: batches are built in this process).
        pin_memory: pin host memory (for CUDA).
    """

    def __init__(
        self, source: BatchSource, epochs: int, epoch: int, index: int, *, workers: int, pin_memory: bool
    ) -> None:
        self.source, self.epochs = source, epochs
        self.epoch, self.index = epoch, index
        self.workers, self.pin_memory = workers, pin_memory
        self.wait_s = 0.0  # seconds spent waiting for batches since the last `take`
        self.new_loader = False  # whether the last `take` started a loader (its start-up is in wait_s)
        self._iter: Iterator[tuple[int, Batch]] | None = None
        self._key: tuple[int, int, int] | None = None
        self._skip_empty_epochs()

    @property
    def done(self) -> bool:
        """True when every epoch has been read."""
        return self.epoch >= self.epochs

    def take(self, count: int, seq_len: int) -> list[Batch]:
        """Up to `count` micro-batches at `seq_len` (fewer only at the end of the last epoch)."""
        self.wait_s, self.new_loader = 0.0, False
        out: list[Batch] = []
        while len(out) < count and not self.done:
            out.append(self._next(seq_len))
            self.index += 1
            if self.index >= self.source.num_batches(self.epoch):
                self.epoch, self.index = self.epoch + 1, 0
                self._skip_empty_epochs()
        return out

    def close(self) -> None:
        """Stop the loader's workers."""
        self._iter, self._key = None, None

    def _skip_empty_epochs(self) -> None:
        while not self.done and self.source.num_batches(self.epoch) == 0:
            self.epoch += 1

    def _next(self, seq_len: int) -> Batch:
        key = (self.epoch, self.index, seq_len)
        if self._iter is None or self._key != key:
            self.close()
            self.new_loader = True
            with same_rng(cuda=False):
                loader = self.source.loader(
                    self.epoch, self.index, seq_len, num_workers=self.workers, pin_memory=self.pin_memory
                )
                self._iter = iter(loader)
        started = time.perf_counter()
        with same_rng(cuda=False):
            index, batch = next(self._iter)
        self.wait_s += time.perf_counter() - started
        assert index == self.index, f"loader gave batch {index}, expected {self.index}"
        self._key = (self.epoch, self.index + 1, seq_len)
        return batch
