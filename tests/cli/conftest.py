"""A CliRunner that keeps stdout and stderr apart on every supported Typer version."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


def make_runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # Typer < 0.16 (Click < 8.2)
    except TypeError:
        return CliRunner()  # newer: stdout and stderr are always apart


@pytest.fixture()
def runner() -> CliRunner:
    return make_runner()
