"""Fixtures for the training tests: ten real chorales with their token cache, and tiny-run settings."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aurl.config import AurlSettings, load_settings
from aurl.data import load_training_data

Settings = Callable[..., AurlSettings]


@pytest.fixture(scope="session")
def ten_chorales(tmp_path_factory: pytest.TempPathFactory, chorale_paths: list[Path]) -> Path:
    """A folder of ten bundled chorales (shared by every training test of the session)."""
    folder = tmp_path_factory.mktemp("ten-chorales")
    for path in chorale_paths:
        shutil.copyfile(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def token_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where training runs keep the ten chorales' token cache (built once per session)."""
    return tmp_path_factory.mktemp("token-cache")


def tiny_overrides(folder: Path, cache: Path, mode: str = "transformer") -> dict[str, Any]:
    """Settings of a tiny, fast CPU run over `folder`: short sequences, frequent checkpoints."""
    return {
        "model.mode": mode,
        "data.data": [folder],
        "data.cache_dir": cache,
        "data.batch_size": 4,
        "data.seq_len": 128,
        "data.workers": 0,
        "train.device": "cpu",
        "train.lr": 3e-3,
        "train.warmup_steps": 4,
        "train.max_steps": 30,
        "train.log_every": 1,
        "train.eval_every": 10,
        "train.checkpoint_every": 10,
        "train.eval_batches": 2,
        "train.quality_samples": 0,
        "train.adversarial_start": 5,
        "preprocess.workers": 1,
    }


@pytest.fixture()
def tiny_settings(ten_chorales: Path, token_cache: Path) -> Settings:
    """`tiny_settings(mode, **{"train.max_steps": 12})`: tiny-preset settings over ten chorales."""
    from aurl.train import with_preset

    def make(mode: str = "transformer", **overrides: Any) -> AurlSettings:
        flat = {**tiny_overrides(ten_chorales, token_cache, mode), **overrides}
        return with_preset(load_settings(overrides=flat), "tiny")

    # Build the cache once, outside any timed or interrupted run.
    load_training_data(make().data, seed=0)
    return make
