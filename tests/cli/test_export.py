"""`aurl export` through CliRunner: formats, --json, and every error path as one line with its exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from aurl.midi import read_midi
from aurl.models import MusicTransformerVAEGAN, TokenTable, load_weights, save_weights
from aurl.tokens import model_tables
from aurl.tokens.vocab import VOCAB_VERSION


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformer in a run directory, as training leaves it."""
    run = tmp_path_factory.mktemp("run")
    model = MusicTransformerVAEGAN.from_preset("tiny", table=TokenTable(**model_tables()), dropout=0.0)
    save_weights(model, run / "model.safetensors", {"vocab_version": VOCAB_VERSION})
    return run / "model.safetensors"


@pytest.fixture()
def aurl(runner: CliRunner):  # type: ignore[no-untyped-def]
    from aurl.cli.app import app

    def invoke(*args: str | Path) -> Any:
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


def one_line_error(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_fp16_from_a_run_directory_with_json(aurl: Any, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "model.fp16.safetensors"
    result = aurl("export", model_file.parent, "--format", "fp16", "--out", out, "--verify", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "fp16" and data["verified"] is True and data["out"] == str(out)
    assert data["size_bytes"] == out.stat().st_size and data["size_ratio"] < 0.5
    assert {c["name"] for c in data["checks"]} >= {"chorale loss increase %"}
    assert load_weights(out).config == load_weights(model_file).config


def test_int8_table_output(aurl: Any, model_file: Path, tmp_path: Path) -> None:
    result = aurl("export", model_file, "-f", "int8", "-o", tmp_path / "m.int8.safetensors", "--verify")
    assert result.exit_code == 0, result.output
    assert "int8-dynamic" in result.stdout and "file vs quantised model" in result.stdout
    assert "e-" in result.stdout or "0.00e+00" in result.stdout  # differences in scientific notation


def test_onnx_with_verify(aurl: Any, model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = aurl("export", model_file, "--out", tmp_path / "m.onnx", "--verify", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "onnx" and data["opset"] == 20
    assert all(c["max_abs_diff"] <= 1e-4 for c in data["checks"][:4])


@pytest.mark.parametrize(("fmt", "name"), [("onnx", "m.onnx"), ("int8", "m.int8.safetensors")])
def test_aurl_sample_runs_on_the_export_like_on_the_model(
    aurl: Any, model_file: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    exported = tmp_path / name
    assert aurl("export", model_file, "-f", fmt, "-o", exported).exit_code == 0
    runs = {}
    for label, checkpoint in (("export", exported), ("model", model_file)):
        out = tmp_path / f"{label}.mid"
        result = aurl(
            "sample",
            "-m",
            checkpoint,
            "--seed",
            "4",
            "--temperature",
            "0.01",
            "--bars",
            "2",
            "-o",
            out,
            "--json",
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["checkpoint"] == str(checkpoint)
        runs[label] = read_midi(out)
    # near-greedy decoding: the export follows the model's own choices (int8 within its rounding)
    assert runs["export"].n_notes > 0
    if fmt == "onnx":
        assert np.array_equal(runs["export"].pitch, runs["model"].pitch)


def test_unknown_checkpoint_format_exits_1(aurl: Any, tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04not a safetensors file")
    result = aurl("export", bad, "--out", tmp_path / "m.onnx")
    assert result.exit_code == 1
    assert "model.pt" in one_line_error(result) and "not a safetensors file" in result.stderr


def test_missing_checkpoint_exits_2_and_empty_run_directory_1(aurl: Any, tmp_path: Path) -> None:
    result = aurl("export", tmp_path / "absent.safetensors", "--out", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "does not exist" in one_line_error(result)
    result = aurl("export", tmp_path, "--out", tmp_path / "m.onnx")
    assert result.exit_code == 1 and "holds no model.safetensors" in one_line_error(result)


def test_unknown_format_is_a_usage_error(aurl: Any, model_file: Path, tmp_path: Path) -> None:
    result = aurl("export", model_file, "--format", "int4", "--out", tmp_path / "m")
    assert result.exit_code == 2 and "int4" in one_line_error(result)


def test_missing_optional_dependency_names_the_extra(
    aurl: Any, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    result = aurl("export", model_file, "--out", tmp_path / "m.onnx")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "'onnx'" in line and "aurl[export]" in line
    assert not (tmp_path / "m.onnx").exists()


def test_failed_verification_exits_1_with_one_line(
    aurl: Any, model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aurl.export.verify.LOSS_TOLERANCE_PCT", -1.0)  # no export can pass
    out = tmp_path / "m.bf16.safetensors"
    result = aurl("export", model_file, "-f", "bf16", "-o", out, "--verify", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    line = one_line_error(result)
    assert "verification" in line and "chorale loss increase %" in line and str(out) in line
    assert out.exists()  # kept for inspection, as the message says


def test_out_may_not_overwrite_the_checkpoint(aurl: Any, model_file: Path) -> None:
    result = aurl("export", model_file, "-f", "fp16", "-o", model_file)
    assert result.exit_code == 2 and "checkpoint itself" in one_line_error(result)


def test_help_names_formats_and_example(aurl: Any) -> None:
    result = aurl("export", "--help")
    assert result.exit_code == 0
    assert "bf16" in result.stdout and "Example: aurl export" in result.stdout


@pytest.mark.parametrize(("fmt", "name"), [("onnx", "m.safetensors"), ("fp16", "m.onnx")])
def test_out_suffix_must_fit_the_format(
    aurl: Any, model_file: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    result = aurl("export", model_file, "-f", fmt, "-o", tmp_path / name)
    assert result.exit_code == 2 and ".onnx" in one_line_error(result)
    assert not (tmp_path / name).exists()
