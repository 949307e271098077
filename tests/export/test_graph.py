"""The traceable step (export/graph.py) against the model's own code, without any ONNX package."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from aurl.export.graph import StepGraph, StepLayout, beat_features, example_inputs, last_where
from aurl.models import BeatState
from aurl.models import positions as model_positions
from aurl.tokens import model_tables
from export.conftest import HIERARCHICAL, SLIDING, tiny_model

TABLES = {
    name: torch.as_tensor(np.asarray(value, np.int64 if name != "bar_start" else bool))
    for name, value in model_tables().items()
    if name in ("time_advance", "bar_start", "bar_steps")
}
# Ids drawn from tokens that move time, start bars and set bar lengths, plus any others.
INTERESTING = [
    int(i)
    for i in np.flatnonzero(
        (TABLES["time_advance"] > 0).numpy() | TABLES["bar_start"].numpy() | (TABLES["bar_steps"] > 0).numpy()
    )
]


def naive_last_where(flag: Tensor, value: Tensor, before: Tensor) -> Tensor:
    out = torch.empty_like(value)
    for b in range(flag.shape[0]):
        current = int(before[b])
        for t in range(flag.shape[1]):
            current = int(value[b, t]) if flag[b, t] else current
            out[b, t] = current
    return out


@given(
    flags=st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=3).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    ),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_last_where_is_the_value_at_the_latest_flag(flags: list[list[bool]], seed: int) -> None:
    flag = torch.tensor(flags)
    generator = torch.Generator().manual_seed(seed)
    value = torch.randint(0, 1000, flag.shape, generator=generator)
    before = torch.randint(0, 1000, (flag.shape[0],), generator=generator)
    assert torch.equal(last_where(flag, value, before), naive_last_where(flag, value, before))


@given(
    ids=st.lists(st.sampled_from(INTERESTING) | st.integers(0, 773), min_size=1, max_size=40),
    time=st.integers(0, 500),
    bars=st.integers(0, 20),
    into_bar=st.integers(0, 60),
    bar_len=st.sampled_from([24, 32, 48, 64]),
)
@settings(max_examples=80, deadline=None)
def test_beat_features_match_the_models(
    ids: list[int], time: int, bars: int, into_bar: int, bar_len: int
) -> None:
    x = torch.tensor([ids, ids[::-1]])
    state = BeatState(
        torch.tensor([time, time + 3]),
        torch.tensor([bars, bars + 1]),
        torch.tensor([max(time - into_bar, 0), time]),
        torch.tensor([bar_len, 32]),
    )
    want = model_positions.beat_features(x, TABLES, state)
    got = beat_features(x, TABLES, state)
    for name in ("time", "bar", "pos_in_bar", "bar_len"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name


def store(past: list[Tensor], summaries: list[Tensor], new: list[Tensor], at: int) -> list[Tensor]:
    """What a runtime does with a step's outputs: the new keys and values into the buffers from slot
    `at` on, the finished blocks' summaries after the earlier ones (returned)."""
    for buffer, entries in zip(past, new, strict=False):
        buffer[:, :, at : at + entries.shape[2]] = entries
    return [torch.cat(pair, 2) for pair in zip(summaries, new[len(past) :], strict=True)]


@pytest.mark.parametrize(
    ("mode", "overrides"),
    [("transformer", {}), ("vae", SLIDING), ("vae_gan", {}), ("vae", HIERARCHICAL)],
    ids=["transformer-full", "vae-sliding", "vae_gan-full", "vae-hierarchical"],
)
def test_step_graph_in_chunks_matches_one_model_step(mode: str, overrides: dict) -> None:
    model = tiny_model(mode, **overrides)
    graph = StepGraph(model)
    layout = graph.layout
    ids = torch.randint(4, 774, (2, 30), generator=torch.Generator().manual_seed(1))
    z_parts = example_inputs(layout, batch=2)[3 : 3 + (3 if layout.latent else 0)]
    z = None
    if layout.latent:
        from aurl.models import Latent

        piece, bar, fine = z_parts
        z = Latent(
            piece,
            bar,
            fine,
            torch.ones(bar.shape[:2], dtype=torch.bool),
            torch.ones(fine.shape[:2], dtype=torch.bool),
        )
    with torch.no_grad():
        want, _ = model.step(ids, None, z)
        beat = torch.tensor([layout.start_beat] * 2)
        # Buffers of 40 slots full of noise: the step must read only the slots it was told are filled.
        noise = torch.Generator().manual_seed(2)
        past = [torch.randn(2, layout.heads, 40, layout.head_dim, generator=noise) for _ in layout.past_names]
        summaries = [torch.zeros(2, layout.heads, 0, layout.head_dim) for _ in layout.summary_past_names]
        pieces, n_summaries = [], []
        for lo, hi in ((0, 11), (11, 12), (12, 13), (13, 15), (15, 16), (16, 30)):
            logits, beat, *new = graph(ids[:, lo:hi], beat, torch.tensor([lo]), *z_parts, *past, *summaries)
            assert all(
                entries.shape == (2, layout.heads, hi - lo, layout.head_dim) for entries in new[: len(past)]
            )
            summaries = store(past, summaries, new, lo)
            n_summaries.append(summaries[0].shape[2] if summaries else 0)
            pieces.append(logits)
    assert torch.allclose(torch.cat(pieces, 1), want, atol=1e-5, rtol=0)
    if layout.summarised:  # blocks of 8 tokens finish at 8, 16 and 24 (three summaries at the end)
        assert n_summaries == [1, 1, 1, 1, 2, 3]


@pytest.mark.parametrize("overrides", [HIERARCHICAL, SLIDING], ids=["hierarchical", "sliding"])
def test_a_windowed_step_reads_only_its_window(overrides: dict) -> None:
    """The per-token cost must not grow with the piece: buffer slots no new token can see are never
    read (NaN there would reach the logits); hierarchical attention's finished blocks come in as
    summaries."""
    model = tiny_model("transformer", **overrides)
    graph = StepGraph(model)
    g = model.decoder.blocks[0].attn.geometry
    layout = graph.layout
    ids = torch.randint(4, 774, (1, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want, _ = model.step(ids, None)
        past = [torch.zeros(1, layout.heads, 32, layout.head_dim) for _ in layout.past_names]
        summaries = [torch.zeros(1, layout.heads, 0, layout.head_dim) for _ in layout.summary_past_names]
        beat = torch.tensor([layout.start_beat])
        for t in range(30):
            for buffer in past:
                buffer[:, :, : int(g.lo(torch.tensor(t)))] = float("nan")  # before the new token's window
            logits, beat, *new = graph(ids[:, t : t + 1], beat, torch.tensor([t]), *past, *summaries)
            summaries = store(past, summaries, new, t)
            assert torch.allclose(logits[0, 0], want[0, t], atol=1e-5, rtol=0), t
    if layout.summarised:  # blocks of 8 tokens
        assert summaries[0].shape[2] == 30 // 8 and not summaries[0].isnan().any()
    assert int(g.lo(torch.tensor(29))) > 0  # the test did hide slots


def test_layout_round_trips_through_json() -> None:
    layout = StepLayout.of(tiny_model("vae"))
    assert StepLayout.from_json(layout.to_json()) == layout
    assert layout.input_names[:6] == ["ids", "beat", "past_length", "z_piece", "z_bar", "z_fine"]
    assert len(layout.past_names) == 2 * layout.layers == len(layout.new_names)
    assert StepLayout.of(tiny_model()).latent is None
