"""The training stream: batches in order across epochs, and which takes started a new loader."""

from __future__ import annotations

from typing import Any

import torch

from aurl.train.stream import Batch, DataStream


class CountingSource:
    """Three batches per epoch; each batch names its (epoch, index, seq_len); loaders are counted."""

    def __init__(self) -> None:
        self.loaders = 0

    def num_batches(self, epoch: int) -> int:
        return 3

    def batch(self, epoch: int, index: int, seq_len: int) -> Batch:
        return {"ids": torch.tensor([epoch, index, seq_len])}

    def loader(self, epoch: int, start: int, seq_len: int, *, num_workers: int, pin_memory: bool) -> Any:
        self.loaders += 1
        return ((i, self.batch(epoch, i, seq_len)) for i in range(start, 3))


def test_a_take_says_whether_it_started_a_loader() -> None:
    source = CountingSource()
    stream = DataStream(source, epochs=2, epoch=0, index=0, workers=0, pin_memory=False)
    seen = []
    for seq_len in (8, 8, 8, 8, 16, 16):  # an epoch boundary after three, a new length after four
        (batch,) = stream.take(1, seq_len)
        seen.append((batch["ids"].tolist(), stream.new_loader))
    assert seen == [
        ([0, 0, 8], True), ([0, 1, 8], False), ([0, 2, 8], False),
        ([1, 0, 8], True), ([1, 1, 16], True), ([1, 2, 16], False),
    ]  # fmt: skip
    assert source.loaders == 3 and stream.done
