import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from aurl.data.corpus import bach_files
from aurl.errors import AurlError, UsageError
from aurl.evaluate import HISTOGRAM_FEATURES, SCALAR_FEATURES, evaluate_sets, plot_feature_histograms
from aurl.midi import read_midi, write_midi


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Twelve chorales as 'generated' and sixteen others as 'reference', plus one broken file."""
    files = bach_files()
    generated, reference = tmp_path_factory.mktemp("generated"), tmp_path_factory.mktemp("reference")
    for path in files[0:120:10]:
        shutil.copyfile(path, generated / path.name)
    for path in files[5:165:10]:
        shutil.copyfile(path, reference / path.name)
    (generated / "broken.mid").write_bytes(b"MThd nonsense")
    return generated, reference


@pytest.fixture(scope="module")
def result(sets: tuple[Path, Path]):
    return evaluate_sets([sets[0]], [sets[1]])


def test_json_holds_per_file_metrics_then_set_results(result) -> None:
    document = json.loads(result.model_dump_json())
    assert list(document)[0] == "files"
    assert document["n_generated"] == 12 and document["n_reference"] == 16
    first = document["files"][0]
    assert set(first) == {"file", "set", "key", "metrics", "histograms", "memorisation"}
    assert set(first["metrics"]) == set(SCALAR_FEATURES)
    assert first["metrics"]["drum_pattern_consistency"] is None  # no drums in a chorale
    assert [len(first["histograms"][h]) for h in HISTOGRAM_FEATURES] == [12, 25]
    assert [f["set"] for f in document["files"]] == ["generated"] * 12 + ["reference"] * 16
    assert all(f["memorisation"] is None for f in document["files"] if f["set"] == "reference")
    assert [c["feature"] for c in document["features"]] == list(SCALAR_FEATURES) + list(HISTOGRAM_FEATURES)


def test_chorales_against_chorales_look_alike(result) -> None:
    by_name = {c.feature: c for c in result.features}
    assert by_name["pitch_range"].overlap_area > 0.5
    assert by_name["groove_consistency"].overlap_area > 0.5
    assert by_name["drum_pattern_consistency"].overlap_area is None
    assert result.frechet_feature_distance > 0
    assert "drum_pattern_consistency" not in result.frechet_features
    assert result.memorisation.mean_copied_share == pytest.approx(0.0, abs=0.05)


def test_bach_against_bach_overlaps_on_every_feature() -> None:
    # Issue 5 asks a model's samples for an overlap >= 0.8 with the test chorales on every metric;
    # the rest of Bach must reach that bar, or the bar measures the estimator rather than the model
    # (one bandwidth per set gave 0.29 on empty_beat_rate, where 98% and 100% of the pieces are 0).
    report = evaluate_sets(bach_files("train"), reference=bach_files("test"))
    overlaps = {c.feature: c.overlap_area for c in report.features if c.overlap_area is not None}
    assert set(overlaps) == set(SCALAR_FEATURES) - {"drum_pattern_consistency"}
    assert min(overlaps.values()) >= 0.8, overlaps


def test_random_pitches_are_further_from_the_chorales(result, sets, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for path in sorted(sets[0].glob("bwv*.mid")):
        score = read_midi(path)
        write_midi(
            score.with_notes(pitch=rng.integers(36, 90, score.n_notes).astype(np.int16)), tmp_path / path.name
        )
    noisy = evaluate_sets([tmp_path], [sets[1]])
    assert noisy.frechet_feature_distance > 3 * result.frechet_feature_distance
    noisy_oa = {c.feature: c.overlap_area for c in noisy.features}
    assert (
        noisy_oa["pitch_in_scale_rate"]
        < 0.1
        < {c.feature: c.overlap_area for c in result.features}["pitch_in_scale_rate"]
    )


def test_unreadable_files_are_listed(result, sets) -> None:
    assert [Path(r.file).name for r in result.rejected] == ["broken.mid"]
    assert result.rejected[0].reason


def test_a_set_against_itself(sets) -> None:
    same = evaluate_sets([sets[1]], [sets[1]])
    assert same.frechet_feature_distance == pytest.approx(0.0, abs=1e-6)
    assert all(c.overlap_area == pytest.approx(1.0) for c in same.features if c.overlap_area is not None)
    assert same.memorisation.mean_copied_share == 1.0
    assert all(f.memorisation.longest_span_source == f.file for f in same.files if f.set == "generated")


def test_missing_inputs_and_empty_sets(sets, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        evaluate_sets([tmp_path / "nowhere"], [sets[1]])
    with pytest.raises(UsageError, match="no readable MIDI file in the generated set"):
        evaluate_sets([tmp_path], [sets[1]])
    with pytest.raises(UsageError, match="too short"):
        evaluate_sets([sets[1]], [sets[1]], window_bars=0)


def test_training_files_count_for_memorisation(sets) -> None:
    generated = sorted(sets[0].glob("bwv*.mid"))[:2]
    found = evaluate_sets(generated, [sets[1]], training=generated)
    assert found.memorisation.known_files == 18
    assert found.memorisation.mean_copied_share == 1.0


def test_plots_one_histogram_per_feature(result, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = plot_feature_histograms(result, tmp_path / "plots")
    assert [p.stem for p in written] == [f for f in SCALAR_FEATURES if f != "drum_pattern_consistency"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_plots_without_matplotlib(result, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AurlError, match="matplotlib"):
        plot_feature_histograms(result, tmp_path)
