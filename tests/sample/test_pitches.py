"""Reading keys, scales, pitch ranges, metres, tempi and programs as a user types them."""

from __future__ import annotations

import pytest

from aurl.errors import ConfigError
from aurl.sample import pitches
from aurl.tokens import vocab

C, D, E, F, G, A, B = 0, 2, 4, 5, 7, 9, 11


@pytest.mark.parametrize(
    ("key", "scale", "expected"),
    [
        ("D minor", None, {D, E, F, G, A, 10, 0}),
        ("d min", None, {D, E, F, G, A, 10, 0}),
        ("Am", None, {A, B, C, D, E, F, G}),
        ("F# major", None, {6, 8, 10, 11, 1, 3, 5}),
        ("G", None, {G, A, B, C, D, E, 6}),
        ("Bb dorian", None, {10, 0, 1, 3, 5, 7, 8}),
        ("D", "dorian", {D, E, F, G, A, B, C}),
        (None, "pentatonic", {C, D, E, G, A}),
        (None, "C,E,G", {C, E, G}),
        (None, "0 4 7 11", {C, E, G, B}),
        ("E harmonic minor", None, {E, 6, G, A, B, C, 3}),
    ],
)
def test_keys_and_scales(key: str | None, scale: str | None, expected: set[int]) -> None:
    assert pitches.parse_key(key, scale) == frozenset(expected)


def test_no_key_no_scale_is_no_constraint() -> None:
    assert pitches.parse_key(None, None) is None


@pytest.mark.parametrize(
    ("key", "scale", "message"),
    [
        ("H major", None, "not a key"),
        ("D minr", None, "unknown scale"),
        ("D minor", "major", "give one of them"),
        (None, "", "empty scale"),
        (None, " , ", "empty scale"),
        (None, "0,12", "outside 0..11"),
        ("C", "C,E,G", "drop --key"),
    ],
)
def test_bad_keys_and_scales(key: str | None, scale: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        pitches.parse_key(key, scale)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C3-C6", (48, 84)),
        ("48-84", (48, 84)),
        ("C-1-G9", (0, 127)),
        ("Bb2 .. f#5", (46, 78)),
        ("60-60", (60, 60)),
    ],
)
def test_pitch_ranges(text: str, expected: tuple[int, int]) -> None:
    assert pitches.parse_pitch_range(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("C3", "not LOW-HIGH"),
        ("C6-C3", "is empty"),
        ("0-128", "outside 0..127"),
        ("A9-C10", "outside"),
        ("x-y", "not"),
    ],
)
def test_bad_pitch_ranges(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pitches.parse_pitch_range(text)


def test_time_signatures_and_tempi() -> None:
    index = pitches.parse_time_signature("3/4")
    assert vocab.token_name(vocab.TIME_SIG.start + index) == "TimeSig_3/4"
    assert vocab.TEMPO_BPM[pitches.parse_tempo(120)] == 120.0
    for bad in ("3/5", "17/4", "waltz"):
        with pytest.raises(ConfigError, match="time-signature"):
            pitches.parse_time_signature(bad)
    for bad in (10.0, 5000.0):
        with pytest.raises(ConfigError, match="tempo range"):
            pitches.parse_tempo(bad)


def test_programs() -> None:
    allowed = pitches.parse_programs((0, 128))
    assert allowed.sum() == 2 and allowed[0] and allowed[128]
    with pytest.raises(ConfigError, match="outside"):
        pitches.parse_programs((129,))
    with pytest.raises(ConfigError, match="no program"):
        pitches.parse_programs(())
