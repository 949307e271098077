"""The training data: a lazy dataset of cached pieces, and `load_training_data` with its train/val split."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aurl.config.data import DataConfig
from aurl.data.cache import TokenCache
from aurl.data.scores import read_score
from aurl.data.sources import Piece, Split, resolve_source
from aurl.errors import DataError
from aurl.midi.score import Score

ProgressCallback = Callable[[int, int], None]
MEMO_NOTES = 2_000_000  # decoded notes a dataset keeps per process (~50 MB); the oldest pieces go first
_HOLD_OUT_STREAM = 0x5EED_5917  # keeps the hold-out's random stream apart from every other use of the seed


class TokenDataset:
    """Pieces of a token cache, loaded on demand.

    `dataset[i]` reads piece i's token ids from its cache entry each time (~0.05 ms for a chorale);
    `score(i)` decodes them once per process and keeps the Score for augmentation (at most
    MEMO_NOTES notes, least recently used first out). Pickling drops that memo and the caches'
    indexes, so a DataLoader worker starts with its own.

    Args:
        pieces: the pieces, in order.
    """

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = list(pieces)
        self.lengths = np.array([piece.n_tokens for piece in self.pieces], np.int64)
        self.names = [piece.name for piece in self.pieces]
        self._memo: OrderedDict[int, Score] = OrderedDict()
        self._memo_notes = 0
        self._caches: dict[Path, TokenCache] = {}  # one index of each cache folder per process

    def __len__(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"TokenDataset({len(self)} pieces, {self.n_tokens} tokens)"

    def __getitem__(self, index: int) -> np.ndarray:
        """(T,) uint16 token ids of the whole piece `index` (BOS ... EOS)."""
        piece = self.pieces[self._check(index)]
        ids = self._caches.setdefault(piece.cache, TokenCache(piece.cache)).load(piece.key)
        if len(ids) != piece.n_tokens:
            raise DataError(
                f"cache entry {piece.key} of '{piece.name}' holds {len(ids)} tokens, its manifest says "
                f"{piece.n_tokens}; run `aurl preprocess --out {piece.cache}` again"
            )
        return ids

    @property
    def n_tokens(self) -> int:
        """Token ids over all pieces."""
        return int(self.lengths.sum())

    def score(self, index: int) -> Score:
        """Piece `index` as a canonical Score (decoded once per process, then memoised)."""
        index = self._check(index)
        score = self._memo.get(index)
        if score is not None:
            self._memo.move_to_end(index)
            return score
        score = read_score(self[index])
        self._memo[index] = score
        self._memo_notes += score.n_notes
        while self._memo_notes > MEMO_NOTES and len(self._memo) > 1:
            self._memo_notes -= self._memo.popitem(last=False)[1].n_notes
        return score

    def _check(self, index: int) -> int:
        if not 0 <= index < len(self.pieces):
            raise IndexError(f"piece {index} outside 0..{len(self.pieces) - 1}")
        return int(index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"], state["_memo_notes"], state["_caches"] = OrderedDict(), 0, {}
        return state


@dataclass(frozen=True)
class TrainingData:
    """The train and validation sets of a run, and one line saying what they are.

    Attributes:
        train: the pieces trained on.
        val: the held-out pieces (empty when there are too few pieces or val_fraction is 0).
        description: e.g. "the bundled Bach chorales: 369 training pieces (451,234 tokens), 40
            validation pieces (48,861 tokens), split by split-test.txt".
        caches: the token cache folders read.
    """

    train: TokenDataset
    val: TokenDataset
    description: str
    caches: tuple[Path, ...]


def load_training_data(
    config: DataConfig, *, seed: int, on_progress: ProgressCallback | None = None
) -> TrainingData:
    """Resolve `config.data` (building its cache when needed) and split it into train and validation.

    The split comes from the data's split files when it has them (docs/data.md; the bundled
    chorales: train = split-train.txt, val = split-test.txt); otherwise `val_fraction` of the
    pieces, chosen by `seed`, are held out. Pieces with identical content are kept once, and never
    on both sides.

    Args:
        config: the data settings.
        seed: the run's seed (decides the hold-out).
        on_progress: `on_progress(done, total)` while MIDI files are being preprocessed.

    Raises:
        DataError: a path is missing, a cache is empty, or no MIDI file could be read.
    """
    source = resolve_source(config, on_progress=on_progress)
    if source.splits:
        train, val, how = _split_by_files(source.pieces, source.splits)
    else:
        train, val, how = _hold_out(source.pieces, config.val_fraction, seed)
    val = _unique(val, set())
    train = _unique(train, {piece.key for piece in val})
    if not train:
        raise DataError(f"no training pieces are left in {source.label} after the split ({how})")
    train_set, val_set = TokenDataset(train), TokenDataset(val)
    description = (
        f"{source.label}: {len(train_set)} training pieces ({train_set.n_tokens:,} tokens), "
        f"{len(val_set)} validation pieces ({val_set.n_tokens:,} tokens), split by {how}"
    )
    return TrainingData(train_set, val_set, description, source.caches)


def _split_by_files(pieces: list[Piece], splits: list[Split]) -> tuple[list[Piece], list[Piece], str]:
    val = [piece for piece in pieces if any(split.holds(split.val, piece) for split in splits)]
    held = {id(piece) for piece in val}
    left_out = {id(p) for p in pieces if any(s.holds(s.test, p) for s in splits)}
    train = [
        piece
        for piece in pieces
        if id(piece) not in held
        and id(piece) not in left_out
        and all(split.train is None or split.holds(split.train, piece) for split in splits)
    ]
    files = sorted({split.val_file for split in splits})
    return train, val, " and ".join(files)


def _hold_out(pieces: list[Piece], fraction: float, seed: int) -> tuple[list[Piece], list[Piece], str]:
    """Hold out round(fraction * n) pieces (at least 1, at most n - 1) chosen by `seed`."""
    pieces = _unique(pieces, set())
    n = len(pieces)
    n_val = min(n - 1, max(1, round(fraction * n))) if fraction > 0 and n >= 2 else 0
    chosen = np.random.default_rng([seed, _HOLD_OUT_STREAM]).choice(n, size=n_val, replace=False)
    is_val = np.zeros(n, bool)
    is_val[chosen] = True
    train = [piece for piece, held in zip(pieces, is_val, strict=True) if not held]
    val = [piece for piece, held in zip(pieces, is_val, strict=True) if held]
    return train, val, f"a seeded hold-out of {n_val} of {n} pieces (val_fraction {fraction:g})"


def _unique(pieces: list[Piece], taken: set[str]) -> list[Piece]:
    """The pieces whose content (cache key) is not in `taken`, each content once; updates `taken`."""
    kept = []
    for piece in pieces:
        if piece.key not in taken:
            taken.add(piece.key)
            kept.append(piece)
    return kept
