import numpy as np
import pytest

from aurl.tokens import vocab


def test_vocabulary_has_exactly_774_tokens_in_contiguous_families():
    assert vocab.VOCAB_SIZE == 774
    starts = [f.start for f in vocab.FAMILIES.values()]
    stops = [f.stop for f in vocab.FAMILIES.values()]
    assert starts[0] == 0 and stops[-1] == 774 and starts[1:] == stops[:-1]


def test_families_cover_what_the_architecture_requires():
    assert vocab.NOTE_ON.size == vocab.NOTE_OFF.size == 128  # the full MIDI pitch range
    assert vocab.PROGRAM.size == 129 and vocab.token_name(vocab.PROGRAM.stop - 1) == "Program_Drums"
    assert vocab.token_name(vocab.TIME_SHIFT.start) == "TimeShift_1"  # one 32nd note
    assert [vocab.token_name(i) for i in range(4)] == ["PAD", "BOS", "EOS", "MASK"]


def test_ids_and_names_map_one_to_one():
    for i in range(vocab.VOCAB_SIZE):
        assert vocab.token_id(vocab.token_name(i)) == i
    with pytest.raises(ValueError):
        vocab.token_name(774)
    with pytest.raises(ValueError):
        vocab.token_id("NoteOn_128")


def test_velocity_bins_are_idempotent_and_monotone():
    assert np.array_equal(vocab.VELOCITY_TO_BIN[vocab.BIN_TO_VELOCITY], np.arange(32))
    assert np.all(np.diff(vocab.VELOCITY_TO_BIN[1:]) >= 0)


def test_tempo_bins_hit_common_tempi_exactly_and_clamp():
    for bpm in (60.0, 120.0, 240.0):
        assert vocab.TEMPO_BPM[vocab.tempo_index(bpm)] == pytest.approx(bpm)
    assert vocab.tempo_index(0.0) == 0 and vocab.tempo_index(1e9) == vocab.N_TEMPOS - 1


def test_model_tables_describe_time_and_bars():
    advance = vocab.time_advance_table()
    assert advance[vocab.token_id("TimeShift_12")] == 12 and advance[vocab.token_id("NoteOn_60")] == 0
    assert vocab.bar_start_table().sum() == 1 and vocab.bar_start_table()[vocab.BAR]
    steps = vocab.bar_steps_table()
    assert steps[vocab.token_id("TimeSig_3/4")] == 24 and steps[vocab.token_id("TimeSig_12/8")] == 48


def test_describe_is_json_ready():
    import json

    layout = json.loads(json.dumps(vocab.describe()))
    assert layout["size"] == 774 and layout["version"] == vocab.VOCAB_VERSION
