"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s bench`.

Each forwards its arguments, e.g. `nox -s tests -- -k cache -x` or `nox -s lint -- --fix`;
`nox -s bench -- preprocess sample` picks benchmarks by name.
"""

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Installed before the project: the pinned CPU wheel; a plain `torch` would pull gigabytes of CUDA.
TORCH = "torch==2.13.0"


def install_project(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest arguments after `--`)."""
    install_project(session, "dev")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check (arguments after `--`) and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", *(session.posargs or ["."]))
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over src/aurl (or the paths after `--`)."""
    install_project(session, "dev")
    session.run("mypy", *session.posargs)


# The peers the benchmarks measure aurl against, installed in the bench session only.
PEERS = ("miditok", "transformers", "music21")


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks/*.py against their peers (`nox -s bench -- sample` runs benchmarks/sample.py only)."""
    scripts = sorted(Path("benchmarks").glob("*.py"))
    if session.posargs:
        scripts = [s for s in scripts if s.stem in session.posargs]
    if not scripts:
        session.skip("no benchmarks/*.py to run")
    install_project(session, "export")
    session.install(*PEERS)
    for script in scripts:
        session.run("python", str(script))
