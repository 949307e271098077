"""`TokenGraph`: FastDecoder's single-token step captured once as a CUDA graph and replayed per token.

At batch 1 a GPU finishes each of the step's ~150 small kernels faster than Python can launch the
next, so an eager step costs its launches, not its arithmetic. A graph is launched once per token.
It needs shapes and addresses that never change, so it owns its inputs: the new ids, the position,
the beat state and KV buffers of one batch size and capacity (`FastDecoder.token_step` is written
for exactly that). A cache whose buffers are not the graph's (after the prompt, a reorder or a
growth of the capacity) is copied in first; after a replay the returned cache is the graph's own.
The replay computes what the eager step computes (tests/sample/test_graphs.py, on a CUDA device).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aurl.models import BeatState

if TYPE_CHECKING:
    from aurl.sample.fastpath import FastCache, FastDecoder

GraphKey = tuple[int, int, tuple[torch.Size, ...]]  # batch, KV capacity, shapes of the latent projection


class TokenGraph:
    """The captured step for one `key`; `run` replays it for the next token of a cache.

    Args:
        decoder: the FastDecoder (on a CUDA device) whose `captured_step` is captured.
        key: batch size, KV capacity and the shapes of the latent projection (none without latent).
        projected: a cache's latent projection, of which the graph keeps its own copy; None without latent.
    """

    def __init__(
        self, decoder: FastDecoder, key: GraphKey, projected: tuple[Tensor, Tensor, Tensor] | None
    ) -> None:
        batch, capacity, _ = key
        device = decoder.device
        self.key = key
        self.ids = torch.full((batch, 1), 1, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.state = BeatState.start(batch, decoder.model.table.default_bar_steps, device).map(torch.clone)
        shape = (batch, decoder.heads, capacity, decoder.head_dim)
        self.keys = [torch.zeros(shape, device=device) for _ in decoder.blocks]
        self.values = [torch.zeros(shape, device=device) for _ in decoder.blocks]
        self.projected = (
            None if projected is None else (projected[0].clone(), projected[1].clone(), projected[2].clone())
        )
        self.angles = decoder._angles  # the replay reads this table: keep it alive if the decoder grows it

        def step() -> Tensor:
            logits, after = decoder.captured_step(
                self.ids, self.position, self.state, self.keys, self.values, self.projected
            )
            self.state.copy_(after)
            return logits

        with torch.cuda.device(device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # the first calls set up libraries; a capture must not
                for _ in range(2):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = step()

    def run(self, ids: Tensor, cache: FastCache, state: BeatState) -> tuple[Tensor, FastCache]:
        """Logits (B, 1, V) of the next ids (B, 1) after `cache` (whose beat state is `state`), and the
        cache one token longer."""
        if cache.keys[0] is not self.keys[0]:
            self._load(cache, state)
        self.ids.copy_(ids)
        self.position.fill_(cache.length)
        self.graph.replay()
        after = dataclasses.replace(
            cache, keys=self.keys, values=self.values, length=cache.length + 1, beat=self.state,
            projected=self.projected,
        )  # fmt: skip
        return self.logits.clone(), after

    def _load(self, cache: FastCache, state: BeatState) -> None:
        """Copy a cache that is not this graph's into the graph's buffers."""
        for mine, theirs in zip(self.keys + self.values, cache.keys + cache.values, strict=True):
            mine.copy_(theirs)
        self.state.copy_(state)
        if self.projected is not None and cache.projected is not None:
            for mine, theirs in zip(self.projected, cache.projected, strict=True):
                mine.copy_(theirs)
