"""`preprocess` on real files: discovery, tokens in the cache, reruns, rejects, crashes, concurrency."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aurl.data.cache import TEMP_SUFFIX, TokenCache
from aurl.data.corpus import bach_files
from aurl.data.preprocess import PreprocessResult, find_midi_files, max_polyphony, preprocess
from aurl.errors import DataError, UsageError
from aurl.midi import read_midi
from aurl.midi.score import Score
from aurl.tokens import encode

# A valid type-0 file with one track that holds only its end-of-track event.
NO_NOTES_MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60" + b"MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"


def run(inputs: list[Path], out: Path, **kwargs: object) -> PreprocessResult:
    return preprocess(inputs, out, workers=kwargs.pop("workers", 1), **kwargs)  # type: ignore[arg-type]


def test_find_midi_files_walks_folders_and_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ["a/one.mid", "a/deep/two.MIDI", "a/three.kar", "a/four.Rmi", "a/notes.txt", "a/x.mid.bak"]:
        (tmp_path / name).write_bytes(b"")
    loose = tmp_path / "loose.bin"
    loose.write_bytes(b"")
    found = find_midi_files([tmp_path / "a", loose, tmp_path / "a" / "one.mid"])
    names = [path.name for path in found]
    assert names == ["four.Rmi", "one.mid", "three.kar", "two.MIDI", "loose.bin"], (
        "sorted walk, then named files"
    )


def test_find_midi_files_survives_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "song.mid").write_bytes(b"")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert [path.name for path in find_midi_files([tmp_path])] == ["song.mid"]


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does-not-exist"):
        run([tmp_path / "does-not-exist"], tmp_path / "out")


def test_no_midi_files_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no music here")
    with pytest.raises(DataError, match="no MIDI files"):
        run([tmp_path], tmp_path / "out")


def test_workers_below_one_is_a_usage_error(chorale_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="workers"):
        run([chorale_folder], tmp_path / "out", workers=0)


def test_tokens_in_the_cache_are_the_encoded_files(chorale_folder: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    result = run([chorale_folder], tmp_path / "out", on_progress=lambda d, t: progress.append((d, t)))
    assert (result.files_total, result.files_ok, result.files_rejected, result.cache_hits) == (10, 10, 0, 0)
    assert progress[0] == (0, 10) and progress[-1] == (10, 10) and len(progress) == 11
    cache = TokenCache(tmp_path / "out")
    entries = cache.entries()
    assert [Path(e.path).name for e in entries] == sorted(p.name for p in chorale_folder.iterdir())
    for entry in entries:
        score = read_midi(entry.path)
        np.testing.assert_array_equal(cache.load(entry.key), encode(score))
        assert entry.n_notes == score.n_notes and entry.n_tokens == len(cache.load(entry.key))
        assert entry.metadata["ticks_per_beat"] == score.ticks_per_beat
    assert result.tokens_total == sum(e.n_tokens for e in entries)
    assert result.notes_total == sum(e.n_notes for e in entries)


def test_rerun_reads_only_new_or_changed_files(
    chorale_folder: Path, chorale_paths: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run([chorale_folder], out)
    again = run([chorale_folder], out)
    assert again.cache_hits == 10 and again.files_ok == 10
    assert again.tokens_total == first.tokens_total
    outsider = next(path for path in bach_files() if path not in chorale_paths)
    changed = chorale_folder / chorale_paths[0].name
    shutil.copyfile(outsider, changed)  # other bytes under the same name
    shutil.copyfile(chorale_paths[1], chorale_folder / "copy.mid")  # same bytes under a new name
    third = run([chorale_folder], out)
    assert (third.files_total, third.cache_hits) == (11, 10), "only the changed file is read"
    changed_entry = next(e for e in TokenCache(out).entries() if e.path == str(changed))
    np.testing.assert_array_equal(TokenCache(out).load(changed_entry.key), encode(read_midi(outsider)))


def test_reader_options_are_part_of_the_key(chorale_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plain = {e.path: e.key for e in (run([chorale_folder], out), TokenCache(out).entries())[1]}
    pedal = run([chorale_folder], out, sustain_pedal=True)
    assert pedal.cache_hits == 0
    assert TokenCache(out).manifest().options == {"sustain_pedal": True}
    assert set(plain.values()).isdisjoint(e.key for e in TokenCache(out).entries())


def test_two_workers_give_the_same_cache(chorale_folder: Path, tmp_path: Path) -> None:
    one = run([chorale_folder], tmp_path / "one", workers=1)
    two = run([chorale_folder], tmp_path / "two", workers=2)
    assert two.workers == 2
    assert one.model_dump(exclude={"out_dir", "seconds", "workers"}) == two.model_dump(
        exclude={"out_dir", "seconds", "workers"}
    )
    assert TokenCache(tmp_path / "one").entries() == TokenCache(tmp_path / "two").entries()


def test_bad_files_are_rejected_with_reasons(chorale_folder: Path, tmp_path: Path) -> None:
    (chorale_folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (chorale_folder / "silent.mid").write_bytes(NO_NOTES_MIDI)
    (chorale_folder / "notes.txt").write_text("not music")
    result = run([chorale_folder], tmp_path / "out", workers=2)
    assert (result.files_total, result.files_ok, result.files_rejected) == (12, 10, 2)
    reasons = {Path(r.path).name: r.reason for r in result.rejected}
    assert set(reasons) == {"broken.mid", "silent.mid"}
    assert reasons["silent.mid"] == "holds no notes"
    assert all(reason and "\n" not in reason for reason in reasons.values())
    assert not reasons["broken.mid"].startswith(str(chorale_folder)), "the path is not repeated in the reason"
    assert TokenCache(tmp_path / "out").manifest().rejected == result.rejected


def test_nothing_readable_returns_zero_ok(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"")
    (folder / "b.midi").write_bytes(b"RIFF....")
    result = run([folder], tmp_path / "out")
    assert (result.files_ok, result.files_rejected) == (0, 2)


def test_max_polyphony_counts_touching_notes_apart() -> None:
    score = Score.from_notes(4, {"pitch": [60, 64, 67, 72], "onset": [0, 0, 4, 4], "duration": [4, 8, 4, 4]})
    assert max_polyphony(score) == 3  # 60 ends where 67 and 72 start; 64 still sounds
    assert max_polyphony(Score.empty()) == 0


CRASHING_RUN = """
import os, sys
from aurl.data.preprocess import preprocess
def stop(done, total):
    if done == int(sys.argv[3]):
        os._exit(9)  # like a kill -9: no cleanup, no manifest
