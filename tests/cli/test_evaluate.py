"""`aurl evaluate` through CliRunner: JSON shape, the report file, likelihood, exit codes."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aurl.data.corpus import bach_files
from aurl.evaluate import SCALAR_FEATURES
from aurl.models import MusicTransformerVAEGAN, TokenTable, save_weights
from aurl.tokens import VOCAB_VERSION, model_tables

Invoke = Callable[..., Any]


@pytest.fixture()
def aurl(runner: CliRunner) -> Invoke:
    from aurl.cli.app import app

    def invoke(*args: str | Path) -> Any:
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four short chorales as 'generated', four others as 'reference'."""
    files = sorted(bach_files(), key=lambda p: p.stat().st_size)[:8]
    generated, reference = tmp_path_factory.mktemp("generated"), tmp_path_factory.mktemp("reference")
    for i, path in enumerate(files):
        shutil.copyfile(path, (generated if i % 2 else reference) / path.name)
    return generated, reference


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding a tiny untrained transformer."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = MusicTransformerVAEGAN.from_preset("tiny", table=TokenTable(**model_tables()))
    save_weights(model, run / "model.safetensors", {"vocab_version": VOCAB_VERSION})
    return run


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_json_has_per_file_metrics_then_set_results(aurl: Invoke, sets: tuple[Path, Path]) -> None:
    result = aurl("evaluate", sets[0], "--reference", sets[1], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[0] == "files"
    assert {"features", "frechet_feature_distance", "memorisation", "reference", "likelihood"} <= set(data)
    first = data["files"][0]
    assert Path(first["file"]).parent == sets[0] and set(first["metrics"]) == set(SCALAR_FEATURES)
    assert first["metrics"]["pitch_range"] > 12
    assert (data["n_generated"], data["n_reference"]) == (4, 4)
    assert data["reference"] == str(sets[1]) and data["likelihood"] is None and data["rejected"] == []


def test_without_reference_the_bundled_test_split_is_named(aurl: Invoke, sets: tuple[Path, Path]) -> None:
    result = aurl("evaluate", sets[0], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n_reference"] == len(bach_files("test")) == 40
    assert data["reference"] == "the bundled Bach chorales, test split"
    table = aurl("evaluate", sets[0])
    assert "the bundled Bach chorales, test split" in table.stdout


def test_the_table_and_the_report_file(aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "reports" / "report.json"
    result = aurl("evaluate", sets[0], "-r", sets[1], "--out", out)
    assert result.exit_code == 0, result.output
    for label in ("Fréchet feature distance", "memorisation", "pitch_range", "OA", "KLD", "generated mean"):
        assert label in result.stdout
    assert not result.stdout.lstrip().startswith("{")
    report = json.loads(out.read_text())
    assert report["n_generated"] == 4 and len(report["files"]) == 8
    assert [p.name for p in out.parent.iterdir()] == ["report.json"]  # no temporary file left
    both = aurl("evaluate", sets[0], "-r", sets[1], "--out", out, "--json")
    assert json.loads(both.stdout) == json.loads(out.read_text())


def test_checkpoint_adds_the_likelihood(aurl: Invoke, sets: tuple[Path, Path], run_dir: Path) -> None:
    result = aurl("evaluate", sets[0], "-r", sets[1], "--checkpoint", run_dir, "--json")
    assert result.exit_code == 0, result.output
    likelihood = json.loads(result.stdout)["likelihood"]
    assert likelihood["checkpoint"] == str(run_dir / "model.safetensors")
    assert likelihood["n_pieces"] == 4 and likelihood["latent"] == "none"
    assert 8 < likelihood["bits_per_token"] < 11  # untrained: about log2(774)
    assert (
        likelihood["bits_per_note"] > likelihood["bits_per_token"] > 0 and likelihood["bits_per_second"] > 0
    )
    windowed = aurl(
        "evaluate", sets[0], "-r", sets[1], "--checkpoint", run_dir, "--max-context", "128", "--json"
    )
    assert json.loads(windowed.stdout)["likelihood"]["n_windows"] > 4
    table = aurl("evaluate", sets[0], "-r", sets[1], "--checkpoint", run_dir)
    assert "bits/token" in table.stdout and "bits/note" in table.stdout


def test_a_checkpoint_of_another_vocabulary_exits_1(
    aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "old.safetensors"
    save_weights(MusicTransformerVAEGAN.from_preset("tiny"), path, {"vocab_version": "aurl-events-v0"})
    result = aurl("evaluate", sets[0], "-r", sets[1], "--checkpoint", path, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert "aurl-events-v0" in one_error_line(result)


def test_a_bad_file_is_listed_and_exits_3(
    aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = tmp_path / "generated"
    shutil.copytree(sets[0], generated)
    (generated / "broken.mid").write_bytes(b"MThd nonsense")
    result = aurl("evaluate", generated, "-r", sets[1], "--json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in data["rejected"]] == ["broken.mid"] and data["n_generated"] == 4
    assert result.stderr.strip().splitlines()[-1].startswith("warning: 1 of 9 files rejected")
    monkeypatch.chdir(tmp_path)  # a short relative path, which the table's file column does not fold
    table = aurl("evaluate", "generated", "-r", sets[1])
    assert table.exit_code == 3 and "rejected files (1)" in table.stdout
    assert "generated/broken.mid" in table.stdout


def test_no_readable_file_exits_1(aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "a.mid").write_bytes(b"")
    (tmp_path / "b.mid").write_bytes(b"MThd")
    result = aurl("evaluate", tmp_path, "-r", sets[1], "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert "none of the 2 MIDI files in the generated set" in one_error_line(result)


@pytest.mark.parametrize("where", ["generated", "reference", "training", "checkpoint"])
def test_a_missing_path_exits_2(aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path, where: str) -> None:
    missing = tmp_path / "nowhere"
    args: list[Any] = [sets[0], "-r", sets[1]]
    if where == "generated":
        args[0] = missing
    elif where == "reference":
        args[2] = missing
    else:
        args += [f"--{where}", missing]
    result = aurl("evaluate", *args, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert str(missing) in one_error_line(result)


def test_plots_one_histogram_per_feature(aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = aurl("evaluate", sets[0], "-r", sets[1], "--plot", tmp_path / "plots", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_generated"] == 4
    assert (tmp_path / "plots" / "pitch_range.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_exits_1_before_the_work(
    aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = aurl("evaluate", sets[0], "-r", sets[1], "--plot", tmp_path / "plots", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert "pip install 'aurl[plot]'" in one_error_line(result)
    assert not (tmp_path / "plots").exists()


def test_a_missing_bundled_model_exits_1(
    aurl: Invoke, sets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aurl.models.bundled as bundled

    monkeypatch.setattr(bundled, "bundled_dir", lambda: tmp_path)
    result = aurl("evaluate", sets[0], "-r", sets[1], "--checkpoint", "bundled", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert "bundled model is missing" in one_error_line(result)
