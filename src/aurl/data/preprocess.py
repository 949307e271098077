"""`preprocess`: MIDI files and folders in, a content-addressed token cache and its manifest out."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from aurl.config import available_cores
from aurl.data.cache import CacheEntry, Manifest, RejectedFile, TokenCache, entry_key
from aurl.errors import DataError, MidiError, TokenizeError, UsageError
from aurl.midi import read_midi, read_midi_bytes
from aurl.midi.read import MAX_FILE_BYTES
from aurl.midi.score import Score
from aurl.tokens import encode
from aurl.tokens.vocab import VOCAB_SIZE, VOCAB_VERSION

logger = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
ProgressCallback = Callable[[int, int], None]


class PreprocessResult(BaseModel):
    """What `preprocess` did: counts, the rejected files with reasons, where the cache is."""

    out_dir: Path = Field(title="cache folder", description="The token cache folder (holds manifest.json).")
    files_total: int = Field(title="MIDI files", description="MIDI files found in the inputs.")
    files_ok: int = Field(title="read", description="Files turned into tokens (cache hits included).")
    files_repaired: int = Field(
        title="repaired", description="Read files on which the reader repaired something."
    )
    files_rejected: int = Field(title="rejected", description="Files that could not be read or tokenised.")
    cache_hits: int = Field(title="cache hits", description="Read files whose tokens were already cached.")
    tokens_total: int = Field(title="tokens", description="Token ids over all read files.")
    notes_total: int = Field(title="notes", description="Notes over all read files.")
    vocab_size: int = Field(title="vocabulary size", description="Number of distinct token ids.")
    vocab_version: str = Field(title="vocabulary", description="Version string of the vocabulary.")
    workers: int = Field(title="workers", description="Processes used.")
    seconds: float = Field(title="seconds", description="Wall-clock time of the run.")
    rejected: list[RejectedFile] = Field(
        title="rejected files", description="Each rejected file with its reason."
    )


@dataclass(frozen=True)
class _Outcome:
    """One file's fate, sent back from a worker (small: no tokens travel between processes)."""

    path: str
    key: str = ""
    reason: str = ""
    hit: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def find_midi_files(inputs: Iterable[str | Path]) -> list[Path]:
    """The MIDI files named by `inputs`, without duplicates, in input order then sorted per folder.

    A folder is walked recursively (symlinked folders are not followed, so a loop cannot hang the
    walk) and yields the files whose suffix is .mid, .midi, .kar or .rmi in any case; other files are
    skipped. A file named directly is always taken, whatever its suffix.

    Raises:
        UsageError: an input does not exist.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(dict.fromkeys(_walk(path)))
        elif path.is_file():
            found[path] = None
        else:
            raise UsageError(f"input '{path}' does not exist; pass MIDI files or folders that hold them")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _walk(folder: Path) -> Iterator[Path]:
    for parent, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(MIDI_SUFFIXES):
                yield Path(parent) / name


def preprocess(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    sustain_pedal: bool = False,
    on_progress: ProgressCallback | None = None,
) -> PreprocessResult:
    """Read MIDI files, tokenise them into the cache at `out_dir` and write its manifest.json.

    Files whose tokens are already cached (same bytes, vocabulary and options) are not read again.
    A file that cannot be read or tokenised is rejected with its reason; the run goes on.

    Args:
        inputs: MIDI files and folders (walked recursively, see `find_midi_files`).
        out_dir: the cache folder; created when missing, shared safely with concurrent runs.
        workers: processes reading files in parallel; None for all cores, 1 reads in this process.
        sustain_pedal: extend notes held by the sustain pedal (part of each entry's key).
        on_progress: called as `on_progress(done, total)` after each file, in this process.

    Returns:
        Counts, the rejected files with reasons, and the time taken. `files_ok == 0` means that
        nothing could be read; the caller decides what that means for it.

    Raises:
        UsageError: an input does not exist, or `workers` < 1.
        DataError: the inputs hold no MIDI file, or the cache folder cannot be written.
    """
    start = time.perf_counter()
    files = find_midi_files(inputs)
    if not files:
        shown = ", ".join(f"'{item}'" for item in list(inputs)[:3])
        raise DataError(f"no MIDI files ({' '.join(MIDI_SUFFIXES)}) found in {shown or 'the inputs'}")
    n_workers = _worker_count(workers, len(files))
    cache = TokenCache(out_dir)
    _prepare(cache)
    logger.info("%d MIDI files, %d worker(s), cache %s", len(files), n_workers, cache.root)
    options = {"sustain_pedal": bool(sustain_pedal)}
    outcomes = _run(files, cache.root, options, n_workers, on_progress)
    manifest = _manifest(outcomes, options)
    cache.write_manifest(manifest)
    return _result(manifest, outcomes, cache.root, n_workers, time.perf_counter() - start)


def _worker_count(workers: int | None, n_files: int) -> int:
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    return min(workers, n_files)


def _prepare(cache: TokenCache) -> None:
    try:
        cache.root.mkdir(parents=True, exist_ok=True)
        removed = cache.remove_stale_temp_files()
    except OSError as error:
        raise DataError(f"cannot write the cache folder '{cache.root}': {error.strerror}") from None
    if removed:
        logger.info("removed %d temporary files left by an interrupted run", removed)


def _run(
    files: list[Path],
    root: Path,
    options: dict[str, Any],
    n_workers: int,
    on_progress: ProgressCallback | None,
) -> list[_Outcome]:
    paths = [str(path) for path in files]
    outcomes: list[_Outcome] = []
    if on_progress:
        on_progress(0, len(paths))
    if n_workers == 1:
        with TokenCache(root) as cache:
            for path in paths:
                _record(outcomes, [process_file(path, cache=cache, options=options)], len(paths), on_progress)
        return outcomes
    size = max(1, min(16, len(paths) // (n_workers * 8)))  # chunks amortise the inter-process traffic
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    # The platform's default start method (fork on Linux before 3.14, else spawn or forkserver):
    # process_chunk is a module-level function of picklable arguments, so every method works.
    pool = ProcessPoolExecutor(
        n_workers, mp_context=multiprocessing.get_context(), initializer=_start_worker, initargs=(str(root),)
    )
    try:
        futures = [pool.submit(process_chunk, chunk, options) for chunk in chunks]
        for future in as_completed(futures):
            _record(outcomes, future.result(), len(paths), on_progress)
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        raise DataError(
            "a worker process died (killed, or out of memory) while reading MIDI files; the entries "
            "written so far are kept: rerun with --workers 1 to see which file it was"
        ) from None
    except BaseException:  # Ctrl-C or an error: drop the queued chunks instead of waiting for them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return outcomes


_worker_cache: TokenCache | None = None  # a worker process's own cache: one pack, one index


def _start_worker(cache_root: str) -> None:
    global _worker_cache
    _worker_cache = TokenCache(cache_root)  # its pack closes when the process exits
    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it (it drops
    # the queued work), instead of each worker printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _record(
    outcomes: list[_Outcome], new: list[_Outcome], total: int, on_progress: ProgressCallback | None
) -> None:
    for outcome in new:
        outcomes.append(outcome)
        if outcome.reason:
            logger.debug("rejected %s: %s", outcome.path, outcome.reason)
        if on_progress:
            on_progress(len(outcomes), total)


def process_chunk(paths: list[str], options: dict[str, Any]) -> list[_Outcome]:
    """`process_file` over several files: what one worker process (see `_start_worker`) does per task."""
    cache = _worker_cache
    assert cache is not None, "process_chunk runs in a worker started by _start_worker"
    return [process_file(path, cache=cache, options=options) for path in paths]


def process_file(path: str, *, cache: TokenCache, options: dict[str, Any]) -> _Outcome:
    """Tokenise one file into the cache unless its entry exists; never raises for a bad file.

    Args:
        path: the MIDI file.
        cache: the token cache to look the file up in and store it into.
        options: reader options; `sustain_pedal` is passed to the reader, all are part of the key.
    """
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_FILE_BYTES + 1)  # bounded: a 10 GB file named .mid is not read whole
    except OSError as error:
        return _Outcome(path, reason=f"cannot open the file: {error.strerror or error}")
    key = entry_key(content, options)
    cached = cache.lookup(key)
    if cached is not None:
        return _Outcome(path, key, hit=True, metadata=cached)
    sustain_pedal = bool(options.get("sustain_pedal", False))
    try:
        if len(content) > MAX_FILE_BYTES:
            read_midi(path, sustain_pedal=sustain_pedal)  # rejects it with the reader's own reason
        # Parse the very bytes that were hashed: a file changing meanwhile cannot get a wrong key.
        score = read_midi_bytes(content, path, sustain_pedal=sustain_pedal)
        if score.n_notes == 0:
            return _Outcome(path, key, reason="holds no notes")
        tokens = encode(score)
    except (MidiError, TokenizeError) as error:
        return _Outcome(path, key, reason=_reason(error, path))
    except Exception as error:  # a reader bug must not sink a run over thousands of files
        logger.debug("unexpected error on %s", path, exc_info=True)
        detail = " ".join(str(error).split())
        return _Outcome(
            path, key, reason=f"unexpected {type(error).__name__}: {detail} (a bug in aurl; please report it)"
        )
    metadata = {"n_tokens": len(tokens), "n_notes": score.n_notes, "repairs": list(score.repairs)}
    metadata["summary"] = summarize(score)
    cache.store(key, tokens, metadata)
    return _Outcome(path, key, metadata=metadata)


def _reason(error: Exception, path: str) -> str:
    """The error's one-line message without the leading '<file>: ' (the path is listed beside it)."""
    message = " ".join(str(error).split())
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def summarize(score: Score) -> dict[str, Any]:
    """A small JSON-able description of a score for the manifest (times in beats, not seconds)."""
    tpq = score.ticks_per_beat
    ts = score.time_signatures
    meters = list(
        dict.fromkeys(f"{n}/{d}" for n, d in zip(ts.numerator.tolist(), ts.denominator.tolist(), strict=True))
    )
    return {
        "ticks_per_beat": tpq,
        "n_tracks": score.n_tracks,
        "track_names": list(score.track_names),
        "duration_beats": round(score.end_ticks / tpq, 3),
        "tempo_bpm": round(float(score.tempos.bpm[0]), 3) if len(score.tempos) else None,
        "n_tempo_changes": len(score.tempos),
        "time_signatures": meters[:16],
        "programs": np.unique(score.program[~score.is_drum]).tolist(),
        "has_drums": bool(score.is_drum.any()),
        "pitch_range": [int(score.pitch.min()), int(score.pitch.max())] if score.n_notes else [],
        "max_polyphony": max_polyphony(score),
    }


def max_polyphony(score: Score) -> int:
    """The most notes sounding at once (a note ending at a tick does not overlap one starting there)."""
    if score.n_notes == 0:
        return 0
    times = np.concatenate([score.onset, score.offset])
    steps = np.concatenate([np.ones(score.n_notes, np.int64), -np.ones(score.n_notes, np.int64)])
    order = np.lexsort((steps, times))  # at equal times, ends (-1) before starts (+1)
    return int(np.cumsum(steps[order]).max())


def _manifest(outcomes: list[_Outcome], options: dict[str, Any]) -> Manifest:
    ok = sorted((o for o in outcomes if not o.reason), key=lambda o: o.path)
    bad = sorted((o for o in outcomes if o.reason), key=lambda o: o.path)
    return Manifest(
        options=options,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        files=[_entry(outcome) for outcome in ok],
        rejected=[RejectedFile(path=o.path, reason=o.reason) for o in bad],
    )


def _entry(outcome: _Outcome) -> CacheEntry:
    meta = outcome.metadata
    return CacheEntry(
        path=outcome.path,
        key=outcome.key,
        n_tokens=meta["n_tokens"],
        n_notes=meta["n_notes"],
        repairs=meta.get("repairs", []),
        metadata=meta.get("summary", {}),
    )


def _result(
    manifest: Manifest, outcomes: list[_Outcome], root: Path, workers: int, seconds: float
) -> PreprocessResult:
    return PreprocessResult(
        out_dir=root,
        files_total=len(outcomes),
        files_ok=len(manifest.files),
        files_repaired=sum(1 for entry in manifest.files if entry.repairs),
        files_rejected=len(manifest.rejected),
        cache_hits=sum(1 for outcome in outcomes if outcome.hit),
        tokens_total=sum(entry.n_tokens for entry in manifest.files),
        notes_total=sum(entry.n_notes for entry in manifest.files),
        vocab_size=VOCAB_SIZE,
        vocab_version=VOCAB_VERSION,
        workers=workers,
        seconds=round(seconds, 3),
        rejected=manifest.rejected,
    )
