"""Rebuild muspy_reference.json: MusPy's metric values for bundled chorales and real-world files.

Run with a Python that has muspy 0.5 (not aurl's venv), from the repository root:

    /work/venvs/muspy/bin/python tests/data/metrics/make_muspy_reference.py

For every file: `muspy.read_midi(path)` (mido backend, default duplicate-note handling), then each
metric at two resolutions: the file's own ticks per beat ("native") and 8 ticks per beat ("grid",
after `music.adjust_resolution(8)`, which rounds onsets and offsets half to even). groove_consistency
uses measure_resolution = ticks per bar of the first time signature at that resolution (4/4 on the
grid: 32); it is recorded with the values.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import muspy

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
CHORALES = sorted((DATA / "bach-chorales").glob("*.mid"))[::20]
# Real-world files on which MusPy's reader and aurl's give the same notes (README.md says why others differ).
REAL_WORLD = [
    "Tonejs-Midi/test/midi/beat.mid",
    "Tonejs-Midi/test/midi/230_bpm_multitrack.mid",
    "Tonejs-Midi/test/midi/bach/bach_846.mid",
    "note-seq/note_seq/testdata/english1.mid",
    "note-seq/note_seq/testdata/example_complex.mid",
    "muspy/tests/data/midi/fur-elise.mid",
]


def _value(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else float(x)


def notes_digest(rows: list[tuple[int, int, bool]]) -> str:
    """sha256 of the sorted (onset, pitch, is_drum) rows as JSON: tells whether two readers found the
    same notes. Offsets are left out: the readers end overlapping notes of one pitch differently
    (README.md), which changes no metric on these files."""
    canonical = sorted((int(a), int(b), int(bool(c))) for a, b, c in rows)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def metrics(music: muspy.Music) -> dict[str, object]:
    ts = music.time_signatures[0] if music.time_signatures else None
    numerator, denominator = (ts.numerator, ts.denominator) if ts else (4, 4)
    measure_resolution = round(music.resolution * 4 * numerator / denominator)
    values = {
        "pitch_range": muspy.pitch_range(music),
        "n_pitches_used": muspy.n_pitches_used(music),
        "n_pitch_classes_used": muspy.n_pitch_classes_used(music),
        "polyphony": muspy.polyphony(music),
        "polyphony_rate": muspy.polyphony_rate(music),
        "pitch_in_scale_rate_C_major": muspy.pitch_in_scale_rate(music, 0, "major"),
        "pitch_in_scale_rate_A_minor": muspy.pitch_in_scale_rate(music, 9, "minor"),
        "pitch_in_scale_rate_F#_minor": muspy.pitch_in_scale_rate(music, 6, "minor"),
        "scale_consistency": muspy.scale_consistency(music),
        "pitch_entropy": muspy.pitch_entropy(music),
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "empty_beat_rate": muspy.empty_beat_rate(music),
        "groove_consistency": muspy.groove_consistency(music, measure_resolution),
        "drum_in_pattern_rate_duple": muspy.drum_in_pattern_rate(music, "duple"),
        "drum_in_pattern_rate_triple": muspy.drum_in_pattern_rate(music, "triple"),
        "drum_pattern_consistency": muspy.drum_pattern_consistency(music),
    }
    return {
        "resolution": music.resolution,
        "measure_resolution": measure_resolution,
        "metrics": {k: _value(v) for k, v in values.items()},
    }


def main() -> None:
    files = [p.relative_to(DATA).as_posix() for p in CHORALES] + ["real-world/" + f for f in REAL_WORLD]
    out = []
    for name in files:
        music = muspy.read_midi(DATA / name)
        rows = [(n.time, n.pitch, t.is_drum) for t in music.tracks for n in t.notes]
        n_notes, digest = len(rows), notes_digest(rows)
        native = metrics(music)
        grid = metrics(music.adjust_resolution(8))
        out.append({"file": name, "n_notes": n_notes, "notes_sha256": digest, "native": native, "grid": grid})
        print(name, n_notes, file=sys.stderr)
    document = {
        "muspy_version": muspy.__version__,
        "how": "see make_muspy_reference.py and README.md in this folder",
        "files": out,
    }
    (Path(__file__).parent / "muspy_reference.json").write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
