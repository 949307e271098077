"""The MIDI corpus bundled with aurl: 409 Bach chorales (see bach/README.md for their provenance).

The files are package data, read in place and never written to.
"""

from __future__ import annotations

from pathlib import Path

from aurl.errors import DataError, UsageError

SPLITS = ("train", "test")


def bach_dir() -> Path:
    """The folder of the bundled chorales (`*.mid`, manifest.csv, split-*.txt, README.md)."""
    return Path(__file__).resolve().parent / "bach"


def bach_files(split: str | None = None) -> list[Path]:
    """The bundled chorale files, sorted by name.

    Args:
        split: None for all 409 files, "train" (369) or "test" (40) for the fixed split in
            split-train.txt / split-test.txt.

    Raises:
        UsageError: `split` is not None, "train" or "test".
        DataError: the bundled files are missing (a broken installation).
    """
    folder = bach_dir()
    if split is None:
        files = sorted(folder.glob("*.mid"))
    elif split in SPLITS:
        files = [folder / name for name in sorted(_split_names(folder / f"split-{split}.txt"))]
    else:
        raise UsageError(f"split {split!r} is not one of {', '.join(SPLITS)} (or None for every file)")
    missing = [path.name for path in files if not path.is_file()]
    if not files or missing:
        raise DataError(
            f"bundled corpus in {folder} is incomplete (missing: {', '.join(missing[:3]) or 'every file'}); "
            "reinstall aurl"
        )
    return files


def _split_names(split_file: Path) -> list[str]:
    try:
        return split_file.read_text(encoding="utf-8").split()
    except OSError as error:
        raise DataError(
            f"{split_file}: cannot read the bundled split ({error.strerror}); reinstall aurl"
        ) from None
