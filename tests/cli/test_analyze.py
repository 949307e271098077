"""`aurl analyze` through CliRunner and as the installed console script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aurl.analyze import AnalysisResult
from aurl.cli.analyze import plot_paths

Invoke = Callable[..., Any]
KEY = re.compile(r"^[A-G](#|b)? (major|minor)$")
FIELDS = {
    "file",
    "key",
    "key_confidence",
    "tempo_bpm",
    "time_signature",
    "chords",
    "sections",
    "phrases",
    "motifs",
}


@pytest.fixture()
def aurl(runner: CliRunner) -> Invoke:
    from aurl.cli.app import app

    def invoke(*args: str | Path) -> Any:
        return runner.invoke(app, [str(arg) for arg in args])

    return invoke


def one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def check_analysis(item: dict[str, Any], path: Path) -> None:
    assert set(item) >= FIELDS and item["file"] == str(path)
    assert KEY.match(item["key"]), item["key"]
    assert 0.5 < item["key_confidence"] <= 1.0 and 30 <= item["tempo_bpm"] <= 240
    assert re.match(r"^\d+/\d+$", item["time_signature"])
    assert item["chords"] and {"start_beats", "end_beats", "symbol", "roman"} <= set(item["chords"][0])
    assert item["phrases"] and item["phrases"][-1]["end_beats"] > item["phrases"][0]["start_beats"]
    assert isinstance(item["sections"], list) and isinstance(item["motifs"], list)


def test_json_of_one_chorale(aurl: Invoke, chorale_paths: list[Path]) -> None:
    result = aurl("analyze", chorale_paths[0], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"analyses", "rejected"} and data["rejected"] == []
    assert len(data["analyses"]) == 1
    check_analysis(data["analyses"][0], chorale_paths[0])
    AnalysisResult.model_validate(data["analyses"][0])


def test_folders_and_a_bad_file_exit_3(aurl: Invoke, chorale_folder: Path) -> None:
    (chorale_folder / "broken.mid").write_bytes(b"MThd nonsense")
    result = aurl("analyze", chorale_folder, "--json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert len(data["analyses"]) == 10 and [Path(r["file"]).name for r in data["rejected"]] == ["broken.mid"]
    for item in data["analyses"]:
        check_analysis(item, Path(item["file"]))
    assert result.stderr.strip().splitlines()[-1].startswith("warning: 1 of 11 files rejected")


def test_tables_for_one_file_and_for_several(aurl: Invoke, chorale_paths: list[Path], tmp_path: Path) -> None:
    one = aurl("analyze", chorale_paths[0])
    assert one.exit_code == 0
    key = json.loads(aurl("analyze", chorale_paths[0], "--json").stdout)["analyses"][0]["key"]
    for label in ("key", key, "tempo", "metre", "progression", "sections", "phrases", "motifs"):
        assert label in one.stdout
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"")
    several = aurl("analyze", *chorale_paths[:3], broken)
    assert several.exit_code == 3
    assert "analyze (3 files)" in several.stdout and "rejected files (1)" in several.stdout
    assert all(p.name in several.stdout for p in chorale_paths[:3])


def test_nothing_readable_exits_1(aurl: Invoke, tmp_path: Path) -> None:
    (tmp_path / "a.mid").write_bytes(b"")
    result = aurl("analyze", tmp_path / "a.mid", "--json")
    assert result.exit_code == 1
    assert "could be read" in one_error_line(result)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no MIDI file found" in one_error_line(aurl("analyze", empty))


def test_a_missing_path_exits_2(aurl: Invoke, chorale_paths: list[Path], tmp_path: Path) -> None:
    result = aurl("analyze", chorale_paths[0], tmp_path / "nowhere.mid", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert "nowhere.mid" in one_error_line(result)


def test_plot_names() -> None:
    def named(*files: str) -> list[AnalysisResult]:
        return [AnalysisResult.model_construct(file=f) for f in files]

    assert plot_paths(Path("out/a.png"), named("x/song.mid")) == [Path("out/a.png")]
    assert plot_paths(Path("a"), named("song.mid")) == [Path("a.png")]
    assert plot_paths(Path("out/a.svg"), named("x/one.mid", "x/two.mid", "y/one.mid")) == [
        Path("out/a-one.svg"),
        Path("out/a-two.svg"),
        Path("out/a-one-2.svg"),
    ]


def test_plots_one_image_per_file(aurl: Invoke, chorale_paths: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    single = aurl("analyze", chorale_paths[0], "--plot", tmp_path / "one.png")
    assert single.exit_code == 0 and (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"
    result = aurl("analyze", *chorale_paths[:2], "--plot", tmp_path / "many" / "out.png", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["analyses"]) == 2
    written = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert written == sorted(f"out-{p.stem}.png" for p in chorale_paths[:2])


def test_plot_without_matplotlib_exits_1(
    aurl: Invoke, chorale_paths: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = aurl("analyze", chorale_paths[0], "--plot", tmp_path / "a.png")
    assert result.exit_code == 1 and result.stdout == ""
    assert "matplotlib" in one_error_line(result)


def test_installed_console_script(aurl_script: Path, chorale_paths: list[Path]) -> None:
    done = subprocess.run(
        [str(aurl_script), "-q", "analyze", str(chorale_paths[1]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    check_analysis(json.loads(done.stdout)["analyses"][0], chorale_paths[1])
    assert done.stderr == ""
