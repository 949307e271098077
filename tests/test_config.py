"""Settings: precedence flag > env > file > default, one-line errors, shipped example configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from aurl import paths
from aurl.config import AurlSettings, MidiConfig, PreprocessConfig, available_cores, load_settings
from aurl.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FORMATS = {
    "toml": "[preprocess]\nworkers = {workers}\n\n[midi]\nsustain_pedal = true\n",
    "yaml": "preprocess:\n  workers: {workers}\nmidi:\n  sustain_pedal: true\n",
}


def write_config(folder: Path, kind: str, workers: int) -> Path:
    path = folder / f"settings.{kind}"
    path.write_text(FORMATS[kind].format(workers=workers), encoding="utf-8")
    return path


def test_defaults_use_all_cores_and_the_user_cache_folder() -> None:
    settings = load_settings()
    assert settings.preprocess.workers == available_cores() >= 1
    assert settings.preprocess.out_dir == paths.cache_dir() / "tokens"
    assert settings.midi.sustain_pedal is False


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_precedence_flag_over_env_over_file_over_default(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, kind, workers=3)
    assert load_settings(config).preprocess.workers == 3
    assert load_settings(config).midi.sustain_pedal is True
    monkeypatch.setenv("AURL_PREPROCESS__WORKERS", "5")
    assert load_settings(config).preprocess.workers == 5
    flagged = load_settings(config, {"preprocess.workers": 7, "midi.sustain_pedal": None})
    assert flagged.preprocess.workers == 7
    assert flagged.midi.sustain_pedal is True, "a flag left at None must not override the file"
    assert load_settings(config, {"midi.sustain_pedal": False}).midi.sustain_pedal is False


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file_value=st.none() | st.integers(1, 64),
    env_value=st.none() | st.integers(1, 64),
    flag_value=st.none() | st.integers(1, 64),
    kind=st.sampled_from(sorted(FORMATS)),
)
def test_the_highest_source_given_wins(
    file_value: int | None,
    env_value: int | None,
    flag_value: int | None,
    kind: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    config = write_config(folder, kind, file_value) if file_value is not None else None
    saved = os.environ.pop("AURL_PREPROCESS__WORKERS", None)
    if env_value is not None:
        os.environ["AURL_PREPROCESS__WORKERS"] = str(env_value)
    try:
        workers = load_settings(config, {"preprocess.workers": flag_value}).preprocess.workers
    finally:
        os.environ.pop("AURL_PREPROCESS__WORKERS", None)
        if saved is not None:
            os.environ["AURL_PREPROCESS__WORKERS"] = saved
    expected = next(v for v in (flag_value, env_value, file_value, available_cores()) if v is not None)
    assert workers == expected


def test_env_sets_a_nested_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AURL_PREPROCESS__OUT_DIR", str(tmp_path / "cache"))
    assert load_settings().preprocess.out_dir == tmp_path / "cache"


def test_user_config_toml_is_read_without_config_flag() -> None:
    user_config = paths.config_dir() / "config.toml"
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text("[preprocess]\nworkers = 11\n", encoding="utf-8")
    try:
        assert load_settings().preprocess.workers == 11
    finally:
        user_config.unlink()


def assert_one_line(error: ConfigError, *fragments: str) -> None:
    message = str(error)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_unknown_key_in_file_names_key_value_and_allowed_keys(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"typo.{kind}"
    text = "[preprocess]\nwrokers = 4\n" if kind == "toml" else "preprocess:\n  wrokers: 4\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert_one_line(caught.value, "preprocess.wrokers", "4", "preprocess.workers", str(path))
    assert caught.value.exit_code == 2


def test_unknown_section_lists_the_sections(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[preprocesss]\nworkers = 4\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert_one_line(caught.value, "preprocesss", "midi, preprocess")


def test_bad_env_value_names_variable_key_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURL_PREPROCESS__WORKERS", "zero")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert_one_line(caught.value, "preprocess.workers", "'zero'", "integer", "AURL_PREPROCESS__WORKERS")


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"preprocess.workers": 0}, ("preprocess.workers", "= 0", "greater than or equal to 1", "flag")),
        ({"preprocess.threads": 2}, ("preprocess.threads", "preprocess.workers", "flag")),
        ({"midi.sustain_pedal": "sometimes"}, ("midi.sustain_pedal", "'sometimes'", "boolean")),
    ],
)
def test_bad_flag_values(overrides: dict[str, object], fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, overrides)
    assert_one_line(caught.value, *fragments)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("broken.toml", "[preprocess\nworkers = 1\n", "not valid TOML"),
        ("broken.yaml", "preprocess: [1, 2\n", "not valid YAML"),
        ("list.yaml", "- 1\n- 2\n", "holds a list"),
        ("scalar.yml", "just words\n", "holds a str"),
        ("notes.txt", "[preprocess]\n", "expected one of .toml, .yaml, .yml"),
    ],
)
def test_unreadable_config_files(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert_one_line(caught.value, fragment, name)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.toml")
    assert_one_line(caught.value, "absent.toml", "does not exist")


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_settings(path) == load_settings()


def test_sections_are_frozen_and_forbid_extra_keys() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.preprocess.workers = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        PreprocessConfig(workers=2, threads=3)  # type: ignore[call-arg]


@pytest.mark.parametrize("section", [AurlSettings, MidiConfig, PreprocessConfig])
def test_every_field_has_a_description(section: type[BaseModel]) -> None:
    for name, info in section.model_fields.items():
        assert info.description and len(info.description) > 10, f"{section.__name__}.{name}"


@pytest.mark.parametrize(
    "example",
    sorted(p for p in (REPO / "examples").glob("*") if p.suffix in {".toml", ".yaml", ".yml"}),
    ids=lambda p: p.name,
)
def test_shipped_example_configs_load(example: Path) -> None:
    settings = load_settings(example)
    assert settings != load_settings(), f"{example.name} should change at least one default"


@pytest.mark.parametrize("section", sorted(AurlSettings.model_fields))
def test_docs_list_every_setting(section: str) -> None:
    docs = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    model = AurlSettings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    for name in model.model_fields:
        assert f"`{section}.{name}`" in docs and f"AURL_{section.upper()}__{name.upper()}" in docs


def test_there_is_an_example_config() -> None:
    assert any((REPO / "examples").glob("*.toml"))
