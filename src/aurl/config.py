"""Settings: the section models, `AurlSettings` that composes them, and `load_settings`.

Precedence, highest first: a command-line flag (`overrides`), an environment variable
(`AURL_<SECTION>__<KEY>`, e.g. `AURL_PREPROCESS__WORKERS=2`), the config file (`--config FILE`,
TOML or YAML, else `config.toml` in the user config folder when it exists), the default.
Each section is a frozen model with `extra="forbid"`, so a typo is an error rather than a silent
default; every field's description is also its `--help` text and its entry in docs/config.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from aurl import paths
from aurl.errors import ConfigError

CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")
_SECTION = ConfigDict(frozen=True, extra="forbid")


def available_cores() -> int:
    """Cores this process may run on (at least 1)."""
    # Affinity, not os.cpu_count(): a container or `taskset` may grant fewer cores than the machine has.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class MidiConfig(BaseModel):
    """How MIDI files are read."""

    model_config = _SECTION

    sustain_pedal: bool = Field(
        default=False,
        description="Extend notes held by the sustain pedal (CC64) to the pedal's release, "
        "as piano performances need; off keeps notes as written.",
    )


class PreprocessConfig(BaseModel):
    """How `aurl preprocess` turns MIDI files into the token cache."""

    model_config = _SECTION

    workers: int = Field(
        default_factory=available_cores,
        ge=1,
        description="Processes that read MIDI files in parallel (default: all cores; 1 reads in-process).",
    )
    out_dir: Path = Field(
        default_factory=lambda: paths.cache_dir() / "tokens",
        description="Folder of the token cache and its manifest.json (default: the user cache folder).",
    )


# --- model (owned by the model session: aurl.models reads this section) ------------------------------

ModelMode = Literal["transformer", "vae", "vae_gan"]
AttentionKind = Literal["full", "hierarchical", "sliding"]

# Named sizes; the field defaults below are `full` (the specification: hidden 512, 8 layers = 6 decoder
# + 2 encoder, latent 128; about 21M parameters in vae_gan mode). docs/model.md lists the counts.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        d_model=64,
        n_heads=4,
        decoder_layers=2,
        encoder_layers=1,
        encoder_d_model=64,
        encoder_heads=4,
        latent_global=32,
        latent_bar=16,
        latent_fine=16,
        latent_cond=32,
        fine_window=32,
        disc_d_model=32,
        local_window=64,
        global_tokens=16,
        sliding_window=128,
        sliding_overlap=32,
        dropout=0.0,
    ),
    "small": dict(
        d_model=256,
        n_heads=4,
        decoder_layers=4,
        encoder_layers=2,
        encoder_d_model=128,
        encoder_heads=4,
        latent_global=64,
        latent_bar=32,
        latent_fine=16,
        latent_cond=64,
        disc_d_model=64,
    ),
    "base": dict(
        d_model=384,
        n_heads=6,
        decoder_layers=6,
        encoder_layers=2,
        encoder_d_model=192,
        encoder_heads=4,
        latent_global=96,
        latent_bar=48,
        latent_fine=24,
        latent_cond=96,
        disc_d_model=96,
    ),
    "full": {},
}


class ModelConfig(BaseModel):
    """The network: mode, sizes, attention kind, latent, discriminator and how the losses are balanced."""

    model_config = _SECTION

    mode: ModelMode = Field(
        default="transformer",
        description="transformer (causal language model), vae (encoder, hierarchical latent, decoder) "
        "or vae_gan (vae plus a multi-scale discriminator).",
    )
    vocab_size: int = Field(default=774, ge=8, description="Number of token ids V (the vocabulary's size).")
    d_model: int = Field(
        default=512, ge=8, description="Width D of the decoder (and of the token embedding)."
    )
    n_heads: int = Field(
        default=8, ge=1, description="Attention heads per decoder layer; D / heads must be even."
    )
    decoder_layers: int = Field(default=6, ge=1, description="Transformer layers of the decoder.")
    encoder_layers: int = Field(default=2, ge=1, description="Transformer layers of the VAE encoder.")
    encoder_d_model: int = Field(default=256, ge=8, description="Width of the VAE encoder.")
    encoder_heads: int = Field(default=4, ge=1, description="Attention heads per encoder layer.")
    ffn_mult: int = Field(
        default=4, ge=1, description="Feed-forward expansion: its hidden width is ffn_mult * D."
    )
    dropout: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Dropout probability on the embeddings and residual branches.",
    )
    attention_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on attention weights; above 0 the fused (flash) kernels cannot run, "
        "so memory grows with the square of the window.",
    )
    attention: AttentionKind = Field(
        default="full",
        description="full (every earlier token), hierarchical (local window + block summaries) or sliding "
        "(overlapping windows); the last two keep memory linear in sequence length.",
    )
    local_window: int = Field(
        default=256,
        ge=2,
        description="hierarchical: local window in tokens, also the length of a summarised block.",
    )
    global_tokens: int = Field(
        default=64, ge=1, description="hierarchical: block summaries each query may read."
    )
    sliding_window: int = Field(default=512, ge=2, description="sliding: tokens per window.")
    sliding_overlap: int = Field(
        default=128, ge=0, description="sliding: tokens that neighbouring windows share (< sliding_window)."
    )
    rope_base: float = Field(default=10000.0, gt=1.0, description="Wavelength base of the rotary positions.")
    bar_period: int = Field(
        default=64, ge=1, description="Bar indices are embedded modulo this many bars (phrase cycles)."
    )
    checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory, about 30% slower.",
    )
    latent_global: int = Field(default=128, ge=1, description="Size of the global (whole piece) latent z.")
    latent_bar: int = Field(default=64, ge=1, description="Size of the per-bar latent.")
    latent_fine: int = Field(default=32, ge=1, description="Size of the fine (per window of tokens) latent.")
    fine_window: int = Field(default=64, ge=1, description="Tokens per fine latent.")
    latent_cond: int = Field(
        default=128, ge=1, description="Width of the latent condition fed into every decoder layer."
    )
    word_dropout: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="vae modes: chance that a decoder input token is replaced by MASK in training.",
    )
    beta: float = Field(default=1.0, ge=0.0, description="Final weight of the KL terms (beta-VAE).")
    kl_schedule: Literal["linear", "cyclical", "constant"] = Field(
        default="linear",
        description="KL weight schedule: linear warm-up, cyclical (Fu et al. 2019) or constant beta.",
    )
    kl_warmup_steps: int = Field(
        default=5000, ge=1, description="Steps of the linear KL warm-up, or the length of one cycle."
    )
    kl_cycles: int = Field(
        default=4, ge=1, description="cyclical: number of cycles before beta stays constant."
    )
    free_bits: float = Field(
        default=0.1, ge=0.0, description="KL below this many nats per latent dimension is not penalised."
    )
    disc_d_model: int = Field(default=128, ge=4, description="vae_gan: width of the discriminator.")
    disc_layers: int = Field(default=2, ge=1, description="vae_gan: convolutions per discriminator scale.")
    disc_kernel: int = Field(
        default=5, ge=1, description="vae_gan: kernel size of the note-level convolutions."
    )
    adversarial_loss: Literal["hinge", "non_saturating"] = Field(
        default="hinge", description="vae_gan: adversarial objective."
    )
    adv_weight: float = Field(
        default=0.1, ge=0.0, description="vae_gan: final weight of the adversarial loss."
    )
    adv_warmup_steps: int = Field(
        default=2000, ge=0, description="vae_gan: steps over which the adversarial weight ramps up from 0."
    )
    feature_matching_weight: float = Field(
        default=1.0, ge=0.0, description="vae_gan: weight of the discriminator feature-matching loss."
    )
    gumbel_tau: float = Field(
        default=1.0, gt=0.0, description="vae_gan: Gumbel-softmax temperature of the soft generated tokens."
    )
    label_smoothing: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Label smoothing of the reconstruction cross-entropy."
    )
    constraint_weight: float = Field(
        default=1.0,
        ge=0.0,
        description="Weight of the musical-constraint terms (forbidden tokens, grammar, bars).",
    )
    balance: Literal["uncertainty", "fixed"] = Field(
        default="uncertainty",
        description="uncertainty: learn one weight per loss term (Kendall et al. 2018); "
        "fixed: the weights above.",
    )

    @model_validator(mode="after")
    def _check_widths(self) -> ModelConfig:
        for width, heads in (("d_model", "n_heads"), ("encoder_d_model", "encoder_heads")):
            d, h = getattr(self, width), getattr(self, heads)
            if d % h or (d // h) % 2:
                raise ValueError(f"model.{width} = {d} over model.{heads} = {h} must give an even head width")
        if self.sliding_overlap >= self.sliding_window:
            raise ValueError(
                f"model.sliding_overlap = {self.sliding_overlap} must be below "
                f"model.sliding_window = {self.sliding_window}"
            )
        return self

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """The named sizes (tiny, small, base, full) with `overrides` on top.

        Example: `ModelConfig.preset("tiny", mode="vae")`.

        Raises:
            ConfigError: unknown name, or an override that is not a valid setting.
        """
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown model preset '{name}'; choose one of {', '.join(MODEL_PRESETS)}")
        try:
            return cls(**{**MODEL_PRESETS[name], **overrides})
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            key = ".".join(str(part) for part in first["loc"]) or "model"
            raise ConfigError(f"model preset '{name}': invalid '{key}': {first['msg'].rstrip('.')}") from None


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
