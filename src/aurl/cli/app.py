"""The `aurl` Typer app, its global options, and the one place that turns outcomes into exit codes.

Exit codes: 0 success; 1 an AurlError (one line on stderr); 2 a usage or configuration error;
3 partial success (a command printed its result, then raised PartialSuccess); 130 interrupted.
Any other exception is a bug: it propagates with its traceback.
"""

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from aurl.cli import analyze, evaluate, export, preprocess, resume, train
from aurl.cli import sample as sample_cli
from aurl.cli._output import PartialSuccess, configure, session
from aurl.errors import AurlError, UsageError
from aurl.version import __version__

# Recent Typer vendors Click (typer._click), older Typer uses the click package; BadParameter is
# public in both, and its bases are the ClickException and UsageError of whichever is in use.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class AurlGroup(TyperGroup):
    """The root command; its `main` maps every outcome to an exit code, also under CliRunner."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        def invoke() -> Any:
            return super(AurlGroup, self).main(
                args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )

        code = run_guarded(invoke)
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(invoke: Callable[[], Any]) -> int:
    """Run a Click invocation made with standalone_mode=False and return the exit code it earns."""
    session.verbose = session.quiet = False
    try:
        returned = invoke()
    except PartialSuccess as partial:
        _say("warning", str(partial))
        return EXIT_PARTIAL
    except AurlError as error:
        _say("error", str(error))
        _traceback_if_asked(error)
        return error.exit_code
    except _ClickException as error:
        return _click_error(error)
    except typer.Exit as exit_:  # Click returns these itself; this catches one raised outside it
        return int(exit_.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _say("error", "interrupted")
        return EXIT_INTERRUPTED
    # Click returns the code of a typer.Exit (--version, --help) and a command's own return value;
    # recent Typer turns Ctrl-C into a returned 130 itself.
    code = returned if isinstance(returned, int) else EXIT_OK
    if code == EXIT_INTERRUPTED:
        _say("error", "interrupted")
    return code


def _say(kind: str, message: str) -> None:
    # Plain write, not rich: a message must stay one line, unwrapped, whatever the terminal width.
    sys.stderr.write(f"{kind}: {' '.join(message.split())}\n")
    sys.stderr.flush()


def _traceback_if_asked(error: BaseException) -> None:
    if session.verbose or os.environ.get("AURL_DEBUG", "") not in ("", "0"):
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)


def _click_error(error: Exception) -> int:
    code = int(getattr(error, "exit_code", EXIT_USAGE))
    if type(error).__name__ == "NoArgsIsHelpError":  # bare `aurl`: the help was the message
        sys.stderr.write(error.format_message())  # type: ignore[attr-defined]
        return code
    ctx = getattr(error, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    _say("error", error.format_message() + hint)  # type: ignore[attr-defined]
    return code


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"aurl {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="aurl",
    cls=AurlGroup,
    help="Symbolic music generation: MIDI in, Transformer / VAE / VAE-GAN models, new music out.",
    epilog="Example: aurl preprocess my_midi/ --out data/tokens",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug messages; show tracebacks of errors.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log warnings and errors only; no progress bars.")
    ] = False,
) -> None:
    """aurl: learn from MIDI files and write new music as MIDI."""
    if verbose and quiet:
        raise UsageError("--verbose and --quiet contradict each other; pass one of them")
    configure(verbose=verbose, quiet=quiet)


app.command("preprocess", help=preprocess.HELP, epilog=preprocess.EXAMPLE)(preprocess.preprocess_command)
app.command("sample", help=sample_cli.HELP, epilog=sample_cli.EXAMPLE)(sample_cli.sample_command)
app.command("evaluate", help=evaluate.HELP, epilog=evaluate.EXAMPLE)(evaluate.evaluate_command)
app.command("analyze", help=analyze.HELP, epilog=analyze.EXAMPLE)(analyze.analyze_command)
app.command("export", help=export.HELP, epilog=export.EXAMPLE)(export.export_command)
app.command("train", help=train.HELP, epilog=train.EXAMPLE)(train.train_command)
app.command("resume", help=resume.HELP, epilog=resume.EXAMPLE)(resume.resume_command)


def main(argv: Sequence[str] | None = None) -> None:
    """The `aurl` console script: run the app on `argv` (default: sys.argv[1:]) and exit with its code."""
    typer.main.get_command(app).main(args=argv, prog_name="aurl")
