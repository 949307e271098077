"""The import rules of STYLE.md, checked on the source with `ast`, plus a light `import aurl`.

Imports point down `cli -> {train, export} -> {sample, evaluate} -> {analyze, models, data} -> tokens
-> midi -> {config, errors, paths}`, never up or sideways; only cli/ imports typer and rich, only
midi/ imports mido and miditoolkit; `import aurl` and the CLI never load torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "aurl"

# Higher imports lower. Packages on one level must not import each other. config sits above errors
# and paths because it raises ConfigError and defaults to platformdirs folders.
LEVELS = {
    "errors": 0,
    "paths": 0,
    "version": 0,
    "atomic": 0,
    "config": 1,
    "midi": 2,
    "tokens": 3,
    "analyze": 4,
    "models": 4,
    "data": 4,
    "sample": 5,
    "evaluate": 5,
    "train": 6,
    "export": 6,
    "cli": 7,
}
# Modules that may import anything of aurl: the package facade and `python -m aurl`.
TOP = {"__init__", "__main__"}
# Third-party packages only one part of aurl may import.
OWNED = {"typer": {"cli"}, "rich": {"cli"}, "click": {"cli"}, "mido": {"midi"}, "miditoolkit": {"midi"}}
# Bundled provenance scripts that are data, not aurl code (they import music21).
EXCLUDED = {PACKAGE / "data" / "corpus" / "bach"}


def source_files() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if not any(folder in path.parents for folder in EXCLUDED)
    )


def part_of(path: Path) -> str:
    """The top-level module or package of aurl that a file belongs to ('midi', 'config', '__init__')."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file (or in `text`, as if it were the
    file's), relative ones resolved."""
    source = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(source, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from aurl import midi` reaches aurl.midi; `from aurl import preprocess`, the facade
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def target_of(module: str) -> str | None:
    """The part of aurl a module name points into, '__init__' for the facade, None outside aurl."""
    parts = module.split(".")
    if parts[0] != "aurl":
        return None
    if len(parts) == 1:
        return "__init__"
    return parts[1] if parts[1] in LEVELS else "__init__"


def layer_violations_in(path: Path, text: str | None = None) -> list[str]:
    source = part_of(path)
    if source in TOP:
        return []
    if source not in LEVELS:
        return [f"{path}: aurl.{source} has no level in tests/test_layers.py LEVELS"]
    problems: dict[tuple[int, str], str] = {}
    for line, module in imported_modules(path, text):
        target = target_of(module)
        if target is None or target == source:
            continue
        if target == "__init__" or LEVELS[target] >= LEVELS[source]:
            direction = "sideways" if LEVELS.get(target) == LEVELS[source] else "upward"
            problems.setdefault(
                (line, target), f"{path.relative_to(PACKAGE)}:{line}: {direction} import of {module}"
            )
    return list(problems.values())


def layer_violations() -> list[str]:
    return [problem for path in source_files() for problem in layer_violations_in(path)]


def ownership_violations() -> list[str]:
    problems = []
    for path in source_files():
        source = part_of(path)
        for line, module in imported_modules(path):
            owners = OWNED.get(module.split(".")[0])
            if owners is not None and source not in owners:
                problems.append(f"{path.relative_to(PACKAGE)}:{line}: {module} belongs in {sorted(owners)}")
    return problems


def test_imports_point_down() -> None:
    assert layer_violations() == []


def test_third_party_packages_stay_in_their_layer() -> None:
    assert ownership_violations() == []


@pytest.mark.parametrize(
    ("relative", "text", "direction"),
    [
        ("midi/x.py", "from aurl.tokens import encode\n", "upward"),
        ("models/y.py", "import aurl.data.cache\n", "sideways"),
        ("tokens/z.py", "def f():\n    from ..cli import app\n", "upward"),
        ("data/w.py", "from aurl import preprocess\n", "upward"),
        ("analyze/v.py", "from aurl import data\n", "sideways"),
    ],
)
def test_the_checker_catches_bad_imports(relative: str, text: str, direction: str) -> None:
    problems = layer_violations_in(PACKAGE / relative, text)
    assert len(problems) == 1 and f"{direction} import" in problems[0]


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("tokens/x.py", "from aurl.midi.score import Score\nfrom . import vocab\n"),
        ("config.py", "from aurl import paths\nfrom aurl.errors import ConfigError\n"),
        ("cli/app.py", "from aurl.version import __version__\nimport numpy\n"),
    ],
)
def test_the_checker_allows_downward_imports(relative: str, text: str) -> None:
    assert layer_violations_in(PACKAGE / relative, text) == []


@pytest.mark.parametrize(
    "statement",
    ["import aurl", "import aurl.cli.app", "import aurl.data.preprocess", "import aurl.data.cache"],
)
def test_light_imports_never_load_torch(statement: str) -> None:
    code = f"{statement}; import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"{statement} imports torch"


def test_import_aurl_is_lazy_and_exports_the_user_api() -> None:
    code = (
        "import sys, aurl\n"
        "before = sorted(m for m in sys.modules if m.startswith('aurl.'))\n"
        "from aurl.tokens import encode\n"
        "assert aurl.encode is encode\n"
        "assert callable(aurl.preprocess) and callable(aurl.read_midi) and callable(aurl.decode)\n"
        "print(before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['aurl.version']", "import aurl should load nothing but its version"


def test_unknown_attribute_of_aurl_is_an_attribute_error() -> None:
    import aurl

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        aurl.nonexistent  # noqa: B018
    assert "preprocess" in dir(aurl)
