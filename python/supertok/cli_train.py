"""``supertok train``: train a byte-level BPE tokenizer from the command line."""

from __future__ import annotations

import argparse
import os
import sys


HELP = (
    "train a byte-level BPE tokenizer on UTF-8 text files and write it as HF tokenizer.json "
    "(or .tiktoken when --out ends in .tiktoken)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``p``."""
    p.add_argument("files", nargs="*", help="UTF-8 text files (each file is one text)")
    p.add_argument("--vocab-size", type=int, required=True, help="total vocabulary size (256 bytes + merges + specials)")
    p.add_argument("--pattern", default="o200k", help="o200k, cl100k, gpt2 or a regex (default o200k)")
    p.add_argument("--out", default="tokenizer.json", help="output file: tokenizer.json or *.tiktoken")
    p.add_argument("--special-token", action="append", default=[], metavar="TEXT", help="add a special token (repeatable)")
    p.add_argument("--min-frequency", type=int, default=1, help="stop when the best pair occurs fewer times")
    p.add_argument("--max-token-length", type=int, default=None, help="longest token in bytes")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument("--errors", choices=("strict", "replace"), default="strict", help="invalid UTF-8 handling")
    p.add_argument("--split-lines", action="store_true", help="pretokenize each line on its own (like HF)")
    p.add_argument("--save-counts", metavar="PATH", help="also save the pretoken counts (for reuse / merging)")
    p.add_argument(
        "--from-counts", action="append", default=[], metavar="PATH", help="train on saved counts (repeatable; summed)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    from supertok.cli_dataset import add_dask_arguments

    add_dask_arguments(p)  # --dask ADDRESS / --workers N: count on a Dask cluster


def run(args: argparse.Namespace) -> int:
    """Run ``supertok train``."""
    import importlib

    T = importlib.import_module("supertok.train")  # the module, not the function

    show = not args.quiet
    if not args.files and not args.from_counts:
        raise ValueError("give text files or --from-counts")
    counts = None
    import time

    t0 = time.perf_counter()
    if args.files and (args.dask or args.workers):
        from supertok.cli_dataset import dask_client
        from supertok.distributed import count_pretokens_dask

        with dask_client(args) as client:
            counts = count_pretokens_dask(
                args.files, args.pattern, client, split_lines=args.split_lines, errors=args.errors, show_progress=show
            )
    elif args.files:
        counts = T.count_pretokens(
            args.files,
            args.pattern,
            threads=args.threads,
            errors=args.errors,
            show_progress=show,
            split_lines=args.split_lines,
        )
    for path in args.from_counts:
        c = T.PretokenCounts.load(path)
        if counts is None:
            counts = c
        else:
            counts += c
    assert counts is not None
    if args.save_counts:
        counts.save(args.save_counts)
    specials = T._check_vocab(args.vocab_size, args.special_token)
    pattern = T.resolve_pattern(args.pattern) if args.files or counts.pattern is None else counts.pattern
    res = T._train_counts(
        counts,
        args.vocab_size,
        specials,
        args.min_frequency,
        args.max_token_length,
        pattern,
        show,
        time.perf_counter() - t0,
    )
    out = os.fspath(args.out)
    if out.endswith(".tiktoken"):
        from supertok.load import dump_tiktoken_bpe

        dump_tiktoken_bpe(res.mergeable_ranks(), out)
    else:
        tok = T._build(res)
        if not hasattr(tok, "save"):
            raise ValueError("writing tokenizer.json needs supertok.Tokenizer; use --out NAME.tiktoken")
        tok.save(out)
    if show:
        print(f"wrote {out}", file=sys.stderr)
    return 0
