"""`FastDecoder`: the model's incremental step with a preallocated KV cache, for full attention.

`TorchDecoder` calls `MusicTransformerVAEGAN.step`, which is written for every attention kind and
grows its cache by concatenation; at batch 1 on a CPU its per-token cost is mostly the dispatch
of many small operations and the copies of a growing cache. This decoder computes the same thing
for full (causal) attention with fewer operations: keys and values go into buffers that double
when full, rotary angles come from a table, and the model's weights are read as they are (or, with
`dtype=torch.float16`, from half-precision copies: half the bytes per token, which is what bounds
a bigger model at batch 1). On a CUDA device every single-token step is a replay of one captured
CUDA graph (graphs.py); with `compile=True`, single-token steps run torch.compile's fusion of
the static step. tests/sample/test_fastpath.py checks that its logits equal the model's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from aurl.errors import AurlError
from aurl.models import BeatState, Latent, MusicTransformerVAEGAN
from aurl.models.positions import beat_features, rotate
from aurl.models.transformer import Block
from aurl.sample.decoder import _take, draw_prior
from aurl.sample.graphs import TokenGraph

_FIRST_CAPACITY = 256  # tokens a fresh cache holds before its first doubling
Attend = Callable[[int, Tensor, Tensor, Tensor], Tensor]  # (layer, q, k, v) -> attention output


@dataclass(frozen=True)
class FastCache:
    """Per-layer key and value buffers (B, H, capacity, dh), how many positions are filled, the beat
    state after them and the latent."""

    keys: list[Tensor]
    values: list[Tensor]
    length: int
    beat: BeatState | None
    z: Latent | None
    projected: tuple[Tensor, Tensor, Tensor] | None = None  # z in condition space (LatentCondition.project)


class FastDecoder:
    """`Decoder` (and `LatentDecoder` in vae modes) over a full-attention model, see the module docstring.

    Args:
        model: a model whose attention is "full"; put in eval mode.
        device: where it runs (default: where its parameters are).
        dtype: the matrices' precision: float32 (the model's own numbers) or float16 / bfloat16
            (about half the time per token for large models on a CPU; logits then differ slightly).
        compile: run single-token steps as torch.compile's fusion of `token_step` (on a CUDA device
            inside the graph): half the time per step on an H200, 10-20% more tokens/s on a CPU,
            after 20 to 60 seconds of compilation (a C++ compiler is needed on a CPU).

    Raises:
        ValueError: the model uses windowed attention (use TorchDecoder).
    """

    def __init__(
        self,
        model: MusicTransformerVAEGAN,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        if model.config.attention != "full":
            raise ValueError(f"FastDecoder needs full attention; this model uses {model.config.attention}")
        self.model = model.eval()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.vocab_size = model.config.vocab_size
        self.latent = model.config.mode != "transformer"
        self.dtype = dtype
        self.blocks = [b for b in model.decoder.blocks if isinstance(b, Block)]
        first = self.blocks[0].attn
        self.heads, self.head_dim = first.h, first.dh
        self._weights = {name: w.detach().to(dtype) for name, w in self._matrices().items()}
        with torch.inference_mode():
            self._angles = self._rotary(_FIRST_CAPACITY)
        tables = model.table.tensors()
        self._tables = {k: tables[k].to(self.device) for k in ("time_advance", "bar_start", "bar_steps")}
        self._graph: TokenGraph | None = None
        self._compiled = torch.compile(self.token_step) if compile else None

    def _matrices(self) -> dict[str, Tensor]:
        out = {"head": self.model.head.weight}
        for i, block in enumerate(self.blocks):
            out[f"{i}.qkv"], out[f"{i}.out"] = block.attn.qkv.weight, block.attn.out.weight
            out[f"{i}.fc1"], out[f"{i}.fc2"] = block.ffn.fc1.weight, block.ffn.fc2.weight
        return out

    def _rotary(self, capacity: int) -> tuple[Tensor, Tensor]:
        positions = torch.arange(capacity, device=self.device)
        return self.blocks[0].attn.rotary.angles(positions)

    def _linear(self, x: Tensor, name: str, bias: Tensor | None = None) -> Tensor:
        w = self._weights[name]
        if w.dtype == x.dtype:
            return F.linear(x, w, bias)
        out = F.linear(x.to(w.dtype), w).to(x.dtype)
        return out if bias is None else out + bias

    # --- the Decoder protocol ------------------------------------------------------------------------

    def start(self, batch: int, z: Latent | None = None) -> FastCache:
        if z is not None and z.piece.shape[0] != batch:
            raise ValueError(f"z has {z.piece.shape[0]} rows for a batch of {batch}")
        if self.latent and z is None:  # the prior mean, as the model's own step decodes without z
            z = Latent.prior(self.model.config, batch, device=self.device).map(torch.zeros_like)
        shape = (batch, self.heads, _FIRST_CAPACITY, self.head_dim)
        with torch.inference_mode():  # like every buffer a step makes: compiled code tells them apart
            keys = [torch.zeros(shape, device=self.device) for _ in self.blocks]
            values = [torch.zeros(shape, device=self.device) for _ in self.blocks]
            z = z.map(lambda t: t.to(self.device)) if z is not None else None
            projected = None
            if z is not None and self.model.condition is not None:
                projected = self.model.condition.project(z)
        return FastCache(keys, values, 0, None, z, projected)

    def step(self, ids: Tensor, cache: FastCache) -> tuple[Tensor, FastCache]:
        with torch.inference_mode():
            return self._step(ids.to(self.device), cache)

    def reorder(self, cache: FastCache, index: Tensor) -> FastCache:
        with torch.inference_mode():
            return _take(cache, index.to(self.device))  # every buffer, beat state and latent row

    def encode(self, ids: Tensor) -> Latent:
        with torch.inference_mode():
            mu, _, _ = self.model.encode(ids.to(self.device))
        return mu

    def prior(self, generators: list[torch.Generator], n_bars: int, n_tokens: int) -> Latent:
        return draw_prior(self.model.config, generators, n_bars, n_tokens, self.device)

    # --- the computation -----------------------------------------------------------------------------

    def _step(self, ids: Tensor, cache: FastCache) -> tuple[Tensor, FastCache]:
        b, t = ids.shape
        pos0, end = cache.length, cache.length + t
        cache = self._reserve(cache, end)
        state = cache.beat or BeatState.start(b, self.model.table.default_bar_steps, self.device)
        if t == 1 and self.device.type == "cuda":
            return self._graph_for(b, cache).run(ids, cache, state)
        if t == 1 and self._compiled is not None:
            # Compiled code is specialised to its inputs' strides and to whether they are inference
            # tensors: fresh copies of the ids (a view of a longer history) and of the beat state (of
            # the prompt's features) keep it from compiling again and again.
            ids, state = _fresh(ids), state.map(_fresh)
            position = torch.tensor([pos0], device=self.device)
            logits, beat = self._compiled_step(
                ids, position, state, cache.keys, cache.values, cache.projected
            )
            return logits, dataclasses.replace(cache, length=end, beat=beat)
        mask = None if t == 1 else _causal(pos0, end, self.device)

        def attend(i: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            keys, values = cache.keys[i], cache.values[i]
            keys[:, :, pos0:end], values[:, :, pos0:end] = k, v
            return F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=mask)

        positions = torch.arange(pos0, end, device=self.device)
        logits, beat = self._forward(ids, positions, state, cache.projected, attend)
        return logits, dataclasses.replace(cache, length=end, beat=beat)

    @property
    def captured_step(self) -> Callable[..., tuple[Tensor, BeatState]]:
        """What a CUDA graph captures: `token_step`'s own kernels, or torch.compile's fusion of them."""
        return self.token_step if self._compiled is None else self._compiled_step

    def _compiled_step(self, *args: Any) -> tuple[Tensor, BeatState]:
        """`token_step` through torch.compile; a compilation that fails (no C++ compiler on a CPU, say)
        is one AurlError line, not torch's pages."""
        from torch._dynamo.exc import BackendCompilerFailed  # loads torch's compiler: only when used

        assert self._compiled is not None
        try:
            return self._compiled(*args)
        except BackendCompilerFailed as error:
            first = str(error).strip().splitlines()[0]
            raise AurlError(
                f"--compile: torch.compile failed on this machine ({first}); sample without it"
            ) from None

    def token_step(
        self, ids: Tensor, position: Tensor, state: BeatState, keys: list[Tensor], values: list[Tensor],
        projected: tuple[Tensor, Tensor, Tensor] | None,
    ) -> tuple[Tensor, BeatState]:  # fmt: skip
        """One new token per row (ids (B, 1)) at `position` ((1,) int64, on the device), with shapes
        that never change: keys and values are written in place and attention reads every slot of
        the buffers, those past `position` masked. The step a CUDA graph captures (graphs.py)."""
        hidden = torch.arange(keys[0].shape[2], device=self.device) > position  # (capacity,)
        scale = self.head_dim**-0.5

        def attend(i: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            keys[i].index_copy_(2, position, k)
            values[i].index_copy_(2, position, v)
            # Two matrix products, not scaled_dot_product_attention: for one query its GPU kernels
            # give each head one thread block that walks every key, so a step got slower with the
            # capacity (12.7 ms at 16,384 on an H200); products spread the keys over the chip.
            scores = (q @ keys[i].transpose(-1, -2) * scale).masked_fill(hidden, float("-inf"))
            return scores.softmax(-1) @ values[i]

        return self._forward(ids, position, state, projected, attend)

    def _forward(
        self, ids: Tensor, positions: Tensor, state: BeatState,
        projected: tuple[Tensor, Tensor, Tensor] | None, attend: Attend,
    ) -> tuple[Tensor, BeatState]:  # fmt: skip
        """Logits (B, T, V) of new ids at `positions` (T,) after `state`; `attend(layer, q, k, v)`
        stores the new keys and values and attends over the cache."""
        model, (b, t) = self.model, ids.shape
        feats = beat_features(ids, self._tables, state)
        x = model.embed(ids) + model.beat(feats)
        cond = None
        if projected is not None and model.condition is not None:
            cond = model.condition.combine(projected, feats.bar, positions)
        cos, sin = self._angles[0][positions], self._angles[1][positions]
        for i, block in enumerate(self.blocks):
            if cond is not None and block.skip is not None:
                x = x + block.skip(cond)
            n = block.norm1
            h = F.layer_norm(x, (x.shape[-1],), n.weight, n.bias, n.eps)
            qkv = self._linear(h, f"{i}.qkv").view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            qk = rotate(qkv[:2], cos, sin)  # queries and keys in one pass: (2, B, H, T, dh)
            out = attend(i, qk[0], qk[1], qkv[2])
            x = x + self._linear(out.transpose(1, 2).reshape(b, t, -1), f"{i}.out")
            n = block.norm2
            h = F.layer_norm(x, (x.shape[-1],), n.weight, n.bias, n.eps)
            h = F.gelu(self._linear(h, f"{i}.fc1", block.ffn.fc1.bias), approximate="tanh")
            x = x + self._linear(h, f"{i}.fc2", block.ffn.fc2.bias)
        norm = model.decoder.norm
        x = F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)
        return self._linear(x, "head"), feats.last()

    def _graph_for(self, batch: int, cache: FastCache) -> TokenGraph:
        """The captured single-token step for this batch, capacity and conditioning (one kept at a time)."""
        shapes = tuple(t.shape for t in cache.projected) if cache.projected is not None else ()
        key = (batch, cache.keys[0].shape[2], shapes)
        if self._graph is None or self._graph.key != key:
            self._graph = None  # its buffers go before the next graph takes its own
            self._graph = TokenGraph(self, key, cache.projected)
        return self._graph

    def _reserve(self, cache: FastCache, end: int) -> FastCache:
        """The cache with buffers (and the rotary table) long enough for `end` positions."""
        capacity = cache.keys[0].shape[2]
        if end <= capacity:
            return cache
        grown = 2 ** math.ceil(math.log2(end))
        if self._angles[0].shape[0] < grown:
            self._angles = self._rotary(grown)

        def grow(buffer: Tensor) -> Tensor:
            return F.pad(buffer, (0, 0, 0, grown - capacity))

        return dataclasses.replace(
            cache, keys=[grow(k) for k in cache.keys], values=[grow(v) for v in cache.values]
        )


def _fresh(tensor: Tensor) -> Tensor:
    """A contiguous copy, made in inference mode like every buffer the step reads."""
    return tensor.clone(memory_format=torch.contiguous_format)


def _causal(pos0: int, end: int, device: torch.device) -> Tensor:
    """(T, end) bool: new query i (at position pos0 + i) sees keys 0 .. pos0 + i."""
    return torch.arange(end, device=device)[None, :] <= torch.arange(pos0, end, device=device)[:, None]
