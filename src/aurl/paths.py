"""Default locations on disk (platformdirs), each of which a flag or setting can override."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "aurl"


def cache_dir() -> Path:
    """Where token caches go unless `--out` or `AURL_CACHE_DIR` says otherwise."""
    return Path(platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    """Where training runs go unless `--run-dir` says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """Where the user's `config.toml` is looked for."""
    return Path(platformdirs.user_config_dir(APP_NAME))


def package_dir() -> Path:
    """The installed package, for bundled data (read only: nothing is ever written here)."""
    return Path(__file__).resolve().parent
