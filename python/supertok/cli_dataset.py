"""``supertok encode-dataset``: tokenize text/JSONL/Parquet shards (on Dask or in-process)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Iterator

HELP = (
    "tokenize text, JSONL or Parquet files into token ids (Parquet list<uint32> or .npy + "
    "offsets) with a manifest; restartable; on a Dask cluster with --dask/--workers"
)


def add_dask_arguments(p: argparse.ArgumentParser) -> None:
    """``--dask ADDRESS`` / ``--workers N`` (shared by ``train`` and ``encode-dataset``)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler address (e.g. tcp://host:8786)")
    g.add_argument("--workers", type=int, metavar="N", help="start a LocalCluster with N worker processes")


@contextlib.contextmanager
def dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """A Dask client for ``--dask``/``--workers`` (``False``, i.e. in-process, without them)."""
    if getattr(args, "dask", None):
        from distributed import Client

        with Client(args.dask) as client:
            yield client
    elif getattr(args, "workers", None):
        from supertok.distributed import local_client

        with local_client(args.workers) as client:
            yield client
    else:
        yield False


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``encode-dataset`` arguments to ``p``."""
    p.add_argument("inputs", nargs="+", help="input files, directories or globs (.txt, .jsonl, .parquet, .gz)")
    p.add_argument("--tokenizer", required=True, help="encoding name (o200k_base, cl100k_base, ...) or tokenizer.json")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--format", choices=("parquet", "npy"), default="parquet", help="output format (default parquet)")
    p.add_argument("--text-column", default="text", help="JSONL field / Parquet column with the text")
    p.add_argument(
        "--text-unit", choices=("line", "paragraph", "file"), default="line", help="document unit of text files"
    )
    p.add_argument("--input-format", choices=("auto", "text", "jsonl", "parquet"), default="auto")
    p.add_argument("--no-eot", action="store_true", help="do not append the end-of-text token to documents")
    p.add_argument("--eot-token", default="<|endoftext|>", help="end-of-text token (default <|endoftext|>)")
    p.add_argument("--errors", choices=("strict", "replace"), default="strict", help="invalid UTF-8 handling")
    p.add_argument("--shard-mb", type=float, default=256, help="split larger text/JSONL files (MB; 0: never)")
    p.add_argument("--overwrite", action="store_true", help="re-encode everything")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_dask_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``supertok encode-dataset``."""
    from supertok.distributed import DatasetEncodeError, encode_dataset

    shard_bytes = int(args.shard_mb * 1e6) if args.shard_mb and args.shard_mb > 0 else None
    with dask_client(args) as client:
        try:
            res = encode_dataset(
                args.tokenizer,
                args.inputs,
                args.out,
                client=client,
                text_column=args.text_column,
                format=args.format,
                append_eot=not args.no_eot,
                eot_token=args.eot_token,
                text_unit=args.text_unit,
                input_format=args.input_format,
                errors=args.errors,
                shard_bytes=shard_bytes,
                overwrite=args.overwrite,
                show_progress=not args.quiet,
            )
        except DatasetEncodeError as e:
            print(f"supertok encode-dataset: {e}", file=sys.stderr)
            print(e.result.line(), file=sys.stderr)
            return 1
    if not args.quiet:
        print(res.line(), file=sys.stderr)
        print(f"wrote {res.manifest}", file=sys.stderr)
    return 0
