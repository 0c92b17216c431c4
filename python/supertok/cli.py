"""The ``supertok`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed namespace, returning an exit code). To add a
subcommand, add its module to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: Modules that provide subcommands (each has ``register(subparsers)``).
SUBCOMMANDS: list[str] = [
    "supertok.cli_train",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from supertok import __version__

    parser = argparse.ArgumentParser(prog="supertok", description="Fast, exact byte-level BPE tokenizers.")
    parser.add_argument("--version", action="version", version=f"supertok {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMANDS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``supertok`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, TypeError) as e:
        print(f"supertok {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
