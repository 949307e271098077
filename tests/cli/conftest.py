"""A CliRunner that keeps stdout and stderr apart on every supported Typer version, on a wide terminal."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

# Rich tables fit the terminal; at 80 columns a long tmp_path wraps inside its cell and a test that
# looks for a file name in the output would miss it.
WIDE = {"COLUMNS": "400"}


def make_runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False, env=WIDE)  # type: ignore[call-arg]  # Typer < 0.16 (Click < 8.2)
    except TypeError:
        return CliRunner(env=WIDE)  # newer: stdout and stderr are always apart


@pytest.fixture()
def runner() -> CliRunner:
    return make_runner()
