"""AurlSettings, which composes the sections, and load_settings, which resolves them.

Precedence, highest first: a command-line flag (`overrides`), an environment variable
(`AURL_<SECTION>__<KEY>`, e.g. `AURL_PREPROCESS__WORKERS=2`), the config file (`--config FILE`,
TOML or YAML, else `config.toml` in the user config folder when it exists), the default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from aurl import paths
from aurl.config.data import DataConfig
from aurl.config.midi import MidiConfig, PreprocessConfig
from aurl.config.model import ModelConfig
from aurl.config.sample import SampleConfig
from aurl.config.train import TrainConfig
from aurl.errors import ConfigError

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


# The file named by load_settings() for the duration of one AurlSettings() construction. A context
# variable rather than a class attribute, so that two threads loading two files cannot mix them up.
_config_file: ContextVar[Path | None] = ContextVar("aurl_config_file", default=None)


class AurlSettings(BaseSettings):
    """All of aurl's settings, one attribute per section."""

    model_config = SettingsConfigDict(
        env_prefix="AURL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    midi: MidiConfig = Field(default_factory=MidiConfig, description="Reading MIDI files.")
    preprocess: PreprocessConfig = Field(
        default_factory=PreprocessConfig, description="Building the token cache."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The network and its losses.")
    data: DataConfig = Field(
        default_factory=DataConfig, description="Training data, batches and augmentation."
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig, description="Training: optimizer, checkpoints, monitoring."
    )
    sample: SampleConfig = Field(default_factory=SampleConfig, description="Sampling new music.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: flags (init) > environment > file. No .env files, no secrets dirs.
        config_file = _config_file.get()
        if config_file is None:
            return init_settings, env_settings
        if config_file.suffix.lower() == ".toml":
            return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file)
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls, config_file)


def load_settings(
    config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> AurlSettings:
    """Resolve the settings from flags, environment, a config file and defaults.

    Args:
        config_file: a TOML or YAML file; None uses `config.toml` in the user config folder
            (`aurl.paths.config_dir()`) when that exists, else no file.
        overrides: flag values by dotted key, e.g. `{"preprocess.workers": 2}`; None values are
            ignored, so an option the user did not give falls through to env, file and default.

    Raises:
        ConfigError: the file is missing or unparseable, or a value or key is not allowed
            (one line naming the key, the value and what is allowed).
    """
    path = _resolve_config_file(config_file)
    init = _nest({key: value for key, value in (overrides or {}).items() if value is not None})
    try:
        with _reading(path):
            return AurlSettings(**init)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, init, path)) from None
    except Exception as error:
        # Anything else comes from reading the file; without a file it is a bug and propagates.
        if path is None or not isinstance(error, (ValueError, TypeError, AttributeError, *_yaml_errors())):
            raise
        raise ConfigError(_describe_file_error(path, error)) from None


def _yaml_errors() -> tuple[type[Exception], ...]:
    import yaml  # only once something failed: keeps `import aurl.config` light

    return (yaml.YAMLError,)


def _describe_file_error(path: Path, error: Exception) -> str:
    """Why a config file could not be read: bad syntax, or a top level that is not a mapping."""
    try:
        data = _parse(path)
    except Exception as parse_error:
        lines = [line.strip() for line in str(parse_error).splitlines() if line.strip()]
        detail = _short("; ".join(lines) or type(parse_error).__name__, 200)
        return f"config file '{path}' is not valid {_format_name(path)}: {detail}"
    if not isinstance(data, dict):
        return (
            f"config file '{path}' holds a {type(data).__name__}; it must map section names to "
            "tables of keys, e.g. 'preprocess:' then '  workers: 2'"
        )
    return f"config file '{path}' could not be read: {error}"


def _parse(path: Path) -> Any:
    if path.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        return tomllib.loads(path.read_text(encoding="utf-8"))
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def _resolve_config_file(config_file: str | Path | None) -> Path | None:
    if config_file is None:
        default = paths.config_dir() / "config.toml"
        return default if default.is_file() else None
    path = Path(config_file)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(
            f"config file '{path}' has suffix '{path.suffix}'; expected one of {', '.join(CONFIG_SUFFIXES)}"
        )
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; check the path given to --config")
    return path


def _format_name(path: Path | None) -> str:
    return "TOML" if path is not None and path.suffix.lower() == ".toml" else "YAML"


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"preprocess.workers": 2} -> {"preprocess": {"workers": 2}}."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *sections, leaf = dotted.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return nested


def describe_validation_error(
    error: ValidationError, flags: Mapping[str, Any] | None = None, config_file: Path | None = None
) -> str:
    """One line for the first problem pydantic found: the dotted key, the value, what is allowed, where from.

    Args:
        error: what pydantic raised while building AurlSettings.
        flags: the nested overrides given as flags, to tell a flag's value from the environment's.
        config_file: the file that was read, if any.
    """
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = tuple(str(part) for part in first["loc"])
    key = ".".join(loc)
    value = _short_repr(first.get("input"))
    if first["type"] == "extra_forbidden":
        line = f"unknown setting '{key}' = {value}; allowed: {_allowed_keys(loc)}"
    else:
        line = f"invalid setting '{key}' = {value}: {first['msg'].rstrip('.')}"
    source = _source_of(loc, flags or {}, config_file)
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{line}{source}{more}"


def _source_of(loc: tuple[str, ...], flags: Mapping[str, Any], config_file: Path | None) -> str:
    node: Any = flags
    for part in loc:
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is not None:
        return " (from a command-line flag)"
    variable = "AURL_" + "__".join(loc).upper()
    if any(name.upper() == variable for name in os.environ):
        return f" (from the environment variable {variable})"
    return f" (from '{config_file}')" if config_file is not None else ""


def _allowed_keys(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = AurlSettings
    for part in loc[:-1]:
        if part not in model.model_fields:
            break
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    prefix = ".".join(loc[:-1])
    return ", ".join(f"{prefix}.{name}" if prefix else name for name in model.model_fields)


def _short_repr(value: Any) -> str:
    return _short(repr(value), 60)


def _short(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
