"""What `--data` names, resolved to cached pieces: a token cache, MIDI files and folders, or the chorales.

- a folder holding manifest.json (made by `aurl preprocess`) is read as it is;
- MIDI files and folders are preprocessed into `<cache_dir>/inputs-<digest>` first (a folder per
  distinct list of inputs; files already tokenised there are found again, not re-read);
- nothing means the bundled chorales, preprocessed once into `<cache_dir>/bach-chorales`.

Split files: a folder (a MIDI folder, a cache, or the folder that a cache's files came from) may
hold `split-val.txt` (or `split-valid.txt`, or `split-test.txt`) naming the held-out files, and
`split-train.txt` naming the training files, one name a line (a file name or a path relative to
that folder). The bundled chorales use split-train.txt (369) and split-test.txt (40).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aurl import paths
from aurl.config.data import DataConfig
from aurl.data.cache import MANIFEST_NAME, CacheEntry, TokenCache
from aurl.data.corpus import bach_dir, bach_files
from aurl.data.preprocess import preprocess
from aurl.errors import DataError, UsageError
from aurl.tokens.vocab import VOCAB_VERSION

BUNDLED_FOLDER = "bach-chorales"
VAL_SPLIT_NAMES = ("split-val.txt", "split-valid.txt", "split-test.txt")
TRAIN_SPLIT_NAME = "split-train.txt"
TEST_SPLIT_NAME = "split-test.txt"
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Piece:
    """One cached piece: where its tokens are and what it was called."""

    name: str  # the file as preprocess found it
    cache: Path  # the cache folder that holds the entry
    key: str
    n_tokens: int


@dataclass(frozen=True)
class Split:
    """Names listed in a folder's split files: held out (val), left out (test) and, if listed, train."""

    folder: Path
    val: frozenset[str]
    test: frozenset[str]
    train: frozenset[str] | None
    val_file: str

    def holds(self, names: frozenset[str], piece: Piece) -> bool:
        """Does `names` list `piece`, by file name or by path relative to the split's folder?"""
        path = Path(piece.name)
        if path.name in names:
            return True
        try:
            return path.resolve().relative_to(self.folder.resolve()).as_posix() in names
        except ValueError:
            return False


@dataclass(frozen=True)
class Source:
    """The pieces `--data` names, the split files found beside them, and words for a log line."""

    pieces: list[Piece]
    splits: list[Split]
    label: str
    caches: tuple[Path, ...]


def resolve_source(config: DataConfig, *, on_progress: ProgressCallback | None = None) -> Source:
    """Find or build the token caches `config.data` names and list their pieces.

    Args:
        config: `data` (paths or None) and `cache_dir`.
        on_progress: `on_progress(done, total)` while MIDI files are being preprocessed.

    Raises:
        UsageError: a path does not exist (exit 2, like any missing input).
        DataError: a cache is empty or of another vocabulary, or no MIDI file could be read.
    """
    base = config.cache_dir if config.cache_dir is not None else paths.cache_dir()
    inputs = config.paths
    if not inputs:
        return _bundled(base / BUNDLED_FOLDER, on_progress)
    for path in inputs:
        if not path.exists():
            raise UsageError(
                f"data path '{path}' does not exist; give a cache folder made by `aurl preprocess`, "
                "MIDI files or folders, or no --data for the bundled chorales"
            )
    caches = [path for path in inputs if (path / MANIFEST_NAME).is_file()]
    midi = [path for path in inputs if path not in caches]
    if midi:
        caches.append(_preprocessed(midi, base, on_progress))
    pieces = [piece for cache in caches for piece in _pieces(cache)]
    folders = [*(path for path in midi if path.is_dir()), *(f for c in caches for f in _cache_folders(c))]
    splits = [split for folder in dict.fromkeys(folders) if (split := read_split(folder)) is not None]
    more = f" and {len(inputs) - 3} more" if len(inputs) > 3 else ""
    label = ", ".join(str(path) for path in inputs[:3]) + more
    return Source(pieces, splits, label, tuple(caches))


def _bundled(folder: Path, on_progress: ProgressCallback | None) -> Source:
    files = bach_files()
    if not _holds_all(TokenCache(folder), {path.name for path in files}):
        _run_preprocess(files, folder, on_progress)
    split = read_split(bach_dir())
    assert split is not None, "the bundled corpus ships its split files"
    return Source(_pieces(folder), [split], "the bundled Bach chorales", (folder,))


def _holds_all(cache: TokenCache, names: set[str]) -> bool:
    """Is `cache` a complete, current cache of exactly the files called `names`?"""
    try:
        manifest = cache.manifest()
    except DataError:
        return False
    if manifest.vocab_version != VOCAB_VERSION or {Path(e.path).name for e in manifest.files} != names:
        return False
    stored = set(cache.stored_keys())
    return all(entry.key in stored for entry in manifest.files)


def _preprocessed(inputs: Sequence[Path], base: Path, on_progress: ProgressCallback | None) -> Path:
    """Preprocess MIDI inputs into their own cache folder under `base` and return it."""
    resolved = sorted(str(path.resolve()) for path in inputs)
    digest = hashlib.blake2b(json.dumps(resolved).encode(), digest_size=8).hexdigest()
    folder = base / f"inputs-{digest}"
    _run_preprocess(inputs, folder, on_progress)
    return folder


def _run_preprocess(inputs: Sequence[Path], folder: Path, on_progress: ProgressCallback | None) -> None:
    result = preprocess(inputs, folder, on_progress=on_progress)
    if result.files_ok == 0:
        first = result.rejected[0]
        raise DataError(
            f"none of the {result.files_total} MIDI files in the data could be read "
            f"(first: {first.path}: {first.reason}); check the files with `aurl preprocess`"
        )


def _pieces(cache_dir: Path) -> list[Piece]:
    cache = TokenCache(cache_dir)
    entries: list[CacheEntry] = cache.entries()
    if not entries:
        raise DataError(
            f"token cache '{cache_dir}' holds no pieces; run `aurl preprocess` on MIDI files into it "
            "or pass the MIDI files as data"
        )
    return [Piece(entry.path, cache_dir, entry.key, entry.n_tokens) for entry in entries]


def _cache_folders(cache_dir: Path) -> list[Path]:
    """Where a cache's split files may be: the cache folder, and the folder its files came from."""
    names = [entry.path for entry in TokenCache(cache_dir).entries()]
    try:
        common = Path(os.path.commonpath(names)) if names else None
    except ValueError:  # absolute and relative paths mixed
        common = None
    if common is not None and common.is_file():
        common = common.parent
    return [cache_dir] + ([common] if common is not None and common.is_dir() else [])


def read_split(folder: Path) -> Split | None:
    """The split files of `folder`, or None when it has no held-out list."""
    val_file = next((name for name in VAL_SPLIT_NAMES if (folder / name).is_file()), None)
    if val_file is None:
        return None
    train_path = folder / TRAIN_SPLIT_NAME
    test = _names(folder / TEST_SPLIT_NAME) if val_file != TEST_SPLIT_NAME else frozenset()
    return Split(
        folder=folder,
        val=_names(folder / val_file),
        test=test,
        train=_names(train_path) if train_path.is_file() else None,
        val_file=val_file,
    )


def _names(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"split file '{path}' cannot be read: {error}") from None
    return frozenset(line.strip() for line in lines if line.strip())
