"""ONNX exports run by onnxruntime: verification, metadata, dynamic axes, sampling like PyTorch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from aurl.config import ModelConfig  # noqa: E402
from aurl.export import (  # noqa: E402
    ExportError,
    MissingDependencyError,
    OnnxDecoder,
    export_model,
    is_export,
    load_decoder,
)
from aurl.export.metadata import FORMAT_KEY, LAYOUT_KEY, OPSET_KEY  # noqa: E402
from aurl.export.onnx import OPSET, read_onnx_metadata  # noqa: E402
from aurl.export.session import CAPACITY_STEP, OnnxStep, grown_capacity  # noqa: E402
from aurl.midi import read_midi  # noqa: E402
from aurl.models import load_weights, read_metadata  # noqa: E402
from aurl.models.weights import CONFIG_KEY  # noqa: E402
from aurl.sample.decoder import TorchDecoder  # noqa: E402
from aurl.sample.generate import generate_ids, row_generators  # noqa: E402
from aurl.sample.processors import Temperature, TopK  # noqa: E402
from aurl.tokens.vocab import VOCAB_VERSION  # noqa: E402
from export.conftest import save_tiny  # noqa: E402


@pytest.fixture(scope="module")
def onnx_files(
    tmp_path_factory: pytest.TempPathFactory,
    transformer_file: Path,
    vae_sliding_file: Path,
    vae_gan_file: Path,
    hierarchical_file: Path,
) -> dict[str, Path]:
    """Each tiny model exported once for the module (test_verify_... verifies them)."""
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for name, source in (
        ("transformer", transformer_file),
        ("vae_sliding", vae_sliding_file),
        ("vae_gan", vae_gan_file),
        ("hierarchical", hierarchical_file),
    ):
        files[name] = Path(export_model(source, "onnx", folder / f"{name}.onnx").out)
    return files


@pytest.mark.parametrize("name", ["transformer", "vae_sliding", "vae_gan"])
def test_verify_reports_every_check_within_1e4(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = request.getfixturevalue(f"{name}_file" if name != "vae_sliding" else "vae_sliding_file")
    result = export_model(source, "onnx", tmp_path / "m.onnx", verify=True)
    names = [c.name for c in result.checks]
    assert names == [
        "random prefix",
        "random in 2 chunks",
        "chorale prefix",
        "chorale token by token",
        "chorale loss increase %",
    ]
    assert all(c.max_abs_diff <= 1e-4 and c.tolerance == 1e-4 for c in result.checks[:4])
    assert result.opset == OPSET and result.verified is True
    assert result.loss_export == pytest.approx(result.loss_float32, rel=1e-5)


def test_metadata_records_opset_config_vocab_and_layout(
    onnx_files: dict[str, Path], vae_gan_file: Path
) -> None:
    proto = onnx.load(str(onnx_files["vae_gan"]))
    assert proto.opset_import[0].version == OPSET
    meta = read_onnx_metadata(onnx_files["vae_gan"])
    assert meta[OPSET_KEY] == str(OPSET) and meta[FORMAT_KEY] == "onnx"
    assert meta["vocab_version"] == VOCAB_VERSION and meta["step"] == "7"
    assert ModelConfig.model_validate_json(meta[CONFIG_KEY]) == load_weights(vae_gan_file).config
    assert meta[CONFIG_KEY] == read_metadata(vae_gan_file)[CONFIG_KEY]
    layout = json.loads(meta[LAYOUT_KEY])
    assert layout["layers"] == 2 and layout["latent"] == [32, 16, 16]
    inputs = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input
    }
    assert inputs["ids"] == ["batch", "sequence"]
    assert inputs["past_key.0"] == ["batch", 4, "capacity", 16]
    assert inputs["past_length"] == [1]
    assert inputs["z_bar"] == ["batch", "bars", 16]
    assert not any(n.name.startswith("discriminator") or "encoder" in n.name for n in proto.graph.initializer)


def test_dynamic_batch_and_lengths(onnx_files: dict[str, Path]) -> None:
    step = OnnxStep(onnx_files["transformer"])
    for batch, lengths in ((1, (1, 1, 1)), (5, (7, 1, 30))):
        state = step.start(batch)
        for length in lengths:
            ids = np.random.default_rng(batch).integers(4, 774, (batch, length))
            logits, state = step.run(ids, state)
            assert logits.shape == (batch, length, 774)
        assert state.length == sum(lengths) and state.beat.shape == (batch, 4)


def test_long_inputs_run_in_chunks_with_the_same_logits(
    onnx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    step = OnnxStep(onnx_files["vae_sliding"])
    ids = np.random.default_rng(0).integers(4, 774, (2, 23))
    whole, state = step.run(ids, step.start(2))
    monkeypatch.setattr("aurl.export.session.CHUNK", 5)  # 23 tokens: chunks of 5, 5, 5, 5, 3
    chunked, chunked_state = step.run(ids, step.start(2))
    assert np.allclose(chunked, whole, atol=1e-5, rtol=0)
    assert np.array_equal(chunked_state.beat, state.beat) and chunked_state.length == 23


@pytest.mark.parametrize("name", ["transformer", "vae_sliding"])
def test_growing_buffers_give_the_logits_of_one_call(
    name: str, onnx_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    step = OnnxStep(onnx_files[name])
    ids = np.random.default_rng(3).integers(4, 774, (2, 24))
    whole, _ = step.run(ids, step.start(2))
    monkeypatch.setattr("aurl.export.session.CAPACITY_STEP", 5)  # steps of 10 slots up to end 10, then 15
    state, pieces, capacities = step.start(2), [], []
    for lo, hi in ((0, 7), (7, 8), (8, 9), (9, 21), (21, 24)):
        logits, state = step.run(ids[:, lo:hi], state)
        pieces.append(logits)
        capacities.append(state.past[0].shape[2])
    assert capacities == [10, 10, 10, 30, 30] and state.length == 24
    assert np.allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5, rtol=0)


def test_buffers_grow_in_steps_of_about_the_square_root_of_their_length() -> None:
    for end, want in ((1, 64), (64, 64), (65, 128), (500, 512), (2000, 2048), (10_000, 10_240)):
        assert grown_capacity(end) == want
    for end in range(1, 20_000, 97):
        capacity = grown_capacity(end)
        step = max(CAPACITY_STEP, math.sqrt(12 * end) + CAPACITY_STEP / 2)  # √(12 end) rounded
        assert capacity % CAPACITY_STEP == 0 and 0 <= capacity - end < step


def test_a_reordered_state_is_read_from_its_own_buffers(onnx_files: dict[str, Path]) -> None:
    """One-token calls reuse the session's binding to the buffers; a reordered state has new ones."""
    step = OnnxStep(onnx_files["transformer"])
    ids = np.random.default_rng(5).integers(4, 774, (3, 6))
    state = step.start(3)
    for i in range(5):
        _, state = step.run(ids[:, i : i + 1], state)
    order = np.array([2, 0, 1])
    logits, _ = step.run(ids[order, 5:], state.select(order))
    want, _ = OnnxStep(onnx_files["transformer"]).run(ids[order], step.start(3))
    assert np.allclose(logits[:, 0], want[:, -1], atol=1e-5, rtol=0)
    assert not np.allclose(logits[0, 0], want[1, -1], atol=1e-3, rtol=0)  # the rows do differ


