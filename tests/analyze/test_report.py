import json
import sys
from pathlib import Path

import numpy as np
import pytest

from aurl.analyze import analyze_file, analyze_files, analyze_score, plot_analysis
from aurl.errors import AurlError
from aurl.midi import read_midi
from aurl.midi.score import Score

REQUIRED = (
    "file",
    "key",
    "key_confidence",
    "tempo_bpm",
    "time_signature",
    "chords",
    "sections",
    "phrases",
    "motifs",
)


def test_a_chorale_analysis_as_json(chorale_paths: list[Path]) -> None:
    path = chorale_paths[3]
    result = analyze_file(path)
    document = json.loads(result.model_dump_json())
    assert all(name in document for name in REQUIRED)
    assert document["file"] == str(path)
    assert document["key"].split(" ")[1] in ("major", "minor")
    assert 0 < document["key_confidence"] <= 1
    assert document["time_signature"] in ("4/4", "3/4", "3/2", "12/8")
    assert document["chords"] and all(c["end_beats"] > c["start_beats"] for c in document["chords"])
    assert document["sections"][0]["start_bar"] == 0
    assert document["phrases"][-1]["reasons"] == ["end"]
    assert len(document["melody"]["interval_histogram"]) == 25
    assert document["melody"]["contour"].startswith("*")


def test_the_key_of_a_known_chorale(chorale_paths: list[Path]) -> None:
    # bwv1.6 is in F major (one flat, ends on F); its tempo event says 76 bpm
    result = analyze_file(chorale_paths[0].with_name("bwv1.6.mid"))
    assert result.key == "F major"
    assert round(result.tempo_bpm) == 76 and result.time_signature == "4/4"
    assert result.key_candidates[0].key == "F major"


def test_unreadable_files_are_rejected_not_raised(tmp_path: Path, chorale_paths: list[Path]) -> None:
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"this is not a MIDI file")
    result = analyze_files([chorale_paths[0], broken])
    assert [a.file for a in result.analyses] == [str(chorale_paths[0])]
    assert [r.file for r in result.rejected] == [str(broken)] and result.rejected[0].reason
    with pytest.raises(AurlError):
        analyze_file(broken)


def test_plot_writes_an_image(tmp_path: Path, chorale_paths: list[Path]) -> None:
    pytest.importorskip("matplotlib")
    score = read_midi(chorale_paths[1])
    out = plot_analysis(score, analyze_score(score, file=str(chorale_paths[1])), tmp_path / "a.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(tmp_path: Path, monkeypatch, chorale_paths) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    score = read_midi(chorale_paths[0])
    with pytest.raises(AurlError, match="pip install 'aurl\\[plot\\]'"):
        plot_analysis(score, analyze_score(score), tmp_path / "a.png")


def test_scores_without_pitched_notes() -> None:
    empty = analyze_score(Score.empty(480))
    assert empty.key is None and empty.chords == [] and empty.phrases == [] and empty.melody.contour == ""
    onsets = np.arange(32) * 240
    drums = Score.from_notes(
        480,
        {
            "pitch": np.full(32, 38),
            "onset": onsets,
            "duration": np.full(32, 120),
            "is_drum": np.ones(32, bool),
        },
    )
    result = analyze_score(drums)
    assert result.key is None and result.chords == [] and result.motifs == []
    assert result.tempo_bpm_from_notes is not None and abs(result.tempo_bpm_from_notes - 120) < 3
