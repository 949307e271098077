"""Saving and loading weights, preset sizes and the model section of the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aurl.config import AurlSettings, ModelConfig
from aurl.errors import CheckpointError, ConfigError
from aurl.models import (
    PRESET_NAMES,
    MusicTransformerVAEGAN,
    TokenTable,
    format_parameter_table,
    load_weights,
    read_metadata,
    save_weights,
)
from models.builders import MODES, batch_of, synthetic_ids, tiny


@pytest.mark.parametrize("mode", MODES)
def test_save_then_load_returns_identical_tensors(mode: str, table: TokenTable, tmp_path: Path) -> None:
    model = tiny(mode, table, attention="sliding", dropout=0.1)
    model(batch_of(synthetic_ids(2)))  # moves spectral-norm power-iteration vectors off their start
    path = tmp_path / "model.safetensors"
    save_weights(model, path, metadata={"vocab_version": "test-v1"})
    loaded = load_weights(path)
    assert loaded.config == model.config and not loaded.training
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    assert read_metadata(path)["vocab_version"] == "test-v1"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left
    ids = torch.as_tensor(synthetic_ids(2))[None]
    model.eval()
    z = model.encode(ids)[0] if mode != "transformer" else None
    torch.testing.assert_close(loaded.decode(z, ids), model.decode(z, ids), rtol=0, atol=0)


def test_the_token_table_travels_with_the_weights(table: TokenTable, tmp_path: Path) -> None:
    follow = torch.rand(774, 774) > 0.5
    with_follow = TokenTable(**{**table.__dict__, "follow": follow.numpy()})
    save_weights(tiny("transformer", with_follow), tmp_path / "m.safetensors")
    loaded = load_weights(tmp_path / "m.safetensors")
    assert (loaded.table.time_advance == table.time_advance).all()
    assert (loaded.table.follow == follow.numpy()).all()
    assert loaded.table.mask_id == table.mask_id and loaded.table.steps_per_beat == table.steps_per_beat


def test_loading_a_foreign_or_broken_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_weights(junk)
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="metadata"):
        load_weights(tmp_path / "plain.safetensors")


def test_preset_parameter_counts(table: TokenTable) -> None:
    counts = {
        (name, mode): MusicTransformerVAEGAN.from_preset(name, mode=mode, table=table).parameter_table()
        for name in PRESET_NAMES
        for mode in ("transformer", "vae_gan")
    }
    assert counts["tiny", "vae_gan"]["total"] < 1_000_000
    assert 2_000_000 <= counts["small", "vae_gan"]["total"] <= 6_000_000
    full = counts["full", "vae_gan"]
    assert 0.9 * 21e6 <= full["total"] <= 1.1 * 21e6
    assert full["decoder"] > full["encoder"] > full["discriminator"] > 0 and full["latent"] > 0
    assert counts["full", "transformer"]["encoder"] == counts["full", "transformer"]["discriminator"] == 0
    assert full["total"] == sum(v for k, v in full.items() if k != "total")
    text = format_parameter_table(full)
    assert "discriminator" in text and f"{full['total']:,}" in text


def test_model_config_section() -> None:
    assert AurlSettings().model == ModelConfig()
    assert ModelConfig.preset("full") == ModelConfig()
    assert ModelConfig.preset("tiny", mode="vae").mode == "vae"
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        ModelConfig.preset("huge")
    with pytest.raises(ConfigError, match="n_heads"):
        ModelConfig.preset("tiny", n_heads=3)
    with pytest.raises(ConfigError, match="sliding_overlap"):
        ModelConfig.preset("tiny", sliding_overlap=500)
    with pytest.raises(ConfigError, match="typo"):
        ModelConfig.preset("tiny", typo=1)
    for field in ModelConfig.model_fields.values():
        assert field.description, field
