"""Training end to end: every mode learns, and the run folder holds what docs/train.md promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from aurl import __version__
from aurl.config.sample import RECOMMENDED_KEY
from aurl.errors import ConfigError, UsageError
from aurl.models import load_weights, read_metadata
from aurl.tokens import VOCAB_SIZE, VOCAB_VERSION
from aurl.train import TrainEvent, run_settings, train
from aurl.train.checkpoint import MODEL_FILE, OPTIM_FILE, STATE_FILE, sha256
from train.conftest import Settings

MODES = ("transformer", "vae", "vae_gan")


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_learns_ten_chorales(mode: str, tiny_settings: Settings, tmp_path: Path) -> None:
    events: list[TrainEvent] = []
    result = train(
        tiny_settings(mode, **{"train.max_steps": 36}), run_dir=tmp_path / mode, on_event=events.append
    )
    recon = [e.data["recon"] for e in events if e.kind == "step"]
    assert len(recon) == 36 and result.step == 36 and result.stopped == "max_steps"
    first, last = sum(recon[:3]) / 3, sum(recon[-3:]) / 3
    assert last < first - 1.0, f"{mode}: reconstruction {first:.3f} -> {last:.3f}"
    evals = [e.data["val_loss"] for e in events if e.kind == "eval"]
    assert evals[-1] < evals[0], f"{mode}: validation {evals}"
    assert result.best_val_loss == min(evals) and result.skipped_steps == 0
    if mode == "vae_gan":
        assert any("disc_loss" in e.data for e in events if e.kind == "step" and e.step > 5)
        assert not any("disc_loss" in e.data for e in events if e.kind == "step" and e.step <= 5)


def test_run_folder_holds_config_vocab_metrics_checkpoints_and_best_model(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    settings = tiny_settings(**{"train.max_steps": 20, "train.keep_last": 1, "train.keep_best": 1})
    result = train(settings, run_dir=tmp_path)
    assert run_settings(tmp_path).model == settings.model, "config.json rebuilds the settings"
    assert run_settings(tmp_path).train.run_dir == tmp_path
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab["version"] == VOCAB_VERSION and vocab["size"] == VOCAB_SIZE == len(vocab["tokens"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 21))
    assert {"loss", "recon", "lr", "tokens_per_s", "grad_norm"} <= set(rows[0])
    val = [r for r in rows if r["kind"] == "val"]
    assert [r["step"] for r in val] == [10, 20]
    assert all(r["val_perplexity"] == pytest.approx(2.718281828 ** r["val_loss"]) for r in val)
    # keep_last 1 + keep_best 1: the newest (20) and the best by validation loss (also 20, or 10).
    steps = sorted(p.name for p in tmp_path.glob("step-*"))
    assert steps[-1] == "step-00000020" and 1 <= len(steps) <= 2
    state = json.loads((tmp_path / "step-00000020" / STATE_FILE).read_text())
    assert state["step"] == 20 and state["vocab_version"] == VOCAB_VERSION
    assert {"rng", "train", "anomaly", "optimizers", "epoch", "index"} <= set(state)
    assert {"torch", "numpy", "python", "cuda"} <= set(state["rng"][0])
    for name in (MODEL_FILE, OPTIM_FILE):
        assert state["checksums"][name] == sha256(tmp_path / "step-00000020" / name)
    with safe_open(str(tmp_path / "step-00000020" / OPTIM_FILE), framework="pt") as handle:
        keys = list(handle.keys())
    assert any(k.startswith("generator.state.0.exp_avg") for k in keys)
    meta = read_metadata(tmp_path / MODEL_FILE)
    assert meta["vocab_version"] == VOCAB_VERSION and meta["aurl_version"] == __version__
    assert int(meta["step"]) == result.best_step and float(meta["val_loss"]) == pytest.approx(
        result.best_val_loss
    )
    assert load_weights(tmp_path / MODEL_FILE).config == settings.model
    assert not list(tmp_path.glob(".tmp*")), "no temporary files are left behind"


def test_half_precision_weights_are_half_the_size_and_load(tiny_settings: Settings, tmp_path: Path) -> None:
    settings = tiny_settings(**{"train.max_steps": 2, "train.weights_dtype": "bf16"})
    train(settings, run_dir=tmp_path)
    half, full = tmp_path / MODEL_FILE, tmp_path / "step-00000002" / MODEL_FILE
    with safe_open(str(half), framework="pt") as handle:
        assert handle.get_tensor("embed.weight").dtype == torch.bfloat16
    # The float tensors halve; the token table's integer and boolean arrays stay as they are.
    weights = load_weights(full).state_dict()
    unique = {t.data_ptr(): t for t in weights.values() if t.is_floating_point()}  # tied weights once
    float_bytes = sum(t.numel() * 4 for t in unique.values())
    saved = full.stat().st_size - half.stat().st_size
    assert abs(saved - float_bytes / 2) < 0.01 * float_bytes
    model = load_weights(half)
    assert next(model.parameters()).dtype == torch.float32
    reference = load_weights(full).state_dict()["embed.weight"]
    assert torch.allclose(model.state_dict()["embed.weight"], reference, rtol=1e-2, atol=1e-3)


def test_average_best_writes_the_mean_of_the_best_checkpoints(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    settings = tiny_settings(
        **{"train.max_steps": 6, "train.checkpoint_every": 2, "train.average_best": 2, "train.keep_best": 2}
    )
    result = train(settings, run_dir=tmp_path)
    assert result.averaged_path is not None and result.averaged_val_loss is not None
    meta = read_metadata(result.averaged_path)
    steps = [int(s) for s in meta["averaged_steps"].split(",")]
    assert len(steps) == 2
    weights = [load_weights(tmp_path / f"step-{s:08d}" / MODEL_FILE).state_dict() for s in steps]
    assert steps == sorted(
        steps, key=lambda s: float(read_metadata(tmp_path / f"step-{s:08d}" / MODEL_FILE)["val_loss"])
    )
    averaged = load_weights(result.averaged_path).state_dict()
    expected = (weights[0]["embed.weight"].double() + weights[1]["embed.weight"].double()) / 2
    assert torch.allclose(averaged["embed.weight"].double(), expected, atol=1e-7)


def test_a_fresh_run_refuses_a_folder_with_checkpoints(tiny_settings: Settings, tmp_path: Path) -> None:
    train(tiny_settings(**{"train.max_steps": 1}), run_dir=tmp_path)
    with pytest.raises(UsageError, match="aurl resume"):
        train(tiny_settings(**{"train.max_steps": 1}), run_dir=tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.device": "cuda"}, "no CUDA device"),
        ({"train.precision": "fp16"}, "needs a CUDA device"),
        ({"model.vocab_size": 500}, "vocabulary has 774"),
    ],
    ids=["cuda", "fp16", "vocab"],
)
def test_settings_that_cannot_work_fail_in_one_line(
    tiny_settings: Settings, tmp_path: Path, overrides: dict, message: str
) -> None:
    if torch.cuda.is_available() and "train.device" in overrides:
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=message) as error:
        train(tiny_settings(**overrides), run_dir=tmp_path)
    assert "\n" not in str(error.value)


def test_bf16_autocast_trains_on_the_cpu(tiny_settings: Settings, tmp_path: Path) -> None:
    result = train(tiny_settings(**{"train.max_steps": 8, "train.precision": "bf16"}), run_dir=tmp_path)
    assert result.step == 8 and result.val_loss is not None and result.val_loss < 7.0


def test_early_stopping_after_evaluations_without_improvement(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aurl.train import loop

    losses = iter([5.0, 4.0, 4.5, 4.0, 3.0])  # steps 3 and 4 (equal is no better) do not improve on 4.0

    def scripted(*args: object, **kwargs: object) -> dict[str, float]:
        loss = next(losses)
        return {"val_loss": loss, "val_perplexity": 2.718281828**loss, "val_bits_per_token": loss / 0.6931}

    monkeypatch.setattr(loop, "validate", scripted)
    settings = tiny_settings(**{"train.max_steps": 30, "train.eval_every": 1, "train.early_stopping": 2})
    result = train(settings, run_dir=tmp_path)
    assert (result.stopped, result.step, result.best_val_loss, result.best_step) == (
        "early_stopping",
        4,
        4.0,
        2,
    )
    assert read_metadata(tmp_path / MODEL_FILE)["step"] == "2"


def test_a_preset_fills_only_the_model_keys_nobody_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aurl.config import MODEL_PRESETS, load_settings
    from aurl.train import with_preset

    config = tmp_path / "my.toml"
    config.write_text("[model]\nd_model = 96\nn_heads = 4\n")
    monkeypatch.setenv("AURL_MODEL__DROPOUT", "0.3")
    settings = with_preset(load_settings(config, {"model.mode": "vae"}), "tiny")
    model = settings.model
    assert (model.d_model, model.n_heads, model.dropout, model.mode) == (96, 4, 0.3, "vae")
    assert model.decoder_layers == MODEL_PRESETS["tiny"]["decoder_layers"]
    assert with_preset(settings, None) is settings
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        with_preset(settings, "huge")


def test_the_recipes_sample_settings_travel_with_the_model(tiny_settings: Settings, tmp_path: Path) -> None:
    settings = tiny_settings(
        **{"train.max_steps": 2, "sample.max_voice_polyphony": 1, "sample.temperature": 0.8, "sample.seed": 5}
    )
    train(settings, run_dir=tmp_path)
    recorded = json.loads(read_metadata(tmp_path / MODEL_FILE)[RECOMMENDED_KEY])
    assert recorded == {
        "max_voice_polyphony": 1,
        "temperature": 0.8,
    }  # the seed is one run's, not the model's
