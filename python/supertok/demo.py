"""``supertok demo``: the package's main job on an embedded default corpus.

The default corpus exists on every machine: the source of the Python standard library that
runs this command (``--data`` picks any text files instead). For each bundled encoding it
prints token counts, bytes per token and encode throughput, with tiktoken side by side when
it is installed (loaded from supertok's bundled files, so nothing is downloaded).
"""

from __future__ import annotations

import argparse
import os
import sysconfig
import time

HELP = "encode a corpus with every bundled encoding and print counts, bytes/token and speed"

DEFAULT_MODULES = ["json", "email", "http", "logging", "unittest", "asyncio", "argparse.py", "typing.py", "inspect.py", "pathlib.py"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="*", metavar="FILE", help="text files to encode (default: Python stdlib source)")
    p.add_argument("--max-bytes", type=int, default=4_000_000, help="use at most this many bytes of text")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for the batch run")


def stdlib_corpus(max_bytes: int) -> tuple[str, list[str]]:
    """(description, documents): .py files of some stdlib packages, in a fixed order."""
    root = sysconfig.get_paths()["stdlib"]
    files: list[str] = []
    for m in DEFAULT_MODULES:
        p = os.path.join(root, m)
        if os.path.isdir(p):
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if d not in ("test", "tests", "__pycache__"))
                files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
        elif os.path.exists(p):
            files.append(p)
    return f"Python {sysconfig.get_python_version()} standard library source ({root})", _read(files, max_bytes)


def _read(files: list[str], max_bytes: int) -> list[str]:
    docs, total = [], 0
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        docs.append(text)
        total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    return docs


def _reference(name: str):
    """tiktoken built from supertok's bundled file, or None when tiktoken is not installed."""
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return None
    import supertok
    from supertok.registry import DATA_DIR

    ours = supertok.get_encoding(name)
    file = "r50k_base.tiktoken" if name in ("gpt2", "r50k_base") else f"{name}.tiktoken"
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(DATA_DIR, file))
    return tiktoken.Encoding(name, pat_str=ours._pat_str, mergeable_ranks=ranks, special_tokens=dict(ours._special_tokens))


def _best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(args: argparse.Namespace) -> int:
    import supertok

    if args.data:
        what, docs = ", ".join(args.data), _read(list(args.data), args.max_bytes)
    else:
        what, docs = stdlib_corpus(args.max_bytes)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"corpus: {what}\n        {len(docs)} documents, {n_bytes / 1e6:.2f} MB\n")
    header = f"{'encoding':<12} {'tokens':>10} {'bytes/tok':>9} {'load ms':>8} {'1 thread MB/s':>14} {f'{args.threads} threads MB/s':>15}"
    print(header)
    print("-" * len(header))
    refs = {}
    for name in ("r50k_base", "cl100k_base", "o200k_base"):
        t = time.perf_counter()
        enc = supertok.get_encoding(name)
        load_ms = (time.perf_counter() - t) * 1e3
        ids = enc.encode_ordinary_batch(docs, num_threads=args.threads)
        n_tok = sum(len(x) for x in ids)
        t1 = _best_of(lambda: [enc.encode_ordinary(d) for d in docs])
        tn = _best_of(lambda: enc.encode_ordinary_batch(docs, num_threads=args.threads))
        print(f"{name:<12} {n_tok:>10,} {n_bytes / n_tok:>9.3f} {load_ms:>8.1f} {n_bytes / t1 / 1e6:>14.1f} {n_bytes / tn / 1e6:>15.1f}")
        refs[name] = (enc, ids, t1)
    print()
    for name, (enc, ids, t1) in refs.items():
        ref = _reference(name)
        if ref is None:
            print("tiktoken not installed: no side-by-side comparison")
            break
        same = ref.encode_ordinary_batch(docs) == ids
        tr = _best_of(lambda: [ref.encode_ordinary(d) for d in docs])
        print(f"vs tiktoken {name:<12} identical ids: {'yes' if same else 'NO'}   speed ratio (1 thread): {tr / t1:.2f}x")
    return 0
