"""The sequence-length curriculum and the DataConfig checks behind it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aurl.config import DataConfig, load_settings
from aurl.data import curriculum_stages, seq_len_at
from aurl.errors import ConfigError


def test_without_a_curriculum_every_step_uses_seq_len() -> None:
    config = DataConfig(seq_len=384)
    assert curriculum_stages(config) == [(0, 384)]
    assert {seq_len_at(step, config) for step in (0, 1, 10**9)} == {384}


def test_doubling_from_256_to_2048_in_equal_shares() -> None:
    config = DataConfig(seq_len=2048, curriculum_start=256, curriculum_steps=30_000)
    assert curriculum_stages(config) == [(0, 256), (10_000, 512), (20_000, 1024), (30_000, 2048)]
    expected = {0: 256, 9_999: 256, 10_000: 512, 19_999: 512, 20_000: 1024, 29_999: 1024, 30_000: 2048}
    assert {step: seq_len_at(step, config) for step in expected} == expected
    assert seq_len_at(10**9, config) == 2048


def test_a_start_that_is_not_a_power_of_two_below_the_end_stops_at_seq_len() -> None:
    config = DataConfig(seq_len=1000, curriculum_start=300, curriculum_steps=90)
    assert curriculum_stages(config) == [(0, 300), (45, 600), (90, 1000)]


def test_fewer_steps_than_doublings_still_ends_at_seq_len() -> None:
    config = DataConfig(seq_len=2048, curriculum_start=256, curriculum_steps=1)
    assert seq_len_at(0, config) == 256
    assert seq_len_at(1, config) == 2048


def test_explicit_stages() -> None:
    config = DataConfig(seq_len=1024, curriculum=[(0, 128), (100, 512), (250, 1024)])
    values = [seq_len_at(step, config) for step in (0, 99, 100, 249, 250, 5000)]
    assert values == [128, 128, 512, 512, 1024, 1024]


@given(
    start_exp=st.integers(3, 8),
    end_exp=st.integers(3, 12),
    steps=st.integers(1, 100_000),
    probe=st.lists(st.integers(0, 200_000), min_size=2, max_size=20),
)
def test_doubling_schedule_never_shrinks_and_ends_at_seq_len(
    start_exp: int, end_exp: int, steps: int, probe: list[int]
) -> None:
    start, end = 2**start_exp, max(2**start_exp, 2**end_exp)
    config = DataConfig(seq_len=end, curriculum_start=start, curriculum_steps=steps)
    values = [seq_len_at(step, config) for step in sorted(probe)]
    assert values == sorted(values)
    assert all(start <= value <= end for value in values)
    assert seq_len_at(0, config) == start and seq_len_at(steps, config) == end


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"curriculum": [(0, 64)], "curriculum_start": 64, "curriculum_steps": 10}, "not both"),
        ({"seq_len": 512, "curriculum_start": 1024, "curriculum_steps": 10}, "exceeds data.seq_len"),
        ({"curriculum_start": 64}, "curriculum_steps > 0"),
        ({"curriculum": [(5, 64)]}, "must start at 0"),
        ({"curriculum": [(0, 64), (10, 128), (10, 256)]}, "must start at 0 and increase"),
        ({"seq_len": 256, "curriculum": [(0, 512)]}, r"8\.\.data\.seq_len"),
        ({"tempo_range": (1.2, 0.9)}, "0 < low <= high"),
        ({"velocity_range": (0.0, 1.0)}, "0 < low <= high"),
    ],
)
def test_inconsistent_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DataConfig(**kwargs)  # type: ignore[arg-type]


def test_stages_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURL_DATA__CURRICULUM", "[[0, 128], [10, 256]]")
    monkeypatch.setenv("AURL_DATA__SEQ_LEN", "256")
    settings = load_settings(overrides={"data.batch_size": 8})
    assert settings.data.curriculum == [(0, 128), (10, 256)]
    assert seq_len_at(9, settings.data) == 128 and seq_len_at(10, settings.data) == 256
    assert settings.data.batch_size == 8


def test_a_bad_key_in_the_data_section_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'data\.seqlen'"):
        load_settings(overrides={"data.seqlen": 4})
