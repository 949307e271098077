"""Fixtures shared by every test package: real data, and a clean environment for settings."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aurl.data.corpus import bach_files

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
N_CHORALES = 10


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests run tiny models, fastest on one thread, and stay fast when other processes share the
    cores; a test that needs more threads sets them itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`<repo>/../shared/data` (the developers' data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_world_dir(shared_data: Path) -> Path:
    """The 112 messy MIDI files other projects test with (never copied into the repository)."""
    path = shared_data / "real-world"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def chorale_paths() -> list[Path]:
    """Ten bundled chorales (package data, so always present), spread over the corpus."""
    files = bach_files()
    step = len(files) // N_CHORALES
    return files[::step][:N_CHORALES]


@pytest.fixture()
def chorale_folder(tmp_path: Path, chorale_paths: list[Path]) -> Path:
    """A fresh folder holding copies of the ten chorales."""
    folder = tmp_path / "chorales"
    folder.mkdir()
    for path in chorale_paths:
        shutil.copyfile(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def _sandbox_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("xdg")
    return {name: str(base / name) for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")}


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch, _sandbox_dirs: dict[str, str]) -> None:
    """No AURL_* variable of the developer's, and user folders (config, cache) in a sandbox."""
    for name in [name for name in os.environ if name.upper().startswith("AURL_")]:
        monkeypatch.delenv(name)
    for name, value in _sandbox_dirs.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def aurl_script() -> Path:
    """The installed `aurl` console script beside this interpreter; skips when aurl is not installed."""
    script = Path(sys.executable).parent / ("aurl.exe" if os.name == "nt" else "aurl")
    if not script.is_file():
        pytest.skip(f"no installed aurl script at {script}")
    return script
