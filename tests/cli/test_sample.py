"""`aurl sample` through CliRunner: results, files, and every bad input as one line with its exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from aurl.models import MusicTransformerVAEGAN
from aurl.models import bundled as bundled_module
from sample.builders import piece_paths, save, table


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny models as weights files: the command's behaviour does not depend on quality."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for mode in ("transformer", "vae"):
        torch.manual_seed(0)
        out[mode] = save(
            MusicTransformerVAEGAN.from_preset("tiny", mode=mode, table=table()),
            folder / f"{mode}.safetensors",
        )
    return out


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models decode fastest on one thread, and stay fast when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def aurl(runner: CliRunner):  # type: ignore[no-untyped-def]
    from aurl.cli.app import app

    def invoke(*args: str | Path) -> Any:
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


def one_error_line(result: Any) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_json_result_and_files(aurl: Any, models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "songs"
    result = aurl(
        "sample",
        "-m",
        models["transformer"],
        "-o",
        out,
        "-n",
        "2",
        "--seed",
        "4",
        "--length",
        "60",
        "--key",
        "D minor",
        "--program",
        "0",
        "--program",
        "drums",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["seed"] == 4 and len(data["pieces"]) == 2 and data["mode"] == "transformer"
    assert data["settings"]["programs"] == [0, 128] and data["settings"]["key"] == "D minor"
    assert all(Path(p["path"]).is_file() and p["skipped_tokens"] == 0 for p in data["pieces"])
    assert all(p["new_tokens"] <= 60 for p in data["pieces"])


def test_the_same_command_twice_writes_the_same_bytes(
    aurl: Any, models: dict[str, Path], tmp_path: Path
) -> None:
    for name in ("a.mid", "b.mid"):
        result = aurl(
            "sample",
            "-m",
            models["transformer"],
            "-o",
            tmp_path / name,
            "--seed",
            "9",
            "--bars",
            "2",
            "--temperature",
            "0.9",
            "--top-p",
            "0.95",
            "--top-k",
            "40",
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compiled", [False, True], ids=["graph", "compiled graph"])
def test_sampling_on_a_gpu(aurl: Any, models: dict[str, Path], tmp_path: Path, compiled: bool) -> None:
    """--device cuda (and --compile) give the pieces the CPU gives for the same seed."""
    args = ["-m", models["transformer"], "-n", "2", "--seed", "9", "--length", "120", "--json"]
    cpu = json.loads(aurl("sample", *args, "-o", tmp_path / "cpu").stdout)
    gpu_args = [*args, "-o", tmp_path / "gpu", "--device", "cuda", *(["--compile"] if compiled else [])]
    result = aurl("sample", *gpu_args)
    assert result.exit_code == 0, result.output
    gpu = json.loads(result.stdout)
    assert gpu["settings"]["compile"] is compiled
    same = ("tokens", "notes", "bars", "ended_by")  # the files differ only in their settings text
    assert [[p[k] for k in same] for p in gpu["pieces"]] == [[p[k] for k in same] for p in cpu["pieces"]]


def test_human_output_is_a_table(aurl: Any, models: dict[str, Path], tmp_path: Path) -> None:
    result = aurl(
        "sample", "-m", models["transformer"], "-o", tmp_path / "x.mid", "--seed", "1", "--bars", "1"
    )
    assert result.exit_code == 0, result.output
    for label in ("checkpoint sha256", "seed", "pieces (1)", "x.mid"):
        assert label in result.stdout


def test_the_bundled_model_is_the_default(
    aurl: Any, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / bundled_module.BUNDLED_FILE).write_bytes(models["transformer"].read_bytes())
    monkeypatch.setattr(bundled_module, "bundled_dir", lambda: shipped)
    monkeypatch.chdir(tmp_path)
    result = aurl("sample", "--out", "song.mid", "--bars", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "song.mid").is_file()


def test_vae_tasks(aurl: Any, models: dict[str, Path], tmp_path: Path) -> None:
    a, b = piece_paths()
    result = aurl(
        "sample",
        "-m",
        models["vae"],
        "--interpolate",
        a,
        b,
        "--steps",
        "2",
        "-o",
        tmp_path / "i",
        "--seed",
        "0",
        "--max-tokens",
        "64",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert [Path(p["path"]).name for p in json.loads(result.stdout)["pieces"]] == [
        "step-000.mid",
        "step-001.mid",
    ]
    result = aurl(
        "sample", "-m", models["vae"], "--reconstruct", a, "-o", tmp_path / "r.mid", "--max-tokens", "64"
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-m", "{tmp}/nothing.safetensors"], 2, "does not exist"),
        (["-m", "{corrupt}"], 1, "cannot read model file"),
        (["-m", "{old_vocab}"], 1, "vocabulary"),
        (["--primer", "{not_midi}"], 1, "not a MIDI file"),
        (["--primer", "{tmp}/nothing.mid"], 2, "--primer '"),
        (["--interpolate", "{midi}", "{tmp}/nothing.mid", "-o", "{tmp}/steps"], 2, "does not exist"),
        (["--scale", ""], 2, "empty scale"),
        (["--pitch-range", "0-200"], 2, "outside 0..127"),
        (["--key", "H minor"], 2, "not a key"),
        (["--max-polyphony", "0"], 2, "max_polyphony"),
        (["--time-signature", "3/5"], 2, "time-signature"),
        (["--program", "flute"], 2, "--program 'flute'"),
        (["--format", "wav"], 2, "sample.format"),
        (["--top-p", "1.5"], 2, "sample.top_p"),
        (["--timing", "free"], 2, "sample.timing"),
        (["--reconstruct", "{midi}"], 2, "needs a vae or vae_gan model"),
        (["--interpolate", "{midi}", "{midi}", "-o", "{tmp}/steps"], 2, "needs a vae or vae_gan model"),
        (["--beam", "2", "-n", "3"], 2, "exceeds --beam"),
        (["-n", "2", "-o", "{tmp}/one.mid"], 2, "names one file"),
        (["-m", "{sliding}", "--compile"], 2, "--compile needs a full-attention model"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_input_is_one_line_and_an_exit_code(
    aurl: Any, models: dict[str, Path], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file at all")
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("hello")
    old_vocab = save(
        MusicTransformerVAEGAN.from_preset("tiny", table=table()), tmp_path / "old.safetensors", "v0"
    )
    sliding = save(
        MusicTransformerVAEGAN.from_preset("tiny", table=table(), attention="sliding"),
        tmp_path / "sliding.safetensors",
    )
    values = {
        "tmp": tmp_path,
        "corrupt": corrupt,
        "not_midi": not_midi,
        "old_vocab": old_vocab,
        "sliding": sliding,
        "midi": piece_paths()[0],
    }
    filled = [arg.format(**values) for arg in args]
    if "-m" not in filled:
        filled = ["-m", str(models["transformer"]), *filled]
    if "-o" not in filled:
        filled += ["-o", str(tmp_path / "out.mid")]
    result = aurl("sample", *filled, "--bars", "1")
    assert result.exit_code == code, result.output
    assert message in one_error_line(result)


def test_musicxml_without_music21_is_one_line(
    aurl: Any, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "music21", None)  # what `import music21` meets when it is absent
    result = aurl("sample", "-m", models["transformer"], "-f", "musicxml", "-o", tmp_path / "x.musicxml")
    assert result.exit_code == 2
    assert "music21" in one_error_line(result)
