"""The decoder's incremental step as a traceable module: every piece of the KV cache is a tensor.

`StepGraph` wraps a trained `MusicTransformerVAEGAN` and computes what `model.step` computes, with
the cache spelled out as inputs and outputs (the layout of `StepLayout`) so that an ONNX runtime can
sample token by token:

    inputs   ids (B, T) int64, beat (B, 4) int64, past_length (1,) int64, [z_piece (B, Zg),
             z_bar (B, NB, Zb), z_fine (B, NW, Zf) in vae modes], past_key.i / past_value.i
             (B, H, C, dh) per layer: buffers whose first P = past_length slots hold the cache
    outputs  logits (B, T, V), beat_out (B, 4), new_key.i / new_value.i (B, H, T, dh)

The runtime keeps the buffers (capacity C >= P, grown in steps) and writes each call's new keys
and values into slots P .. P + T itself, so a step copies no cache (when the step returned the
grown cache, every token copied all of it: docs/export.md has the cost). Full and sliding
attention read the buffers as they are, slots from P on masked; hierarchical attention, which
recomputes its block summaries from the unrotated keys anyway, gathers the first P. `beat` holds
the `BeatState` (time, bar, bar_time, bar_len in grid steps). The step reuses the model's own
modules (embeddings, projections, rotary angles, visibility rule, feed-forward, head); only the
cache bookkeeping and a cummax-free beat computation (ONNX has no cumulative maximum) are written
here, and `verify` checks the result against `model.step`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aurl.models import MusicTransformerVAEGAN
from aurl.models.attention import Attention
from aurl.models.geometry import Geometry
from aurl.models.positions import BeatFeatures, BeatState, rotate
from aurl.models.transformer import Block
from aurl.models.vae import Latent

BEAT_FIELDS = ("time", "bar", "bar_time", "bar_len")
Z_INPUTS = ("z_piece", "z_bar", "z_fine")


@dataclass(frozen=True)
class StepLayout:
    """Names and sizes of the exported step's inputs and outputs, stored as JSON in the file.

    Attributes:
        layers: decoder layers L (one past key and value input each).
        heads, head_dim: H and dh of the cached keys and values.
        vocab_size: V, the last axis of the logits.
        attention: the attention kind; with "hierarchical" the cached keys are kept unrotated
            (a runtime stores the new keys as they come either way).
        latent: (Zg, Zb, Zf) in vae modes, None in transformer mode (no z inputs).
        start_beat: the `beat` row before the first token (time, bar, bar_time, bar_len).
    """

    layers: int
    heads: int
    head_dim: int
    vocab_size: int
    attention: str
    latent: tuple[int, int, int] | None
    start_beat: tuple[int, int, int, int]

    @classmethod
    def of(cls, model: MusicTransformerVAEGAN) -> StepLayout:
        """The layout of a model's step."""
        c = model.config
        latent = (c.latent_global, c.latent_bar, c.latent_fine) if model.latent else None
        return cls(
            c.decoder_layers, c.n_heads, c.d_model // c.n_heads, c.vocab_size, c.attention, latent,
            (0, 0, 0, model.table.default_bar_steps),
        )  # fmt: skip

    @property
    def past_names(self) -> list[str]:
        return [f"past_{kind}.{i}" for i in range(self.layers) for kind in ("key", "value")]

    @property
    def new_names(self) -> list[str]:
        return [f"new_{kind}.{i}" for i in range(self.layers) for kind in ("key", "value")]

    @property
    def input_names(self) -> list[str]:
        return ["ids", "beat", "past_length", *(Z_INPUTS if self.latent else ()), *self.past_names]

    @property
    def output_names(self) -> list[str]:
        return ["logits", "beat_out", *self.new_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Batch, sequence, capacity, bars and windows axes of every input and output."""
        axes: dict[str, dict[int, str]] = {
            "ids": {0: "batch", 1: "sequence"},
            "beat": {0: "batch"},
            "logits": {0: "batch", 1: "sequence"},
            "beat_out": {0: "batch"},
            "z_piece": {0: "batch"},
            "z_bar": {0: "batch", 1: "bars"},
            "z_fine": {0: "batch", 1: "windows"},
        }
        axes.update({name: {0: "batch", 2: "capacity"} for name in self.past_names})
        axes.update({name: {0: "batch", 2: "sequence"} for name in self.new_names})
        return {name: value for name, value in axes.items() if name in self.input_names + self.output_names}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StepLayout:
        raw = json.loads(text)
        latent = tuple(raw["latent"]) if raw["latent"] is not None else None
        return cls(
            int(raw["layers"]), int(raw["heads"]), int(raw["head_dim"]), int(raw["vocab_size"]),
            str(raw["attention"]), latent, tuple(raw["start_beat"]),  # type: ignore[arg-type]
        )  # fmt: skip


def last_where(flag: Tensor, value: Tensor, before: Tensor) -> Tensor:
    """value at the latest position s <= t where flag is True, else `before`; (B, T) out.

    A scatter-gather over segment numbers instead of `cummax`, which ONNX lacks: the k-th flagged
    position writes its value to slot k, every position reads the slot of its segment.

    Args:
        flag: (B, T) bool.
        value: (B, T) int64.
        before: (B,) int64, what positions before the first flag read.
    """
    b, t = flag.shape
    segment = torch.cumsum(flag.long(), dim=1)  # (B, T): flags seen so far
    # Unflagged positions all write to one spare slot past the end, which nobody reads.
    slot = torch.where(flag, segment, torch.full_like(segment, t + 1))
    slots = torch.zeros(b, t + 2, dtype=value.dtype, device=value.device).scatter(1, slot, value)
    table = torch.cat([before[:, None], slots[:, 1:]], dim=1)
    return table.gather(1, segment)


def beat_features(ids: Tensor, tables: dict[str, Tensor], state: BeatState) -> BeatFeatures:
    """`aurl.models.positions.beat_features` without cummax (same results; tested against it).

    The model's version takes the running maximum of bar-line times; as time never decreases, that
    is the time of the latest bar line, which `last_where` finds.
    """
    time = state.time[:, None] + torch.cumsum(tables["time_advance"][ids], dim=1)  # (B, T)
    is_bar = tables["bar_start"][ids]
    bar = state.bar[:, None] + torch.cumsum(is_bar.long(), dim=1)
    bar_time = last_where(is_bar, time, state.bar_time)
    steps = tables["bar_steps"][ids]
    bar_len = last_where(steps > 0, steps, state.bar_len)
    return BeatFeatures(time, bar, time - bar_time, bar_len)


class StepGraph(nn.Module):
    """`model.step` with a tensor-only cache (see the module docstring for the layout).

    Args:
        model: the model to export, in eval mode. Every attention kind works on an untrimmed cache:
            the sliding window becomes a mask over it, and hierarchical attention keeps its keys
            unrotated and recomputes the block summaries from them (`_hierarchical`).
    """

    def __init__(self, model: MusicTransformerVAEGAN) -> None:
        super().__init__()
        self.model = model
        self.layout = StepLayout.of(model)

    def forward(self, ids: Tensor, beat: Tensor, past_length: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """Logits (B, T, V), the next beat row (B, 4) and the new keys and values per layer."""
        m = self.model
        n_z = 3 if self.layout.latent else 0
        z_parts, past = rest[:n_z], rest[n_z:]
        state = BeatState(beat[:, 0], beat[:, 1], beat[:, 2], beat[:, 3])
        feats = beat_features(ids, m._tables(), state)
        positions = torch.arange(ids.shape[1], device=ids.device) + past_length
        x = m.embed(ids) + m.beat(feats)
        cond = None
        if m.condition is not None:
            piece, bars, fine = z_parts
            z = Latent(piece, bars, fine, _rows(bars), _rows(fine))
            cond = m.condition(z, feats.bar, positions)
        blocks = [block for block in m.decoder.blocks if isinstance(block, Block)]
        # What every layer shares is computed once: onnxruntime spends about a microsecond per node
        # whatever its size, which at batch 1 costs more than the arithmetic (docs/export.md).
        # Every reshape takes its batch and length from `ids`, so all of them share one shape node.
        step = _Shared(ids.shape[0], ids.shape[1], positions, *blocks[0].attn.rotary.angles(positions))
        if blocks[0].attn.geometry.kind != "hierarchical":
            step.mask = _buffered_mask(blocks[0].attn.geometry, positions, past[0].shape[2], past_length)
        new: list[Tensor] = []
        for i, block in enumerate(blocks):
            x, k, v = _block_step(block, x, cond, past[2 * i], past[2 * i + 1], step, past_length)
            new += [k, v]
        logits = m.head(m.decoder.norm(x))
        last = feats.last()
        beat_out = torch.stack([last.time, last.bar, last.bar_time, last.bar_len], dim=1)
        return (logits, beat_out, *new)


@dataclass
class _Shared:
    """What every layer of one step reads: batch and length (traced from `ids`), the new tokens'
    positions (T,), their rotary angles cos, sin (T, dh) and, for full and sliding attention, the
    (T, C + T) visibility mask over the cache buffer's slots and the new keys."""

    batch: int
    length: int
    positions: Tensor
    cos: Tensor
    sin: Tensor
    mask: Tensor | None = None


def _rows(level: Tensor) -> Tensor:
    """(B, N) all-True mask of a latent level (B, N, Z); the condition reads no masks."""
    return torch.ones(level.shape[:2], dtype=torch.bool, device=level.device)


def _block_step(
    block: Block, x: Tensor, cond: Tensor | None, past_k: Tensor, past_v: Tensor, step: _Shared,
    past_length: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One decoder layer over new tokens x (B, T, D) after the cache: buffers (B, H, C, dh) whose
    first `past_length` slots are filled. Returns x and the keys (rotated, or unrotated for
    hierarchical attention) and values of the new tokens, (B, H, T, dh) each.

    The projection is `Attention._project`'s arithmetic laid out for the graph: queries and keys
    rotate as one tensor (one set of rotary nodes per layer, not two)."""
    x = block._with_cond(x, cond)
    attn, b, t = block.attn, step.batch, step.length
    qkv = attn.qkv(block.norm1(x)).view(b, t, 3, attn.h, attn.dh).permute(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
    qk = rotate(qkv[:2], step.cos, step.sin)
    q, k, v = qk[0], qk[1], qkv[2]
    if step.mask is None:  # hierarchical
        # A tensor end (not an int) keeps the length an input of the traced graph.
        filled = torch.arange(past_length[0], device=x.device)  # type: ignore[call-overload]
        keys_raw = torch.cat([past_k.index_select(2, filled), qkv[1]], 2)
        values = torch.cat([past_v.index_select(2, filled), v], 2)
        out, k = _hierarchical(attn, q, keys_raw, values, step.positions), qkv[1]
    else:
        out = _buffered_attention(attn, q, k, v, past_k, past_v, step.mask)
    x = x + attn.out(out.transpose(1, 2).reshape(b, t, attn.h * attn.dh))
    return x + block.ffn(block.norm2(x)), k, v


def _buffered_mask(g: Geometry, positions: Tensor, capacity: int, past_length: Tensor) -> Tensor:
    """(T, C + T) bool: which of the C buffer slots (the first `past_length` filled) and of the T
    new tokens each new token at `positions` sees, by the layer's rule (full or sliding)."""
    slots = torch.arange(capacity, device=positions.device)
    seen = g.local_allowed(positions, slots) & (slots < past_length)[None]  # (T, C)
    return torch.cat([seen, g.local_allowed(positions, positions)], dim=1)


def _buffered_attention(
    attn: Attention, q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor
) -> Tensor:
    """Full or sliding attention of queries q (B, H, T, dh) over the buffer slots and the new keys
    k and values v that `mask` (T, C + T) lets them see, without joining the two sets: one softmax
    over both sets of scores."""
    capacity = past_k.shape[2]
    scores = torch.cat([q @ past_k.transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1) * attn.dh**-0.5
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return weights[..., :capacity] @ past_v + weights[..., capacity:] @ v


def _hierarchical(attn: Attention, q: Tensor, keys_raw: Tensor, values: Tensor, positions: Tensor) -> Tensor:
    """Hierarchical attention of queries q (B, H, T, dh) over every key so far and their summaries.

    Keys come before rotation (B, H, P + T, dh): each call rotates them at their
    positions and recomputes every finished block's summary (mean key, rotated to the block
    centre, and mean value), the same arithmetic as the model's cache, which grows them one block at
    a time. A query sees its local window and the summaries of the `n_global` blocks before its own.
    """
    g, (b, h, n, dh) = attn.geometry, keys_raw.shape
    key_positions = torch.arange(n, device=q.device)
    cos, sin = attn.rotary.angles(key_positions)
    n_blocks = n // g.local
    done = n_blocks * g.local
    block_keys = keys_raw[:, :, :done].reshape(b, h, n_blocks, g.local, dh).mean(3)
    block_values = values[:, :, :done].reshape(b, h, n_blocks, g.local, dh).mean(3)
    blocks = torch.arange(n_blocks, device=q.device)
    centre_cos, centre_sin = attn.rotary.angles((blocks + 0.5) * g.local - 0.5)
    own_block = torch.div(positions, g.local, rounding_mode="floor")[:, None]  # (T, 1)
    summary_mask = (blocks[None] <= own_block - 1) & (blocks[None] >= own_block - g.n_global)
    mask = torch.cat([g.local_allowed(positions, key_positions), summary_mask], dim=1)
    all_keys = torch.cat([rotate(keys_raw, cos, sin), rotate(block_keys, centre_cos, centre_sin)], dim=2)
    return F.scaled_dot_product_attention(q, all_keys, torch.cat([values, block_values], 2), attn_mask=mask)


def example_inputs(layout: StepLayout, batch: int = 2, new: int = 3, past: int = 2) -> tuple[Tensor, ...]:
    """Inputs of the given sizes to trace the step with (sizes > 1 keep every axis dynamic; the
    buffers hold 3 slots more than are filled)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, layout.vocab_size, (batch, new), generator=generator)
    beat = torch.tensor([layout.start_beat] * batch, dtype=torch.long)
    z: list[Tensor] = []
    if layout.latent:
        zg, zb, zf = layout.latent
        z = [torch.randn(batch, zg), torch.randn(batch, 2, zb), torch.randn(batch, 2, zf)]
    kv = [torch.randn(batch, layout.heads, past + 3, layout.head_dim) for _ in layout.past_names]
    return (ids, beat, torch.tensor([past]), *z, *kv)
