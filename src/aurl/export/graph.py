"""The decoder's incremental step as a traceable module: every piece of the KV cache is a tensor.

`StepGraph` wraps a trained `MusicTransformerVAEGAN` and computes what `model.step` computes, with
the cache spelled out as inputs and outputs (the layout of `StepLayout`) so that an ONNX runtime can
sample token by token:

    inputs   ids (B, T) int64, beat (B, 4) int64, past_length (1,) int64, [z_piece (B, Zg),
             z_bar (B, NB, Zb), z_fine (B, NW, Zf) in vae modes], past_key.i / past_value.i
             (B, H, C, dh) per layer: buffers whose first P = past_length slots hold the cache,
             [past_summary_key.i / past_summary_value.i (B, H, S, dh): hierarchical attention's
             summaries of the S = P // local finished blocks]
    outputs  logits (B, T, V), beat_out (B, 4), new_key.i / new_value.i (B, H, T, dh),
             [new_summary_key.i / new_summary_value.i (B, H, N, dh): the blocks these T tokens
             finish, N = (P + T) // local - S]

The runtime keeps the buffers (capacity C >= P, grown in steps) and writes each call's new keys
and values into slots P .. P + T itself, so a step copies no cache (when the step returned the
grown cache, every token copied all of it: docs/export.md has the cost); it appends the new
summaries to the summary inputs the same way. Full attention reads the buffers as they are, slots
from P on masked; sliding attention only the slots from its window start on. Hierarchical
attention keeps its keys unrotated: a call reads only the last `local` slots (its local window,
rotated at their positions, and the rest of the block being filled) and the summaries, so its
cost does not grow with the piece but for one summary per block.
`beat` holds the `BeatState` (time, bar, bar_time, bar_len in grid steps). The step reuses the
model's own modules (embeddings, projections, rotary angles, visibility rule, feed-forward, head);
only the cache bookkeeping and a cummax-free beat computation (ONNX has no cumulative maximum) are
written here, and `verify` checks the result against `model.step`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    def summary_past_names(self) -> list[str]:
        """Hierarchical attention's summary inputs, layer 0's key first; none for the other kinds."""
        return [f"past_summary_{n.removeprefix('past_')}" for n in self.past_names if self.summarised]

    @property
    def summary_new_names(self) -> list[str]:
        return [f"new_summary_{n.removeprefix('new_')}" for n in self.new_names if self.summarised]

    @property
    def summarised(self) -> bool:
        """Does the step carry block summaries (hierarchical attention)?"""
        return self.attention == "hierarchical"

    @property
    def input_names(self) -> list[str]:
        z = Z_INPUTS if self.latent else ()
        return ["ids", "beat", "past_length", *z, *self.past_names, *self.summary_past_names]

    @property
    def output_names(self) -> list[str]:
        return ["logits", "beat_out", *self.new_names, *self.summary_new_names]

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
        axes.update({name: {0: "batch", 2: "summaries"} for name in self.summary_past_names})
        axes.update({name: {0: "batch", 2: "new_summaries"} for name in self.summary_new_names})
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
            unrotated and its block summaries as inputs of their own (`_hierarchical`).
    """

    def __init__(self, model: MusicTransformerVAEGAN) -> None:
        super().__init__()
        self.model = model
        self.layout = StepLayout.of(model)

    def forward(self, ids: Tensor, beat: Tensor, past_length: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """Logits (B, T, V), the next beat row (B, 4), the new keys and values per layer and, for
        hierarchical attention, the summaries of the blocks these tokens finish per layer."""
        m, lay = self.model, self.layout
        n_z, n_past = (3 if lay.latent else 0), len(lay.past_names)
        z_parts, past, summaries = rest[:n_z], rest[n_z : n_z + n_past], rest[n_z + n_past :]
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
        # What every layer shares is computed once: onnxruntime spends a fraction of a microsecond
        # per node whatever its size, which over hundreds of nodes adds up at batch 1
        # (docs/export.md). Every reshape takes its batch and length from `ids`, so all of them
        # share one shape node.
        step = _Shared(ids.shape[0], ids.shape[1], positions, *blocks[0].attn.rotary.angles(positions))
        g = blocks[0].attn.geometry
        if g.kind == "sliding":
            # The new tokens' windows start no earlier than the first one's: only those slots are
            # read, so the time per token stays flat along the piece.
            step.slots = torch.arange(g.lo(past_length[0]), past_length[0], device=ids.device)  # type: ignore[call-overload]
        if not lay.summarised:
            every = torch.arange(past[0].shape[2], device=ids.device)
            step.mask = _buffered_mask(g, positions, every if step.slots is None else step.slots, past_length)
        new: list[Tensor] = []
        new_summaries: list[Tensor] = []
        for i, block in enumerate(blocks):
            pair = slice(2 * i, 2 * i + 2)
            x, *out = _block_step(block, x, cond, past[pair], summaries[pair], step, past_length)
            new += out[:2]
            new_summaries += out[2:]
        logits = m.head(m.decoder.norm(x))
        last = feats.last()
        beat_out = torch.stack([last.time, last.bar, last.bar_time, last.bar_len], dim=1)
        return (logits, beat_out, *new, *new_summaries)


@dataclass
class _Shared:
    """What every layer of one step reads: batch and length (traced from `ids`), the new tokens'
    positions (T,), their rotary angles cos, sin (T, dh), for sliding attention the buffer slots
    a call reads (full attention reads them all) and, for full and sliding attention, the visibility
    mask (T, slots read + T) over those slots and the new keys."""

    batch: int
    length: int
    positions: Tensor
    cos: Tensor
    sin: Tensor
    mask: Tensor | None = None
    slots: Tensor | None = None


def _rows(level: Tensor) -> Tensor:
    """(B, N) all-True mask of a latent level (B, N, Z); the condition reads no masks."""
    return torch.ones(level.shape[:2], dtype=torch.bool, device=level.device)


def _block_step(
    block: Block, x: Tensor, cond: Tensor | None, past: Sequence[Tensor], summaries: Sequence[Tensor],
    step: _Shared, past_length: Tensor,
) -> tuple[Tensor, ...]:  # fmt: skip
    """One decoder layer over new tokens x (B, T, D) after the cache: key and value buffers
    (B, H, C, dh) whose first `past_length` slots are filled, and (hierarchical attention) the
    summary keys and values of the finished blocks. Returns x, the keys (rotated, or unrotated for
    hierarchical attention) and values of the new tokens, (B, H, T, dh) each, and (hierarchical)
    the summaries of the blocks they finish.

    The projection is `Attention._project`'s arithmetic laid out for the graph: queries and keys
    rotate as one tensor (one set of rotary nodes per layer, not two)."""
    x = block._with_cond(x, cond)
    attn, b, t = block.attn, step.batch, step.length
    qkv = attn.qkv(block.norm1(x)).view(b, t, 3, attn.h, attn.dh).permute(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
    qk = rotate(qkv[:2], step.cos, step.sin)
    q, k, v = qk[0], qk[1], qkv[2]
    new: tuple[Tensor, ...]
    if step.mask is None:
        out, finished = _hierarchical(attn, q, qkv[1], v, past, summaries, step.positions, past_length)
        new = (qkv[1], v, *finished)
    else:
        past_k, past_v = past if step.slots is None else (p.index_select(2, step.slots) for p in past)
        out, new = _buffered_attention(attn, q, k, v, past_k, past_v, step.mask), (k, v)
    x = x + attn.out(out.transpose(1, 2).reshape(b, t, attn.h * attn.dh))
    return (x + block.ffn(block.norm2(x)), *new)


def _buffered_mask(g: Geometry, positions: Tensor, slots: Tensor, past_length: Tensor) -> Tensor:
    """(T, S + T) bool: which of the S buffer `slots` read (the first `past_length` slots are
    filled) and of the T new tokens each new token at `positions` sees, by the layer's rule (full
    or sliding)."""
    seen = g.local_allowed(positions, slots) & (slots < past_length)[None]  # (T, S)
    return torch.cat([seen, g.local_allowed(positions, positions)], dim=1)


def _buffered_attention(
    attn: Attention, q: Tensor, k: Tensor, v: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor
) -> Tensor:
    """Full or sliding attention of queries q (B, H, T, dh) over the S buffer slots read (past_k,
    past_v) and the new keys k and values v that `mask` (T, S + T) lets them see, without joining
    the two sets: one softmax over both sets of scores."""
    n_slots = past_k.shape[2]
    scores = torch.cat([q @ past_k.transpose(-1, -2), q @ k.transpose(-1, -2)], dim=-1) * attn.dh**-0.5
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return weights[..., :n_slots] @ past_v + weights[..., n_slots:] @ v


def _hierarchical(
    attn: Attention, q: Tensor, k_raw: Tensor, v: Tensor, past: Sequence[Tensor], summaries: Sequence[Tensor],
    positions: Tensor, past_length: Tensor,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:  # fmt: skip
    """Hierarchical attention of queries q (B, H, T, dh) at `positions` over their local windows and
    the block summaries, and the summaries of the blocks the new tokens finish.

    A query sees the `local` latest keys (itself included) and the summaries of the `n_global`
    blocks before its own. The window of the new tokens starts at W = max(0, P + 1 - local); the
    call reads buffer slots W .. P - 1 (unrotated keys, rotated here at their positions) beside
    the new keys k_raw (unrotated) and values v. Those slots also hold every key of the block being
    filled (it starts at S * local >= W), so a block the new tokens finish is summarised here with
    the arithmetic of the model's cache: mean key rotated to the block centre, mean value.

    Returns:
        The attention output (B, H, T, dh) and the finished blocks' summary keys and values, each
        (B, H, N, dh).
    """
    g, (b, h, t, dh) = attn.geometry, q.shape
    past_k, past_v = past
    summary_k, summary_v = summaries
    start = torch.clamp(past_length[0] + 1 - g.local, min=0)
    slots = torch.arange(start, past_length[0], device=q.device)  # type: ignore[call-overload]
    keys_raw = torch.cat([past_k.index_select(2, slots), k_raw], 2)  # positions W .. P + T - 1
    values = torch.cat([past_v.index_select(2, slots), v], 2)
    key_positions = torch.arange(start, past_length[0] + t, device=q.device)  # type: ignore[call-overload]
    # Blocks S .. S + N - 1 end within this call; their keys are slots S * local - W on of the window.
    first = torch.div(past_length[0], g.local, rounding_mode="floor")
    finished_end = torch.div(past_length[0] + t, g.local, rounding_mode="floor")
    in_window = torch.arange(first * g.local - start, finished_end * g.local - start, device=q.device)  # type: ignore[call-overload]
    n = in_window.shape[0] // g.local
    block_keys = keys_raw.index_select(2, in_window).reshape(b, h, n, g.local, dh).mean(3)
    block_values = values.index_select(2, in_window).reshape(b, h, n, g.local, dh).mean(3)
    centres = torch.arange(first, finished_end, device=q.device) + 0.5  # type: ignore[call-overload]
    centre_cos, centre_sin = attn.rotary.angles(centres * g.local - 0.5)
    new_k, new_v = rotate(block_keys, centre_cos, centre_sin), block_values
    all_k, all_v = torch.cat([summary_k, new_k], 2), torch.cat([summary_v, new_v], 2)
    blocks = torch.arange(all_k.shape[2], device=q.device)
    own_block = torch.div(positions, g.local, rounding_mode="floor")[:, None]  # (T, 1)
    summary_mask = (blocks[None] <= own_block - 1) & (blocks[None] >= own_block - g.n_global)
    mask = torch.cat([g.local_allowed(positions, key_positions), summary_mask], dim=1)
    cos, sin = attn.rotary.angles(key_positions)
    keys = torch.cat([rotate(keys_raw, cos, sin), all_k], dim=2)
    out = F.scaled_dot_product_attention(q, keys, torch.cat([values, all_v], 2), attn_mask=mask)
    return out, (new_k, new_v)


def example_inputs(
    layout: StepLayout, batch: int = 2, new: int = 3, past: int = 2, local: int = 0
) -> tuple[Tensor, ...]:
    """Inputs of the given sizes to trace the step with (sizes > 1 keep every axis dynamic; the
    buffers hold 3 slots more than are filled). With hierarchical attention (`local`, its block
    length) the past holds two finished blocks and one token and the new tokens finish two more."""
    if layout.summarised:
        past, new = 2 * local + 1, 2 * local + 1
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, layout.vocab_size, (batch, new), generator=generator)
    beat = torch.tensor([layout.start_beat] * batch, dtype=torch.long)
    z: list[Tensor] = []
    if layout.latent:
        zg, zb, zf = layout.latent
        z = [torch.randn(batch, zg), torch.randn(batch, 2, zb), torch.randn(batch, 2, zf)]
    kv = [torch.randn(batch, layout.heads, past + 3, layout.head_dim) for _ in layout.past_names]
    shape = (batch, layout.heads, past // max(local, 1), layout.head_dim)  # the finished blocks
    summaries = [torch.randn(shape) for _ in layout.summary_past_names]
    return (ids, beat, torch.tensor([past]), *z, *kv, *summaries)
