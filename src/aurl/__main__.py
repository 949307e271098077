"""`python -m aurl`: the same as the `aurl` command."""

from aurl.cli.app import main

if __name__ == "__main__":
    main()
