"""Key finding on the bundled Bach chorales against the manifest, next to music21; and `evaluate` speed.

The reference is the manifest's `key_from_signature_final_majmin` (key signature + final bass note,
reduced to major/minor), independent of any key-profile analyser. A key counts when tonic pitch
class and mode agree (spelling aside). music21's `analyze('key')` runs on the same MIDI files in
the same process when music21 is importable. Run from the repository root:

    PYTHONPATH=src python benchmarks/analyze.py                # music21 too, if installed
    PYTHONPATH=src python benchmarks/analyze.py --no-music21 --json out.json

docs/analyze.md holds the figures of the last run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from aurl.analyze.key import DEFAULT_FINAL_BASS_WEIGHT, DEFAULT_PROFILE, PROFILES, Key, estimate_key
from aurl.analyze.meter import estimate_metre
from aurl.data.corpus import bach_files
from aurl.evaluate import evaluate_sets
from aurl.midi import read_midi

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _label(row: dict[str, str]) -> Key | None:
    name = row["key_from_signature_final_majmin"]
    return None if name == "?" else Key.parse(name)


def _subsets(rows: dict[str, dict[str, str]], data: Path) -> dict[str, set[str]]:
    test = set((data / "bach-chorales" / "split-test.txt").read_text().split())
    return {
        "all 409": set(rows),
        "final chord on the tonic (335)": {
            f for f, r in rows.items() if r["key_from_signature_final"].endswith((" major", " minor"))
        },
        "keys_agree=1 (347)": {f for f, r in rows.items() if r["keys_agree"] == "1"},
        "test split (40)": test,
    }


def _accuracy(found: dict[str, Key | None], rows: dict[str, dict[str, str]], files: set[str]) -> float:
    return float(np.mean([found.get(f) is not None and found[f] == _label(rows[f]) for f in sorted(files)]))


def run_aurl(paths: list[Path]) -> tuple[dict[str, Key | None], float, float, dict]:
    """The shipped method, timed per file with reading; plus every profile with and without the bonus."""
    found: dict[str, Key | None] = {}
    scores = {}
    start = time.perf_counter()
    for path in paths:
        score = read_midi(path)
        estimate = estimate_key(score)
        found[path.name] = estimate.key if estimate else None
        scores[path.name] = score
    total = time.perf_counter() - start
    start = time.perf_counter()
    for score in scores.values():
        estimate_key(score)
    key_only = time.perf_counter() - start
    variants = {}
    for profile in PROFILES:
        for weight in (0.0, DEFAULT_FINAL_BASS_WEIGHT):
            keys = {}
            for name, score in scores.items():
                estimate = estimate_key(score, profile, weight)
                keys[name] = estimate.key if estimate else None
            variants[(profile, weight)] = keys
    return found, total / len(paths), key_only / len(paths), {"variants": variants, "scores": scores}


def run_music21(paths: list[Path]) -> tuple[dict[str, Key | None], float] | None:
    try:
        import music21
    except ImportError:
        return None
    found: dict[str, Key | None] = {}
    start = time.perf_counter()
    for path in paths:
        key = music21.converter.parse(str(path)).analyze("key")
        found[path.name] = Key.parse(f"{key.tonic.name.replace('-', 'b')} {key.mode}")
    return found, (time.perf_counter() - start) / len(paths)


def metre_accuracy(scores: dict, rows: dict[str, dict[str, str]]) -> tuple[float, float, int]:
    """Bar length and first downbeat heard in the notes, on the 4/4 and 3/4 chorales.

    The manifest's pickup_quarters is music21's paddingLeft (the part of the first bar that is
    missing), so the first downbeat is at (beats per bar - pickup_quarters) mod beats per bar.
    """
    bars = downbeats = n = 0
    for name, score in scores.items():
        signature = rows[name]["time_signature"]
        if signature not in ("4/4", "3/4"):
            continue
        beats = int(signature[0])
        expected = (beats - int(float(rows[name]["pickup_quarters"]))) % beats
        metre = estimate_metre(score)
        n += 1
        bars += metre is not None and metre.beats_per_bar == beats
        downbeats += metre is not None and (metre.beats_per_bar, metre.first_downbeat_beats) == (
            beats,
            expected,
        )
    return bars / n, downbeats / n, n


def time_evaluate(data: Path) -> tuple[float, int]:
    folder = data / "bach-chorales"
    generated = [folder / f for f in (folder / "split-test.txt").read_text().split()]
    reference = [folder / f for f in (folder / "split-train.txt").read_text().split()][: 400 - len(generated)]
    start = time.perf_counter()
    result = evaluate_sets(generated, reference)
    return time.perf_counter() - start, result.n_generated + result.n_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--no-music21", action="store_true", help="skip music21 even when installed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with open(args.data / "bach-chorales" / "manifest.csv", newline="") as manifest:
        rows = {r["file"]: r for r in csv.DictReader(manifest)}
    paths = [p for p in bach_files() if p.name in rows]
    found, per_file, key_only, extra = run_aurl(paths)
    music21_run = None if args.no_music21 else run_music21(paths)
    subsets = _subsets(rows, args.data)
    report: dict = {
        "files": len(paths),
        "method": f"{DEFAULT_PROFILE}, final bass bonus {DEFAULT_FINAL_BASS_WEIGHT}",
    }
    report["aurl_accuracy"] = {name: _accuracy(found, rows, files) for name, files in subsets.items()}
    report["aurl_seconds_per_file"] = per_file
    report["aurl_key_only_seconds_per_file"] = key_only
    report["variants_all_409"] = {
        f"{profile}, bonus {weight}": _accuracy(keys, rows, subsets["all 409"])
        for (profile, weight), keys in extra["variants"].items()
    }
    if music21_run is not None:
        keys, seconds = music21_run
        report["music21_accuracy"] = {name: _accuracy(keys, rows, files) for name, files in subsets.items()}
        report["music21_seconds_per_file"] = seconds
        report["speedup"] = seconds / per_file
    report["metre_bar_length"], report["metre_downbeat"], report["metre_files"] = metre_accuracy(
        extra["scores"], rows
    )
    report["evaluate_seconds"], report["evaluate_files"] = time_evaluate(args.data)
    json.dump(report, sys.stdout, indent=1)
    print()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
