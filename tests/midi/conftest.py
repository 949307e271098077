"""Shared paths for the MIDI tests: the hand-made fixtures and the shared corpora (skipped when absent)."""

from __future__ import annotations

import csv
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "midi"
SHARED_DATA = REPO.parent / "shared" / "data"
CHORALES = SHARED_DATA / "bach-chorales"
REAL_WORLD = SHARED_DATA / "real-world"


@pytest.fixture(scope="session")
def chorale_dir() -> Path:
    if not CHORALES.is_dir():
        pytest.skip("../shared/data/bach-chorales is absent")
    return CHORALES


@pytest.fixture(scope="session")
def chorale_manifest(chorale_dir: Path) -> dict[str, dict[str, str]]:
    with open(chorale_dir / "manifest.csv", newline="", encoding="utf-8") as file:
        return {row["file"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="session")
def real_world_manifest() -> dict[str, dict[str, str]]:
    if not REAL_WORLD.is_dir():
        pytest.skip("../shared/data/real-world is absent")
    with open(REAL_WORLD / "manifest.csv", newline="", encoding="utf-8") as file:
        return {row["file"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def time_limit():  # type: ignore[no-untyped-def]
    """A context manager factory: `with time_limit(2): ...` fails with TimeoutError after 2 s."""
    return _time_limit


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Fail with TimeoutError when the body runs longer than `seconds` (catches a hang, not just slowness)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
