"""Multi-head self-attention of three kinds (full, sliding, hierarchical) with a KV cache.

All kinds call `F.scaled_dot_product_attention`, so fused kernels run where PyTorch has them. Full
attention hands the whole sequence to it; sliding and hierarchical cut the queries into blocks and
give each block only the keys its `Geometry` allows (memory linear in length). Incremental
decoding keeps a `LayerCache` of the keys still visible, bounded for the two windowed kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aurl.models.geometry import Geometry
from aurl.models.positions import Rotary, rotate


@dataclass(frozen=True)
class LayerCache:
    """Keys and values one attention layer still needs; key tensors are (B, H, n, dh).

    Attributes:
        k, v: rotated keys and values of positions `start ..`.
        start: absolute position of the first cached key.
        sk, sv: rotated summary keys and values of blocks `s_start ..` (hierarchical only).
        ku, vu: unrotated keys and values of the current, unfinished summary block.
    """

    k: Tensor
    v: Tensor
    start: int
    sk: Tensor | None = None
    sv: Tensor | None = None
    s_start: int = 0
    ku: Tensor | None = None
    vu: Tensor | None = None


class Attention(nn.Module):
    """Self-attention over (B, T, D) with rotary positions; the visibility rule comes from `geometry`."""

    def __init__(self, d_model: int, n_heads: int, geometry: Geometry, dropout: float, rope_base: float):
        super().__init__()
        self.h, self.dh, self.geometry, self.dropout = n_heads, d_model // n_heads, geometry, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.rotary = Rotary(self.dh, rope_base)

    def _project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """q, k (rotated), v and k unrotated, each (B, T, H, dh), for tokens at `positions` (T,)."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, self.dh).unbind(2)
        cos, sin = self.rotary.angles(positions)
        return rotate(q, cos[:, None], sin[:, None]), rotate(k, cos[:, None], sin[:, None]), v, k

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        """Attend over a whole sequence.

        Args:
            x: (B, T, D) inputs.
            key_valid: (B, T) bool, False at padding; used by the bidirectional encoder (a causal
                query never reaches right padding, so the decoder passes None).
        """
        out, _ = self._attend_all(x, key_valid)
        return self.out(out)

    def step(self, x: Tensor, pos0: int, cache: LayerCache | None) -> tuple[Tensor, LayerCache]:
        """Causal attention of new tokens at positions pos0 .. after the cached ones; (B, Tn, D) out."""
        if cache is None:
            out, new = self._attend_all(x, None, want_cache=True)
            assert new is not None
        else:
            out, new = self._attend_cached(x, pos0, cache)
        return self.out(out), new

    # --- whole sequences ---------------------------------------------------------------------------

    def _attend_all(
        self, x: Tensor, key_valid: Tensor | None, want_cache: bool = False
    ) -> tuple[Tensor, LayerCache | None]:
        b, t, d = x.shape
        q, k, v, ku = self._project(x, torch.arange(t, device=x.device))
        p = self.dropout if self.training else 0.0
        g = self.geometry
        summaries = None
        if g.kind == "hierarchical" and (t > g.block or want_cache):
            summaries = _summaries(ku, v, key_valid, g.local, self.rotary)
        if g.kind == "full" or t <= g.block:  # the window covers everything: plain (fused) attention
            mask = None if key_valid is None else key_valid[:, None, None, :]
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                k.transpose(1, 2),
                v.transpose(1, 2),
                attn_mask=mask,
                dropout_p=p,
                is_causal=g.causal,
            ).transpose(1, 2)
        else:
            out = blocked_attention(q, k, v, g, key_valid, summaries, p)
        cache = self._cache_after(k, v, ku, summaries, t) if want_cache else None
        return out.reshape(b, t, d), cache

    def _cache_after(
        self, k: Tensor, v: Tensor, ku: Tensor, summaries: tuple[Tensor, Tensor] | None, t: int
    ) -> LayerCache:
        g = self.geometry
        keep = g.keep_from(t)
        k_c, v_c = k[:, keep:].transpose(1, 2), v[:, keep:].transpose(1, 2)
        if summaries is None:
            return LayerCache(k_c, v_c, keep)
        done = t // g.local
        s0 = max(0, done - g.n_global)
        sk, sv = (s[:, s0:done].transpose(1, 2) for s in summaries)
        ku_c, vu_c = (u[:, done * g.local :].transpose(1, 2) for u in (ku, v))
        return LayerCache(k_c, v_c, keep, sk, sv, s0, ku_c, vu_c)

    # --- incremental decoding ----------------------------------------------------------------------

    def _attend_cached(self, x: Tensor, pos0: int, cache: LayerCache) -> tuple[Tensor, LayerCache]:
        b, tn, d = x.shape
        g = self.geometry
        qpos = torch.arange(pos0, pos0 + tn, device=x.device)
        q, k, v, ku = (t.transpose(1, 2) for t in self._project(x, qpos))  # (B, H, Tn, dh)
        new = LayerCache(torch.cat([cache.k, k], 2), torch.cat([cache.v, v], 2), cache.start)
        kpos = torch.arange(cache.start, pos0 + tn, device=x.device)
        mask, keys, values = g.local_allowed(qpos, kpos), new.k, new.v
        if g.kind == "hierarchical":
            new = self._grow_summaries(cache, new, ku, v, pos0 + tn)
            assert new.sk is not None and new.sv is not None
            spos = torch.arange(new.s_start, new.s_start + new.sk.shape[2], device=x.device)
            qblock = torch.div(qpos, g.local, rounding_mode="floor")[:, None]
            smask = (spos[None] <= qblock - 1) & (spos[None] >= qblock - g.n_global)
            keys, values = torch.cat([keys, new.sk], 2), torch.cat([values, new.sv], 2)
            mask = torch.cat([mask, smask], 1)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=None if bool(mask.all()) else mask)
        return out.transpose(1, 2).reshape(b, tn, d), _trim(new, g, pos0 + tn)

    def _grow_summaries(
        self, cache: LayerCache, new: LayerCache, ku: Tensor, vu: Tensor, next_pos: int
    ) -> LayerCache:
        """Append the summaries of blocks finished by the new tokens; keep the unfinished rest."""
        assert cache.ku is not None and cache.vu is not None and cache.sk is not None and cache.sv is not None
        loc = self.geometry.local
        ku_all, vu_all = torch.cat([cache.ku, ku], 2), torch.cat([cache.vu, vu], 2)
        first_block = (next_pos - ku_all.shape[2]) // loc
        n = ku_all.shape[2] // loc
        sk, sv = cache.sk, cache.sv
        if n:
            b, h, _, dh = ku_all.shape
            mk = ku_all[:, :, : n * loc].reshape(b, h, n, loc, dh).mean(3)
            mv = vu_all[:, :, : n * loc].reshape(b, h, n, loc, dh).mean(3)
            centres = (torch.arange(first_block, first_block + n, device=ku.device) + 0.5) * loc - 0.5
            cos, sin = self.rotary.angles(centres)
            sk, sv = torch.cat([sk, rotate(mk, cos, sin)], 2), torch.cat([sv, mv], 2)
        rest = slice(n * loc, None)
        return LayerCache(
            new.k, new.v, new.start, sk, sv, cache.s_start, ku_all[:, :, rest], vu_all[:, :, rest]
        )


