"""Preprocessing speed and memory: aurl against MidiTok's REMI tokenizer at the same grid, in one run.

Each measurement runs in its own process so that its peak RSS is its own. Corpora: the bundled Bach
chorales and ../shared/data/real-world (when present). MidiTok (with symusic's C++ reader) is the
peer, configured like aurl: 8 steps per beat over the first 4 beats, 32 velocities, tempos, time
signatures and programs on. aurl runs `preprocess` into an empty cache with 1 and with 2 workers.
The runs are interleaved (peer, aurl 1 worker, aurl 2 workers, again `--repeat` times) and each
keeps its fastest, so that a shared machine's changing speed hits all of them alike.

aurl writes each run's cache into a fresh folder under `--work-dir` (default: the system's temporary
folder), removed after the run. Creating files is part of aurl's cost and not of the peer's (which
keeps its tokens in memory); on the development VM a new file costs 0.05 to 1 ms depending on the
folder and the moment, up to a third of aurl's time per chorale (docs/performance.md).

    python benchmarks/preprocess.py            # needs `pip install miditok` for the peer
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_WORLD = ROOT.parent / "shared" / "data" / "real-world"
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")


def midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def run_miditok(folder: str) -> dict:
    from miditok import REMI, TokenizerConfig
    from symusic import Score

    config = TokenizerConfig(
        beat_res={(0, 4): 8, (4, 12): 4},
        num_velocities=32,
        use_tempos=True,
        use_time_signatures=True,
        use_programs=True,
    )
    tokenizer = REMI(config)
    files = midi_files(Path(folder))
    start, tokens, failed = time.perf_counter(), 0, 0
    for path in files:
        try:
            encoded = tokenizer.encode(Score(str(path)))
        except Exception:  # the peer's failures are counted, not fatal
            failed += 1
            continue
        sequences = encoded if isinstance(encoded, list) else [encoded]
        tokens += sum(len(seq.ids) for seq in sequences)
    return {"seconds": time.perf_counter() - start, "files": len(files), "tokens": tokens, "failed": failed}


def run_aurl(folder: str, workers: int, work_dir: str | None) -> dict:
    from aurl import preprocess

    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as out:
        start = time.perf_counter()
        result = preprocess([folder], out, workers=workers)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "files": result.files_total,
        "tokens": result.tokens_total,
        "failed": result.files_rejected,
    }


def measure(kind: str, folder: Path, workers: int, work_dir: Path | None) -> dict:
    """Run one measurement in a fresh process; add its peak RSS (children included, for workers)."""
    where = None if work_dir is None else str(work_dir)
    extra = f", {workers}, {where!r}" if kind == "aurl" else ""
    here = str(Path(__file__).parent)
    code = (
        f"import json, resource, sys; sys.path.insert(0, {here!r}); import preprocess as b; "
        f"r = b.run_{kind}({str(folder)!r}{extra}); "
        "r['rss_mb'] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024; print(json.dumps(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest is kept")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where aurl's caches are written (each run in a fresh folder, removed after it; "
        "default: the system's temporary folder)",
    )
    args = parser.parse_args()
    from aurl.data.corpus import bach_dir

    corpora = {"bach chorales": bach_dir()}
    if REAL_WORLD.is_dir():
        corpora["real-world"] = REAL_WORLD
    try:
        import miditok  # noqa: F401

        peers = [("MidiTok REMI", "miditok", 1)]
    except ImportError:
        print("miditok is not installed: measuring aurl alone (pip install miditok for the peer)")
        peers = []
    runs = [*peers, ("aurl, 1 worker", "aurl", 1), ("aurl, 2 workers", "aurl", 2)]
    print(
        f"{'corpus':15} {'tool':17} {'files/s':>9} {'tokens/s':>11} "
        f"{'peak RSS':>9} {'failed':>7} {'x peer':>7}"
    )
    print(f"aurl writes its caches under {args.work_dir or tempfile.gettempdir()}")
    for corpus, folder in corpora.items():
        peer_rate = None
        rounds = [[measure(kind, folder, workers, args.work_dir) for _, kind, workers in runs]
                  for _ in range(args.repeat)]  # fmt: skip
        for i, (label, kind, _) in enumerate(runs):
            best = min((found[i] for found in rounds), key=lambda r: r["seconds"])
            rate = best["files"] / best["seconds"]
            peer_rate = rate if kind == "miditok" else peer_rate
            ratio = f"{rate / peer_rate:.2f}" if peer_rate and kind != "miditok" else ""
            print(
                f"{corpus:15} {label:17} {rate:9.0f} {best['tokens'] / best['seconds']:11.0f} "
                f"{best['rss_mb']:7.0f}MB {best['failed']:7d} {ratio:>7}"
            )


if __name__ == "__main__":
    main()
