"""Attention geometry and kernels: the windowed kinds against brute force and against full attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.models.attention import Attention, _summaries, blocked_attention
from aurl.models.geometry import Geometry


def sliding_brute(i: int, window: int, overlap: int, causal: bool) -> set[int]:
    """Keys of query i: the earliest window (starts every window - overlap tokens) holding i."""
    start = 0
    while not start <= i < start + window:
        start += window - overlap
    return set(range(start, i + 1 if causal else start + window))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.data())
def test_sliding_geometry_matches_the_window_definition(window: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, window - 1))
    causal = data.draw(st.booleans())
    g = Geometry("sliding", causal, window=window, overlap=overlap)
    t = 3 * window
    pos = torch.arange(t)
    allowed = g.local_allowed(pos, pos)
    for i in range(t):
        expected = {j for j in sliding_brute(i, window, overlap, causal) if j < t}
        assert set(torch.nonzero(allowed[i]).flatten().tolist()) == expected


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.booleans())
def test_hierarchical_local_window_and_summaries(local: int, n_global: int, causal: bool) -> None:
    g = Geometry("hierarchical", causal, local=local, n_global=n_global)
    pos = torch.arange(5 * local)
    allowed = g.local_allowed(pos, pos)
    dist = pos[:, None] - pos[None, :]
    expected = (dist >= 0) & (dist < local) if causal else dist.abs() < local
    assert torch.equal(allowed, expected)
    offsets = g.summary_offsets()
    assert len(offsets) <= n_global and 0 not in offsets
    if causal:  # only blocks wholly in the past
        assert max(offsets) == -1 and min(offsets) == -n_global


def reference(att: Attention, x: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
    """The same rule as one dense T x T mask (what the blocked kernel must reproduce)."""
    g = att.geometry
    b, t, d = x.shape
    pos = torch.arange(t)
    q, k, v, ku = att._project(x, pos)
    mask = g.local_allowed(pos, pos)[None].expand(b, -1, -1)
    if key_valid is not None:
        mask = (mask & key_valid[:, None, :]) | torch.eye(t, dtype=torch.bool)
    keys, values = k.transpose(1, 2), v.transpose(1, 2)
    if g.kind == "hierarchical":
        sk, sv = _summaries(ku, v, key_valid, g.local, att.rotary)
        nb = sk.shape[1]
        rel = torch.arange(nb)[None, :] - (pos // g.local)[:, None]  # (T, nb)
        smask = (rel[..., None] == torch.tensor(g.summary_offsets())).any(-1)[None].expand(b, -1, -1)
        if key_valid is not None:
            has = F.pad(key_valid, (0, nb * g.local - t)).view(b, nb, g.local).any(2)
            smask = smask & has[:, None, :]
        mask = torch.cat([mask, smask], -1)
        keys, values = torch.cat([keys, sk.transpose(1, 2)], 2), torch.cat([values, sv.transpose(1, 2)], 2)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask[:, None])
    return att.out(out.transpose(1, 2).reshape(b, t, d))


GEOMETRIES = [
    ("sliding", {"window": 12, "overlap": 4}),
    ("sliding", {"window": 12, "overlap": 9}),
    ("hierarchical", {"local": 8, "n_global": 3}),
]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize(("kind", "sizes"), GEOMETRIES, ids=lambda v: str(v))
@torch.no_grad()
def test_blocked_attention_equals_dense_mask(kind: str, sizes: dict, causal: bool) -> None:
    torch.manual_seed(0)
    att = Attention(32, 4, Geometry(kind, causal, **sizes), 0.0, 10000.0).eval()
    x = torch.randn(2, 53, 32)
    key_valid = None if causal else torch.arange(53)[None] < torch.tensor([[53], [37]])
    got, want = att(x, key_valid), reference(att, x, key_valid)
    rows = torch.ones(2, 53, dtype=torch.bool) if key_valid is None else key_valid
    torch.testing.assert_close(got[rows], want[rows], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize(
    ("geometry", "t"),
    [
        (Geometry("sliding", True, window=12, overlap=4), 12),  # longer than one query block (8)
        (Geometry("sliding", True, window=12, overlap=4), 10),
        (Geometry("hierarchical", True, local=16, n_global=2), 16),
        (Geometry("hierarchical", True, local=16, n_global=2), 11),
    ],
    ids=lambda v: str(v),
)
@torch.no_grad()
def test_windowed_equals_full_when_the_window_covers_the_sequence(
    geometry: Geometry, t: int, causal: bool
) -> None:
    torch.manual_seed(1)
    g = Geometry(geometry.kind, causal, geometry.window, geometry.overlap, geometry.local, geometry.n_global)
    windowed = Attention(32, 4, g, 0.0, 10000.0).eval()
    full = Attention(32, 4, Geometry("full", causal), 0.0, 10000.0).eval()
    full.load_state_dict(windowed.state_dict())
    x = torch.randn(2, t, 32)
    torch.testing.assert_close(windowed(x), full(x), atol=1e-5, rtol=1e-5)
    # The blocked kernel itself (the module takes a fused shortcut when one block covers everything).
    q, k, v, ku = windowed._project(x, torch.arange(t))
    summaries = _summaries(ku, v, None, g.local, windowed.rotary) if g.kind == "hierarchical" else None
    blocked = windowed.out(blocked_attention(q, k, v, g, None, summaries, 0.0).reshape(2, t, 32))
    torch.testing.assert_close(blocked, full(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kind", "sizes"), [("full", {}), *GEOMETRIES], ids=lambda v: str(v))
@torch.no_grad()
def test_layer_cache_matches_whole_sequence_and_stays_bounded(kind: str, sizes: dict) -> None:
    torch.manual_seed(2)
    att = Attention(32, 4, Geometry(kind, True, **sizes), 0.0, 10000.0).eval()
    x = torch.randn(2, 61, 32)
    whole = att(x)
    for chunks in ([1] * 61, [5, 1, 13, 2, 20, 20]):
        cache, outs, pos = None, [], 0
        for n in chunks:
            out, cache = att.step(x[:, pos : pos + n], pos, cache)
            outs.append(out)
            pos += n
            if kind != "full":  # bounded: never more keys than one window (+ summaries)
                assert cache.k.shape[2] <= max(sizes.get("window", 0), sizes.get("local", 0))
            if kind == "hierarchical":
                assert cache.sk.shape[2] <= sizes["n_global"]
        torch.testing.assert_close(torch.cat(outs, 1), whole, atol=1e-5, rtol=1e-5)


def test_windowed_attention_memory_is_linear_in_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """No T x T tensor: the blocked kernel's mask grows linearly with T."""
    g = Geometry("sliding", True, window=80, overlap=16)  # query blocks of 64
    att = Attention(16, 2, g, 0.0, 10000.0).eval()
    original, seen = F.scaled_dot_product_attention, []

    def spy(*args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        seen.append(kwargs["attn_mask"].numel())
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    for t in (1024, 4096):
        q, k, v, _ = att._project(torch.randn(1, t, 16), torch.arange(t))
        blocked_attention(q, k, v, g, None, None, 0.0)
    assert seen[1] == 4 * seen[0] and seen[1] == 4096 * 2 * 64
