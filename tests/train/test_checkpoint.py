"""Checkpoint pieces: optimizer state as flat tensors, RNG states as JSON, atomic folders, pruning."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aurl.config import ModelConfig, TrainConfig
from aurl.errors import CheckpointError
from aurl.models import MusicTransformerVAEGAN, TokenTable
from aurl.tokens import model_tables
from aurl.train import checkpoint as ckpt
from aurl.train import optim, rng
from aurl.train.schedule import lr_factor


@pytest.fixture(scope="module")
def model() -> MusicTransformerVAEGAN:
    torch.manual_seed(0)
    return MusicTransformerVAEGAN(ModelConfig.preset("tiny"), TokenTable(**model_tables()))


def stepped(model: torch.nn.Module, kind: str, steps: int = 2) -> torch.optim.Optimizer:
    optimizer = optim.build_optimizer(model.parameters(), TrainConfig(optimizer=kind), 1e-3)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_optimizer_state_round_trips_through_flat_tensors_and_json(
    kind: str, model: MusicTransformerVAEGAN
) -> None:
    original = stepped(model, kind)
    tensors, meta = optim.flatten("generator", original)
    assert tensors and all(k.startswith("generator.state.") for k in tensors)
    meta = json.loads(json.dumps(meta))  # what state.json holds
    fresh = optim.build_optimizer(model.parameters(), TrainConfig(optimizer=kind), 5.0)
    optim.unflatten("generator", fresh, tensors, meta)
    a, b = original.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, entries in a["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][index][key])), (index, key)


def test_weight_decay_spares_vectors(model: MusicTransformerVAEGAN) -> None:
    decayed, spared = optim.param_groups(model.parameters(), 0.1)
    assert decayed["weight_decay"] == 0.1 and spared["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in spared["params"])


def test_rng_states_round_trip_through_json() -> None:
    rng.seed_all(3)
    torch.rand(5), np.random.rand(3), random.random()  # noqa: NPY002 - the global generator is the subject
    state = json.loads(json.dumps(rng.capture()))
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    rng.seed_all(99)
    rng.restore(state)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])  # noqa: NPY002
    assert (
        torch.equal(expected[0], again[0])
        and np.array_equal(expected[1], again[1])
        and expected[2] == again[2]
    )


def save(run_dir: Path, model: MusicTransformerVAEGAN, step: int, val: float | None) -> Path:
    optimizer = optim.build_optimizer(model.parameters(), TrainConfig(), 1e-3)
    return ckpt.save_checkpoint(run_dir, model, {"generator": optimizer}, {"step": step, "val_loss": val})


def test_a_checkpoint_reads_back_and_its_temporary_folder_is_gone(
    tmp_path: Path, model: MusicTransformerVAEGAN
) -> None:
    path = save(tmp_path, model, 7, 1.5)
    assert path.name == "step-00000007" and [p.name for p in tmp_path.iterdir()] == [path.name]
    checkpoint = ckpt.read_checkpoint(path)
    assert checkpoint.step == 7 and checkpoint.state["val_loss"] == 1.5
    assert set(checkpoint.state["checksums"]) == {ckpt.MODEL_FILE, ckpt.OPTIM_FILE}


def test_an_unfinished_checkpoint_is_invisible_and_pruned(
    tmp_path: Path, model: MusicTransformerVAEGAN
) -> None:
    save(tmp_path, model, 1, None)
    crashed = tmp_path / ".tmp-step-00000002-abc"  # what a kill during a save leaves
    crashed.mkdir()
    (crashed / ckpt.MODEL_FILE).write_bytes(b"half")
    assert ckpt.checkpoint_steps(tmp_path) == [1]
    assert ckpt.latest_checkpoint(tmp_path).step == 1  # type: ignore[union-attr]
    ckpt.prune(tmp_path, keep_last=3, keep_best=0)
    assert not crashed.exists()


@settings(max_examples=20, deadline=None)
@given(
    losses=st.lists(st.one_of(st.none(), st.floats(0.0, 10.0)), min_size=1, max_size=8),
    keep_last=st.integers(1, 3),
    keep_best=st.integers(0, 3),
)
def test_prune_keeps_the_last_and_the_best(
    losses: list[float | None], keep_last: int, keep_best: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = tmp_path_factory.mktemp("prune")
    for step, loss in enumerate(losses):
        folder = ckpt.step_dir(run_dir, step)
        folder.mkdir()
        (folder / ckpt.STATE_FILE).write_text(json.dumps({"step": step, "val_loss": loss}))
    ckpt.prune(run_dir, keep_last, keep_best)
    kept = set(ckpt.checkpoint_steps(run_dir))
    scored = sorted((loss, step) for step, loss in enumerate(losses) if loss is not None)
    expected = set(range(len(losses))[-keep_last:]) | {step for _, step in scored[:keep_best]}
    assert kept == expected


def test_averaging_refuses_weights_of_different_models(tmp_path: Path, model: MusicTransformerVAEGAN) -> None:
    from aurl.models import save_weights

    save_weights(model, tmp_path / "a.safetensors")
    other = MusicTransformerVAEGAN(ModelConfig.preset("tiny", d_model=32), TokenTable(**model_tables()))
    save_weights(other, tmp_path / "b.safetensors")
    with pytest.raises(CheckpointError, match="do not match"):
        ckpt.average_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    with pytest.raises(CheckpointError, match="no checkpoints"):
        ckpt.average_weights([])


@settings(max_examples=60, deadline=None)
@given(
    warmup=st.integers(0, 50),
    total=st.integers(1, 500),
    schedule=st.sampled_from(["cosine", "linear", "constant"]),
    floor=st.floats(0.0, 1.0),
)
def test_the_schedule_warms_up_then_decays_to_its_floor(
    warmup: int, total: int, schedule: str, floor: float
) -> None:
    config = TrainConfig(warmup_steps=warmup, schedule=schedule, min_lr_ratio=floor)  # type: ignore[arg-type]
    factors = [lr_factor(step, total, config) for step in range(total + 5)]
    assert all(0.0 < f <= 1.0 for f in factors[:warmup]) and factors[: warmup + 1] == sorted(
        factors[: warmup + 1]
    )
    after = factors[warmup:]
    low = 1.0 if schedule == "constant" else floor
    assert all(min(low, 1.0) - 1e-12 <= f <= 1.0 + 1e-12 for f in after)
    assert after == sorted(after, reverse=True)
    if schedule != "constant" and total - 1 > warmup:
        assert factors[total - 1] == pytest.approx(floor) and factors[-1] == pytest.approx(floor)
