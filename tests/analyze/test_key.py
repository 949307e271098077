import csv

import numpy as np
import pytest
from hypothesis import given, settings

from analyze.music import build, cadence, chords
from aurl.analyze.key import (
    PROFILES,
    Key,
    estimate_key,
    key_correlations,
    pitch_class_durations,
    pitch_class_profile,
    windowed_keys,
)
from aurl.analyze.meter import bar_starts
from aurl.data.corpus import bach_files
from aurl.errors import UsageError
from aurl.midi import read_midi
from strategies import scores

ALL_KEYS = [Key(t, m) for m in (False, True) for t in range(12)]
EXPECTED_NAMES = [
    "C major", "Db major", "D major", "Eb major", "E major", "F major",
    "F# major", "G major", "Ab major", "A major", "Bb major", "B major",
    "C minor", "C# minor", "D minor", "Eb minor", "E minor", "F minor",
    "F# minor", "G minor", "G# minor", "A minor", "Bb minor", "B minor",
]  # fmt: skip


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("final_bass_weight", [0.0, 0.1])
def test_cadences_in_all_24_keys(profile: str, final_bass_weight: float) -> None:
    for key in ALL_KEYS:
        score = build(chords(cadence(key.tonic, key.minor)))
        found = estimate_key(score, profile, final_bass_weight)
        assert found is not None and found.key == key, (profile, key.name, found and found.key.name)
        assert found.correlation > 0.7 and found.margin > 0


def test_key_names_follow_the_fewest_accidentals_rule() -> None:
    assert [k.name for k in ALL_KEYS] == EXPECTED_NAMES
    assert all(abs(k.sharps) <= 6 for k in ALL_KEYS)
    assert [Key.parse(name) for name in EXPECTED_NAMES] == ALL_KEYS
    assert Key.parse("A# minor") == Key.parse("Bb minor") == Key(10, True)


def test_unknown_names_and_profiles_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not a key name"):
        Key.parse("H dorian")
    with pytest.raises(UsageError, match="unknown"):
        estimate_key(build(chords(cadence(0, False))), profile="aarden")


def test_spelling_follows_scale_degrees() -> None:
    assert Key.parse("G minor").spell(6) == "F#"  # leading tone
    assert Key.parse("G# minor").spell(7) == "F##"
    assert Key.parse("C major").spell(8) == "Ab"
    assert Key.parse("C major").spell(6) == "F#"
    assert Key.parse("Eb major").spell(10) == "Bb"
    assert Key.parse("F# major").spell(5) == "E#"
    assert Key.parse("C minor").spell(4) == "E"  # the Picardy third


def test_a_profile_correlates_perfectly_with_its_own_key() -> None:
    for name, (major, minor) in PROFILES.items():
        correlations = key_correlations(np.stack([np.roll(major, 5), np.roll(minor, 9)]), name)
        assert correlations[0].argmax() == 5 and correlations[1].argmax() == 12 + 9
        assert np.isclose(correlations[0, 5], 1.0) and np.isclose(correlations[1, 21], 1.0)


def test_notes_are_split_at_segment_boundaries() -> None:
    score = build([(60, 0.5, 2.0), (64, 1.0, 0.5)])
    profile = pitch_class_profile(score, np.array([0, 480, 960, 1440]))
    assert profile[:, 0].tolist() == [0.5, 1.0, 0.5]
    assert profile[:, 4].tolist() == [0.0, 0.5, 0.0]


@settings(max_examples=60, deadline=None)
@given(scores(max_notes=30))
def test_segment_profiles_add_up_to_the_whole(score) -> None:
    end = max(score.end_ticks, 1)
    boundaries = np.unique(np.linspace(0, end, 7).astype(np.int64))
    per_segment = pitch_class_profile(score, boundaries)
    assert per_segment.shape == (len(boundaries) - 1, 12)
    assert np.allclose(per_segment.sum(axis=0), pitch_class_durations(score), atol=1e-6)


def test_no_pitched_notes_means_no_key() -> None:
    assert estimate_key(build([])) is None
    drums = build([(36, 0, 1), (38, 1, 1)])
    assert estimate_key(drums.with_notes(is_drum=np.ones(2, bool))) is None


def test_a_modulation_is_found_in_windows() -> None:
    c_major = [v for _ in range(3) for v in cadence(0, False)]
    a_major = [v for _ in range(3) for v in cadence(9, False)]
    score = build(chords(c_major + a_major))
    regions = windowed_keys(score, bar_starts(score))
    assert [r.key.name for r in regions] == ["C major", "A major"]
    assert regions[0].start_bar == 0 and regions[-1].end_bar == 24
    assert abs(regions[1].start_bar - 12) <= 2
    assert all(r.confidence > 0.5 for r in regions)


def test_chorale_key_accuracy_beats_music21(shared_data) -> None:
    """The shipped method on all 409 chorales against signature + final bass; goal: music21's 85.3%."""
    with open(shared_data / "bach-chorales" / "manifest.csv", newline="") as manifest:
        rows = {r["file"]: r for r in csv.DictReader(manifest)}
    hits = []
    for path in bach_files():
        found = estimate_key(read_midi(path))
        label = rows[path.name]["key_from_signature_final_majmin"]  # "?" for two chorales: a miss
        hits.append(found is not None and label != "?" and found.key == Key.parse(label))
    assert len(hits) == 409
    assert np.mean(hits) >= 0.853
