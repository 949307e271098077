"""Settings for reading MIDI files and building the token cache."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from aurl import paths
from aurl.config._base import SECTION, available_cores


class MidiConfig(BaseModel):
    """How MIDI files are read."""

    model_config = SECTION

    sustain_pedal: bool = Field(
        default=False,
        description="Extend notes held by the sustain pedal (CC64) to the pedal's release, "
        "as piano performances need; off keeps notes as written.",
    )


class PreprocessConfig(BaseModel):
    """How `aurl preprocess` turns MIDI files into the token cache."""

    model_config = SECTION

    workers: int = Field(
        default_factory=available_cores,
        ge=1,
        description="Processes that read MIDI files in parallel (default: all cores; 1 reads in-process).",
    )
    out_dir: Path = Field(
        default_factory=lambda: paths.cache_dir() / "tokens",
        description="Folder of the token cache and its manifest.json (default: the user cache folder).",
    )