preprocess([sys.argv[1]], sys.argv[2], workers=1, on_progress=stop)
"""


def test_a_crash_mid_run_loses_nothing_already_written(chorale_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    crashed = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(chorale_folder), str(out), "4"])
    assert crashed.returncode == 9
    assert not (out / "manifest.json").exists()
    assert len(TokenCache(out).stored_keys()) == 4
    [pack] = (out / "packs").glob("*.pack")
    with open(pack, "ab") as file:  # what a kill in the middle of a write leaves: a torn entry
        file.write(pack.read_bytes()[:100])
    result = run([chorale_folder], out)
    assert (result.files_ok, result.cache_hits) == (10, 4)
    cache = TokenCache(out)
    assert len(cache.stored_keys()) == 10
    keys = cache.keys()
    assert len(keys) == 10 and all(len(cache.load(key)) > 0 for key in keys)


CONCURRENT_RUN = """
import sys
from aurl.data.preprocess import preprocess
result = preprocess([sys.argv[1]], sys.argv[2], workers=1)
print(result.files_ok)
"""


def test_two_runs_at_once_on_one_folder_leave_a_consistent_cache(
    chorale_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, str(chorale_folder), str(out)],
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in runs]
    assert [process.returncode for process in runs] == [0, 0]
    assert [int(output) for output in outputs] == [10, 10]
    cache = TokenCache(out)
    json.loads(cache.manifest_path.read_text())
    assert len(cache.keys()) == len(cache.stored_keys()) == 10
    for entry in cache.entries():
        np.testing.assert_array_equal(cache.load(entry.key), encode(read_midi(entry.path)))
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))
    assert run([chorale_folder], out).cache_hits == 10


def test_real_world_files_are_read_or_rejected_with_a_reason(real_world_dir: Path, tmp_path: Path) -> None:
    result = run([real_world_dir], tmp_path / "out", workers=2)
    assert result.files_total == len(find_midi_files([real_world_dir])) > 100
    assert result.files_ok + result.files_rejected == result.files_total
    assert result.files_ok > result.files_rejected
    assert all(r.reason and "\n" not in r.reason for r in result.rejected)


DYING_WORKER_RUN = """
import multiprocessing, os, sys
import aurl.data.preprocess as pp
from aurl.errors import DataError
real = pp.read_midi_bytes
def dying(data, name, **options):
    if name.endswith(sys.argv[3]):
        os._exit(9)  # as the kernel's OOM killer would end it
    return real(data, name, **options)
pp.read_midi_bytes = dying
multiprocessing.set_start_method("fork")  # so the workers inherit the patched reader
try:
    pp.preprocess([sys.argv[1]], sys.argv[2], workers=2)
except DataError as error:
    print(error)
    sys.exit(1)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to plant the failure in a worker")
def test_a_dying_worker_is_reported_not_hung(chorale_folder: Path, tmp_path: Path) -> None:
    victim = sorted(chorale_folder.iterdir())[5].name
    done = subprocess.run(
        [sys.executable, "-c", DYING_WORKER_RUN, str(chorale_folder), str(tmp_path / "out"), victim],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "worker process died" in done.stdout and "--workers 1" in done.stdout
