"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s bench`.

Each forwards its arguments, e.g. `nox -s tests -- -k cache -x` or `nox -s lint -- --fix`.
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


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmarks/*.py against MidiTok, installed in this session only (arguments after `--`)."""
    scripts = sorted(Path("benchmarks").glob("*.py"))
    if not scripts:
        session.skip("no benchmarks/*.py to run")
    install_project(session)
    session.install("miditok")
    for script in scripts:
        session.run("python", str(script), *session.posargs)