def _trim(c: LayerCache, g: Geometry, next_pos: int) -> LayerCache:
    """Drop keys and summaries no future query can see, so windowed caches stay bounded."""
    keep = g.keep_from(next_pos)
    k, v = c.k[:, :, keep - c.start :], c.v[:, :, keep - c.start :]
    if c.sk is None or c.sv is None:
        return LayerCache(k, v, keep)
    s0 = max(c.s_start, next_pos // g.local - g.n_global)
    cut = s0 - c.s_start
    return LayerCache(k, v, keep, c.sk[:, :, cut:], c.sv[:, :, cut:], s0, c.ku, c.vu)


def _summaries(
    ku: Tensor, v: Tensor, key_valid: Tensor | None, block: int, rotary: Rotary
) -> tuple[Tensor, Tensor]:
    """Mean unrotated key (rotated at the block centre) and mean value per block; each (B, nb, H, dh).

    Padding tokens (key_valid False) are left out of the means; without key_valid it is the plain
    mean, exactly what the KV cache computes when a block fills up.
    """
    b, t, h, dh = ku.shape
    nb = -(-t // block)
    pad = nb * block - t
    kb = F.pad(ku, (0, 0, 0, 0, 0, pad)).view(b, nb, block, h, dh)
    vb = F.pad(v, (0, 0, 0, 0, 0, pad)).view(b, nb, block, h, dh)
    if key_valid is None:
        mk, mv = kb.mean(2), vb.mean(2)
    else:
        weight = F.pad(key_valid, (0, pad)).to(ku.dtype).view(b, nb, block, 1, 1)
        count = weight.sum(2).clamp(min=1)
        mk, mv = (kb * weight).sum(2) / count, (vb * weight).sum(2) / count
    centres = (torch.arange(nb, device=ku.device) + 0.5) * block - 0.5
    cos, sin = rotary.angles(centres)
    return rotate(mk, cos[:, None], sin[:, None]), mv


def _spans(x: Tensor, before: int, after: int) -> Tensor:
    """(B, nb, H, blk, dh) -> (B, nb, H, (before + 1 + after) * blk, dh): each block with its neighbours."""
    nb = x.shape[1]
    padded = F.pad(x, (0, 0, 0, 0, 0, 0, before, after))
    return torch.cat([padded[:, j : j + nb] for j in range(before + 1 + after)], dim=3)


def blocked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Geometry,
    key_valid: Tensor | None,
    summaries: tuple[Tensor, Tensor] | None,
    dropout: float,
) -> Tensor:
    """Blocked attention for the windowed kinds; q, k, v (B, T, H, dh) -> (B, T, H, dh)."""
    b, t, h, dh = q.shape
    blk = g.block
    nb = -(-t // blk)
    pad = nb * blk - t

    def blocks(x: Tensor) -> Tensor:  # (B, T, H, dh) -> (B, nb, H, blk, dh)
        return F.pad(x, (0, 0, 0, 0, 0, pad)).view(b, nb, blk, h, dh).transpose(2, 3)

    qb, kb, vb = blocks(q), _spans(blocks(k), g.n_prev, g.n_next), _spans(blocks(v), g.n_prev, g.n_next)
    qpos = torch.arange(nb * blk, device=q.device).view(nb, blk)
    kpos = (torch.arange(nb, device=q.device)[:, None] - g.n_prev) * blk + torch.arange(
        kb.shape[3], device=q.device
    )
    mask = g.local_allowed(qpos, kpos) & ((kpos >= 0) & (kpos < t))[:, None, :]
    mask = mask[None].expand(b, -1, -1, -1)  # (B, nb, blk, span)
    if key_valid is not None:
        valid = F.pad(key_valid, (blk * g.n_prev, blk * g.n_next + pad)).unfold(1, kb.shape[3], blk)
        mask = mask & valid[:, :, None, :]
    mask = mask | (kpos[:, None, :] == qpos[:, :, None])  # a query always sees itself: no empty rows
    if summaries is not None:
        sk, sv, smask = _summary_spans(summaries, g, key_valid, nb)
        kb, vb = torch.cat([kb, sk], 3), torch.cat([vb, sv], 3)
        mask = torch.cat([mask, smask[:, :, None, :].expand(-1, -1, blk, -1)], 3)
    span = kb.shape[3]
    out = F.scaled_dot_product_attention(
        qb.reshape(b * nb, h, blk, dh),
        kb.reshape(b * nb, h, span, dh),
        vb.reshape(b * nb, h, span, dh),
        attn_mask=mask.reshape(b * nb, 1, blk, span),
        dropout_p=dropout,
    )
    return out.view(b, nb, h, blk, dh).transpose(2, 3).reshape(b, nb * blk, h, dh)[:, :t]


def _summary_spans(
    summaries: tuple[Tensor, Tensor], g: Geometry, key_valid: Tensor | None, nb: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Summary keys/values each query block reads, (B, nb, H, G, dh), and their mask (B, nb, G)."""
    sk, sv = summaries
    b, ns, h, dh = sk.shape
    offsets = torch.tensor(g.summary_offsets(), device=sk.device)
    idx = torch.arange(nb, device=sk.device)[:, None] + offsets[None, :]  # (nb, G)
    ok = (idx >= 0) & (idx < ns)
    flat = idx.clamp(0, ns - 1).flatten()
    gk = sk.index_select(1, flat).view(b, nb, -1, h, dh).transpose(2, 3)
    gv = sv.index_select(1, flat).view(b, nb, -1, h, dh).transpose(2, 3)
    mask = ok[None].expand(b, -1, -1)
    if key_valid is not None:
        pad = ns * g.local - key_valid.shape[1]
        has_tokens = F.pad(key_valid, (0, pad)).view(b, ns, g.local).any(2)  # (B, ns)
        mask = mask & has_tokens.gather(1, flat[None].expand(b, -1)).view(b, nb, -1)
    return gk, gv, mask
