"""The `aurl` command: a Typer app (app.py) with one module per subcommand; the only package that
imports typer and rich."""