@pytest.mark.parametrize("name", ["transformer", "vae_gan", "hierarchical"])
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_sampling_gives_the_same_tokens_as_pytorch(
    name: str, greedy: bool, onnx_files: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    torch_decoder = load_decoder(request.getfixturevalue(f"{name}_file"))
    onnx_decoder = load_decoder(onnx_files[name])
    assert isinstance(torch_decoder, TorchDecoder) and isinstance(onnx_decoder, OnnxDecoder)
    processors = [TopK(1)] if greedy else [Temperature(1.0)]
    z = None
    if name == "vae_gan":
        z = torch_decoder.prior(row_generators(3, 3, stream=1), n_bars=4, n_tokens=120)
    kwargs = {"num": 3, "max_tokens": 120, "processors": processors, "seed": 11, "z": z}
    want, got = generate_ids(torch_decoder, **kwargs), generate_ids(onnx_decoder, **kwargs)
    assert [len(ids) for ids in want] == [len(ids) for ids in got]
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
    distinct = len({tuple(ids) for ids in want})
    assert distinct == 1 if greedy and z is None else distinct > 1  # rows share argmaxes, not draws


def test_onnx_decoder_prior_and_reorder_match_torch(onnx_files: dict[str, Path], vae_gan_file: Path) -> None:
    torch_decoder, onnx_decoder = load_decoder(vae_gan_file), OnnxDecoder(onnx_files["vae_gan"])
    a = torch_decoder.prior(row_generators(1, 2, 1), 3, 100)
    b = onnx_decoder.prior(row_generators(1, 2, 1), 3, 100)
    assert torch.equal(a.piece, b.piece) and torch.equal(a.fine, b.fine)
    ids = torch.randint(4, 774, (3, 9), generator=torch.Generator().manual_seed(0))
    state = onnx_decoder.start(3)
    _, state = onnx_decoder.step(ids, state)
    picked = onnx_decoder.reorder(state, torch.tensor([2, 2, 0]))
    logits, _ = onnx_decoder.step(ids[[2, 2, 0], :1], picked)
    want, _ = onnx_decoder.step(torch.cat([ids[[2, 2, 0]], ids[[2, 2, 0], :1]], 1), onnx_decoder.start(3))
    assert torch.allclose(logits[:, 0], want[:, -1], atol=1e-5)
    with pytest.raises(ExportError, match="decoder only"):
        onnx_decoder.encode(ids[:1])


def test_int8_onnx_verifies_within_the_loss_budget(transformer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    result = export_model(transformer_file, "int8", out, verify=True)
    assert result.file_format == "onnx-int8" and result.verified is True
    assert abs(result.loss_increase_pct or 0.0) < 2.0
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    assert LAYOUT_KEY in read_onnx_metadata(out)
    assert result.size_ratio < 0.3
    assert isinstance(load_decoder(out), OnnxDecoder)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_hierarchical_attention_exports_and_verifies(tmp_path: Path) -> None:
    # Blocks of 8 and 3 summaries: the 37 random and 509 chorale tokens end mid-block.
    source = save_tiny(tmp_path, "hier", "vae", attention="hierarchical", local_window=8, global_tokens=3)
    result = export_model(source, "onnx", tmp_path / "hier.onnx", verify=True)
    assert result.verified is True and result.attention == "hierarchical"
    assert all(c.max_abs_diff <= 1e-4 for c in result.checks[:4])
    quantized = export_model(source, "int8", tmp_path / "hier.int8.onnx", verify=True)
    assert quantized.verified is True
    assert [c.name for c in quantized.checks][3] == "chorale token by token"  # ran through every shape


def test_shared_pitch_rows_export_and_verify(tmp_path: Path) -> None:
    source = save_tiny(tmp_path, "rows", "vae", shared_pitch_rows=True)
    result = export_model(source, "onnx", tmp_path / "rows.onnx", verify=True)
    assert result.verified is True
    assert all(c.max_abs_diff <= 1e-4 for c in result.checks[:4])
    assert export_model(source, "int8", tmp_path / "rows.int8.onnx", verify=True).verified is True


def test_verify_without_onnxruntime_names_the_extra(
    transformer_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"'onnxruntime'.*aurl\[export\]"):
        export_model(transformer_file, "onnx", tmp_path / "m.onnx", verify=True)


@pytest.mark.parametrize("name", ["vae_gan", "hierarchical"])
def test_example_script_samples_a_midi_file_without_torch(
    name: str, onnx_files: dict[str, Path], tmp_path: Path
) -> None:
    model = onnx_files[name]  # hierarchical: blocks of 8, so 150 tokens finish 18 of them
    out = tmp_path / "song.mid"
    script = Path(__file__).resolve().parents[2] / "examples" / "onnx_sample.py"
    code = (
        "import runpy, sys; sys.modules['torch'] = None; "  # any torch import would now fail
        f"sys.argv = ['x', {str(model)!r}, '--out', {str(out)!r}, '--tokens', '150', "
        "'--top-k', '20', '--seed', '4']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "tokens" in done.stdout and out.stat().st_size > 0
    score = read_midi(out)
    assert score.n_notes > 0


def test_sample_library_runs_on_an_onnx_decoder_like_on_the_model(
    onnx_files: dict[str, Path], transformer_file: Path, tmp_path: Path
) -> None:
    """What `aurl sample --checkpoint model.onnx` does: sample(..., decoder=load_decoder(path))."""
    from aurl.config import load_settings
    from aurl.sample.sampler import sample

    settings = load_settings(None, {"sample.max_tokens": 80, "sample.seed": 5})
    onnx_path = onnx_files["transformer"]
    assert is_export(onnx_path) and not is_export(transformer_file)
    got = sample(settings, checkpoint=onnx_path, out=tmp_path / "a", num=2, decoder=load_decoder(onnx_path))
    want = sample(settings, checkpoint=transformer_file, out=tmp_path / "b", num=2)
    assert got.mode == "transformer" and got.checkpoint == str(onnx_path)
    assert [(p.tokens, p.notes) for p in got.pieces] == [(p.tokens, p.notes) for p in want.pieces]
    assert [p.log_prob for p in got.pieces] == pytest.approx([p.log_prob for p in want.pieces], abs=1e-3)


def test_an_onnx_export_keeps_the_models_recommended_sample_settings(tmp_path: Path) -> None:
    from aurl.config import load_settings
    from aurl.config.sample import RECOMMENDED_KEY
    from aurl.models import save_weights
    from aurl.sample.sampler import sample
    from export.conftest import tiny_model

    source = tmp_path / "model.safetensors"
    recommended = {"max_voice_polyphony": 1, "temperature": 0.8}
    save_weights(
        tiny_model(), source, {"vocab_version": VOCAB_VERSION, RECOMMENDED_KEY: json.dumps(recommended)}
    )
    onnx_path = Path(export_model(source, "onnx", tmp_path / "model.onnx").out)
    settings = load_settings(None, {"sample.max_tokens": 40, "sample.seed": 5})
    got = sample(settings, checkpoint=onnx_path, out=tmp_path / "a.mid", decoder=load_decoder(onnx_path))
    assert got.settings["temperature"] == 0.8
    assert "max polyphony per voice 1" in got.constraints


def test_compile_is_refused_for_an_exported_model(onnx_files: dict[str, Path], tmp_path: Path) -> None:
    """--compile compiles aurl's own CUDA graph step; an ONNX file runs as exported, so it says so."""
    from aurl.config import load_settings
    from aurl.errors import ConfigError
    from aurl.sample.sampler import sample

    settings = load_settings(None, {"sample.max_tokens": 8, "sample.compile": True})
    onnx_path = onnx_files["transformer"]
    with pytest.raises(ConfigError, match="exported model"):
        sample(settings, checkpoint=onnx_path, out=tmp_path / "a.mid", decoder=load_decoder(onnx_path))
    assert not (tmp_path / "a.mid").exists()


HIERARCHICAL_LAYOUT = (
    '{"layers": 1, "heads": 2, "head_dim": 8, "vocab_size": 774, "attention": "hierarchical", '
    '"latent": null, "start_beat": [0, 0, 0, 32]}'
)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (None, "not an aurl ONNX export"),
        ('{"layers": 2}', "returns the whole cache"),
        (HIERARCHICAL_LAYOUT, "recomputes every block summary"),
    ],
    ids=["foreign", "old-layout", "old-hierarchical"],
)
def test_an_onnx_file_of_another_kind_is_refused_in_one_line(
    layout: str | None, message: str, tmp_path: Path
) -> None:
    from onnx import TensorProto, helper

    name = "past_length" if layout == HIERARCHICAL_LAYOUT else "ids"  # the buffered cache came first
    ids = helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("logits", TensorProto.INT64, ["batch", "sequence"])
    graph = helper.make_graph([helper.make_node("Identity", [name], ["logits"])], "g", [ids], [out])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if layout is not None:  # an export from before the cache buffers, or before the summary inputs
        proto.metadata_props.add(key=LAYOUT_KEY, value=layout)
    path = tmp_path / "other.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ExportError, match=message) as raised:
        OnnxStep(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
