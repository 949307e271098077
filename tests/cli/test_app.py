"""The `aurl` app: version, help, global options, and the outcome -> exit code mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from aurl import __version__
from aurl.cli import _output
from aurl.cli._output import PartialSuccess
from aurl.cli.app import app, run_guarded
from aurl.errors import AurlError, ConfigError, DataError, MidiError, UsageError


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aurl {__version__}"


def test_help_lists_the_commands_that_exist(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "preprocess" in command_names()
    for name in command_names():
        assert name in result.stdout
    for flag in ("--version", "--verbose", "--quiet"):
        assert flag in result.stdout


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_with_an_example(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert f"Example: aurl {name}" in result.stdout


def test_bare_aurl_shows_the_usage(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code in (0, 2)  # Click >= 8.2 treats a bare group as a usage error
    assert "Usage" in result.output and "preprocess" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["preprocess", "--no-such-flag"], "--no-such-flag"),
        (["preprocess", "--workers", "zero"], "--workers"),
        (["preprocess", "--workers", "0"], "--workers"),
        (["nonsense"], "nonsense"),
        (["--verbose", "--quiet", "preprocess"], "contradict"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(runner: CliRunner, args: list[str], fragment: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_python_dash_m_aurl_runs_the_app() -> None:
    done = subprocess.run([sys.executable, "-m", "aurl", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"aurl {__version__}"


def test_python_dash_m_aurl_maps_usage_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aurl", "preprocess", "--bogus"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def raiser(error: BaseException):  # type: ignore[no-untyped-def]
    def invoke() -> None:
        raise error

    return invoke


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (AurlError("the thing broke"), 1, "error: the thing broke"),
        (MidiError("song.mid: truncated"), 1, "error: song.mid: truncated"),
        (DataError("no MIDI files"), 1, "error: no MIDI files"),
        (ConfigError("invalid setting 'x' = 1"), 2, "error: invalid setting 'x' = 1"),
        (UsageError("input 'x' does not exist"), 2, "error: input 'x' does not exist"),
        (PartialSuccess("2 of 9 files rejected"), 3, "warning: 2 of 9 files rejected"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_outcomes_map_to_exit_codes(
    error: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_guarded(raiser(error)) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == line + "\n"


def test_success_and_explicit_exit_codes() -> None:
    assert run_guarded(lambda: None) == 0
    assert run_guarded(lambda: 0) == 0
    assert run_guarded(lambda: 4) == 4  # Click returns the code of a typer.Exit
    assert run_guarded(raiser(typer.Exit(5))) == 5


def test_a_multi_line_message_is_printed_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(raiser(AurlError("first\nsecond"))) == 1
    assert capsys.readouterr().err == "error: first second\n"


def test_bugs_propagate_with_their_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        run_guarded(raiser(ZeroDivisionError("a bug")))


def test_traceback_with_aurl_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AURL_DEBUG", "1")
    assert run_guarded(raiser(DataError("no data"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no data\n") and "Traceback" in err


def test_traceback_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    def verbose_failure() -> None:
        _output.configure(verbose=True, quiet=False)
        raise DataError("no data")

    assert run_guarded(verbose_failure) == 1
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_during_a_command_exits_130(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import aurl.data.preprocess

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a run

    monkeypatch.setattr(aurl.data.preprocess, "preprocess", interrupted)
    result = runner.invoke(app, ["preprocess", "--out", str(tmp_path)])
    assert result.exit_code == 130
    assert "Traceback" not in result.output
