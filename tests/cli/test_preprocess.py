"""`aurl preprocess` through CliRunner and as the installed console script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aurl.data.cache import TokenCache
from aurl.tokens.vocab import VOCAB_SIZE

Invoke = Callable[..., Any]  # aurl(*args, env=None) -> the CliRunner result
SUMMARY_FIELDS = {
    "files_total",
    "files_ok",
    "files_repaired",
    "files_rejected",
    "rejected",
    "tokens_total",
    "vocab_size",
    "seconds",
    "out_dir",
    "cache_hits",
}


@pytest.fixture()
def aurl(runner: CliRunner):  # type: ignore[no-untyped-def]
    """Run `aurl ARGS...` in-process; returns the CliRunner result."""
    from aurl.cli.app import app

    def invoke(*args: str | Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [str(arg) for arg in args], env=env)

    return invoke


def summary(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout)


def test_json_summary_of_ten_chorales_then_all_cache_hits(
    aurl: Invoke, chorale_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cache"
    first = aurl("preprocess", chorale_folder, "--out", out, "--workers", "1", "--json")
    assert first.exit_code == 0, first.output
    data = summary(first)
    assert set(data) >= SUMMARY_FIELDS
    assert (data["files_total"], data["files_ok"], data["files_rejected"], data["cache_hits"]) == (
        10,
        10,
        0,
        0,
    )
    assert data["rejected"] == [] and data["vocab_size"] == VOCAB_SIZE and data["tokens_total"] > 1000
    assert Path(data["out_dir"]) == out and (out / "manifest.json").is_file()
    again = aurl("preprocess", chorale_folder, "--out", out, "--json")
    assert again.exit_code == 0
    assert summary(again)["cache_hits"] == 10
    assert summary(again)["tokens_total"] == data["tokens_total"]


def test_human_output_is_a_table_on_stdout(aurl: Invoke, chorale_folder: Path, tmp_path: Path) -> None:
    result = aurl("preprocess", chorale_folder, "--out", tmp_path / "cache", "-j", "2")
    assert result.exit_code == 0, result.output
    for label in ("MIDI files", "read", "rejected", "cache hits", "tokens", "vocabulary size", "seconds"):
        assert label in result.stdout
    assert "774" in result.stdout


@pytest.fixture()
def mixed_folder(chorale_folder: Path) -> Path:
    (chorale_folder / "sub").mkdir()
    (chorale_folder / "sub" / "corrupt.mid").write_bytes(
        b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff"
    )
    (chorale_folder / "liner-notes.txt").write_text("not a MIDI file")
    return chorale_folder


def test_some_rejected_exits_3_and_lists_them(aurl: Invoke, mixed_folder: Path, tmp_path: Path) -> None:
    result = aurl("preprocess", mixed_folder, "--out", tmp_path / "cache", "--json")
    assert result.exit_code == 3, result.output
    data = summary(result)
    assert (data["files_total"], data["files_ok"], data["files_rejected"]) == (11, 10, 1)
    assert [Path(r["path"]).name for r in data["rejected"]] == ["corrupt.mid"]
    assert data["rejected"][0]["reason"]
    assert "liner-notes" not in result.stdout, "non-MIDI files are skipped, not rejected"
    assert (
        result.stderr.strip().splitlines()[-1]
        == "warning: 1 of 11 files rejected; each is listed with its reason"
    )


def test_some_rejected_human_output_names_file_and_reason(
    aurl: Invoke, mixed_folder: Path, tmp_path: Path
) -> None:
    result = aurl("preprocess", mixed_folder, "--out", tmp_path / "cache")
    assert result.exit_code == 3
    assert "corrupt.mid" in result.stdout and "rejected files (1)" in result.stdout
    reason = TokenCache(tmp_path / "cache").manifest().rejected[0].reason
    assert reason.split()[0] in result.stdout


def test_nothing_readable_exits_1_with_one_line(aurl: Invoke, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.mid").write_bytes(b"")
    (folder / "text.midi").write_text("hello")
    result = aurl("preprocess", folder, "--out", tmp_path / "cache", "--json")
    assert result.exit_code == 1
    assert summary(result)["files_rejected"] == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the 2 files could be read")


def test_a_folder_without_midi_files_exits_1(aurl: Invoke, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing")
    result = aurl("preprocess", tmp_path, "--out", tmp_path / "cache")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no MIDI files") and result.stderr.count("\n") == 1


def test_a_missing_input_exits_2_with_one_line(aurl: Invoke, tmp_path: Path) -> None:
    result = aurl("preprocess", tmp_path / "nowhere", "--out", tmp_path / "cache")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "nowhere" in result.stderr and "does not exist" in result.stderr


def test_settings_from_config_file_and_env(aurl: Invoke, chorale_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"preprocess:\n  out_dir: {tmp_path / 'from-file'}\n  workers: 2\n", encoding="utf-8")
    result = aurl(
        "preprocess", chorale_folder, "--config", config, "--json", env={"AURL_PREPROCESS__WORKERS": "1"}
    )
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert Path(data["out_dir"]) == tmp_path / "from-file"
    assert data["workers"] == 1, "the environment overrides the file"


def test_bad_env_setting_exits_2(aurl: Invoke, chorale_folder: Path, tmp_path: Path) -> None:
    result = aurl("preprocess", chorale_folder, "--out", tmp_path, env={"AURL_PREPROCESS__WORKERS": "many"})
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "preprocess.workers" in result.stderr and "'many'" in result.stderr


def test_no_input_reads_the_bundled_chorales(aurl: Invoke, tmp_path: Path) -> None:
    result = aurl("preprocess", "--out", tmp_path / "bach", "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert data["files_total"] == data["files_ok"] == 409


def test_installed_console_script(aurl_script: Path, chorale_paths: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cache"
    done = subprocess.run(
        [
            str(aurl_script),
            "-q",
            "preprocess",
            *map(str, chorale_paths[:3]),
            "--out",
            str(out),
            "-j",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["files_ok"] == 3 and data["workers"] == 2
    assert len(TokenCache(out).keys()) == 3
    assert done.stderr == "", "-q leaves stderr empty on success"


def written(cache: Path) -> bool:
    """Has some run written a cache entry into `cache`?"""
    return any(pack.stat().st_size for pack in cache.glob("packs/*.pack"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and signals")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_exits_130_without_tracebacks(tmp_path: Path, workers: str) -> None:
    out = tmp_path / "cache"
    process = subprocess.Popen(
        [sys.executable, "-m", "aurl", "preprocess", "--out", str(out), "-j", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # restore the default action of SIGINT, which a runner started in the background ignores
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not written(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.rstrip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert not (out / "manifest.json").exists()
    assert TokenCache(out).stored_keys(), "entries written before the interrupt stay"
