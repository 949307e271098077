"""The model that ships in the package: present, small, of this vocabulary, and it writes chorales."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from aurl.config import load_settings
from aurl.config.sample import RECOMMENDED_KEY, recommended
from aurl.midi import read_midi
from aurl.models import read_metadata
from aurl.models.bundled import bundled_model_path
from aurl.sample import sample
from aurl.tokens import VOCAB_VERSION, count_invalid, encode

MAX_BYTES = 10 * 1024 * 1024  # issue 5: the shipped weights stay within 10 MB


def test_the_shipped_file_is_small_and_describes_itself() -> None:
    path = bundled_model_path()
    assert path.stat().st_size <= MAX_BYTES
    meta = read_metadata(path)
    assert meta["vocab_version"] == VOCAB_VERSION
    assert json.loads(meta["aurl.model_config"])["mode"] == "vae"  # prior, primer and interpolation
    assert meta["weights_dtype"] == "fp16"


def test_the_shipped_file_recommends_its_recipes_sampling_settings() -> None:
    """Retraining with new [sample] settings but shipping the old file would silently keep the old ones."""
    recipe = resources.files("aurl") / "configs" / "bach-small.toml"  # shipped with the package
    wanted = recommended(load_settings(config_file=Path(str(recipe))).sample)
    assert wanted["temperature"] > 0  # the recipe does recommend settings
    assert json.loads(read_metadata(bundled_model_path())[RECOMMENDED_KEY]) == wanted


def test_the_shipped_file_was_built_with_the_recipes_model_section() -> None:
    """A model setting changed in the recipe (shared_pitch_rows, say) but not retrained would go unseen."""
    recipe = resources.files("aurl") / "configs" / "bach-small.toml"
    model = load_settings(config_file=Path(str(recipe))).model
    shipped = json.loads(read_metadata(bundled_model_path())["aurl.model_config"])
    given = model.model_fields_set
    assert "shared_pitch_rows" in given
    assert {k: shipped[k] for k in given} == model.model_dump(mode="json", include=given)


def test_it_writes_four_grammatical_voices(tmp_path: Path) -> None:
    settings = load_settings(overrides={"sample.seed": 3, "sample.bars": 4, "sample.num": 2})
    result = sample(settings, out=tmp_path)
    assert [p.skipped_tokens for p in result.pieces] == [0, 0]
    for piece in result.pieces:
        score = read_midi(piece.path)
        assert count_invalid(encode(score)) == 0
        assert len(np.unique(score.track)) == 4, "a chorale has soprano, alto, tenor and bass"
        assert piece.bars >= 4 and score.n_notes >= 16


def test_the_readme_command_writes_song_mid(tmp_path: Path) -> None:
    """`aurl sample --out song.mid` with no other flag: the README's first command, as a user runs it."""
    env = {**os.environ, "AURL_SAMPLE__SEED": "1"}  # the one setting fixed, so the test is repeatable
    done = subprocess.run(
        [sys.executable, "-m", "aurl", "sample", "--out", "song.mid"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert read_midi(tmp_path / "song.mid").n_notes > 0
