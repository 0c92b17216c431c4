"""The ``supertok`` command line.

Subcommands live in their own modules and register themselves in ``SUBCOMMANDS``:
each entry maps a name to ``(help, add_arguments(parser), run(args) -> int)``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

Subcommand = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _demo() -> Subcommand:
    from supertok import demo

    return (demo.HELP, demo.add_arguments, demo.run)


def _eval() -> Subcommand:
    from supertok import cli_eval

    return (cli_eval.HELP, cli_eval.add_arguments, cli_eval.run)


def _train() -> Subcommand:
    from supertok import cli_train

    return (cli_train.HELP, cli_train.add_arguments, cli_train.run)


def _encode_dataset() -> Subcommand:
    from supertok import cli_dataset

    return (cli_dataset.HELP, cli_dataset.add_arguments, cli_dataset.run)


# name -> factory (imported lazily so that `supertok --help` stays fast)
SUBCOMMANDS: dict[str, Callable[[], Subcommand]] = {
    "demo": _demo,
    "eval": _eval,
    "train": _train,
    "encode-dataset": _encode_dataset,
}


def build_parser() -> argparse.ArgumentParser:
    from supertok import __version__

    parser = argparse.ArgumentParser(prog="supertok", description="Fast, exact byte-level BPE tokenizers.")
    parser.add_argument("--version", action="version", version=f"supertok {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, factory in SUBCOMMANDS.items():
        help_, add_arguments, run = factory()
        p = sub.add_parser(name, help=help_, description=help_)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError, KeyError, ImportError) as e:
        print(f"supertok {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
