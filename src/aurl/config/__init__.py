"""Settings: one frozen section model per concern, `AurlSettings` composing them, `load_settings`.

Each section is a frozen pydantic model with `extra="forbid"`, so a typo is an error rather than a
silent default; every field's description is also its `--help` text and its entry in docs/config.md.
Sections live in their own modules (midi.py, model.py, ...); settings.py composes them.
"""

from aurl.config._base import SECTION, available_cores
from aurl.config.data import DataConfig
from aurl.config.midi import MidiConfig, PreprocessConfig
from aurl.config.model import MODEL_PRESETS, AttentionKind, ModelConfig, ModelMode
from aurl.config.sample import SampleConfig
from aurl.config.settings import CONFIG_SUFFIXES, AurlSettings, describe_validation_error, load_settings
from aurl.config.train import TrainConfig

__all__ = [
    "CONFIG_SUFFIXES",
    "MODEL_PRESETS",
    "SECTION",
    "AttentionKind",
    "AurlSettings",
    "DataConfig",
    "MidiConfig",
    "ModelConfig",
    "ModelMode",
    "PreprocessConfig",
    "SampleConfig",
    "TrainConfig",
    "available_cores",
    "describe_validation_error",
    "load_settings",
]
