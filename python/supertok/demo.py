"""``supertok demo``: the package's main job on an embedded default corpus.

The default corpus exists on every machine: the source of the Python standard library that
runs this command (``--data`` picks any text files instead). The demo has two parts:

1. **Encode**: for each bundled encoding, token counts, bytes per token and encode
   throughput, with tiktoken side by side when it is installed (loaded from supertok's
   bundled files, so nothing is downloaded).
2. **Train**: BPE and SuperBPE tokenizers are trained on the first 90 % of the documents at a
   few vocabulary sizes and evaluated on the held-out 10 %: bytes/token, the token reduction
   of SuperBPE over BPE, train and encode time. A PNG plot of bytes/token vs vocabulary size
   is written when matplotlib is installed (``--plot``).
"""

from __future__ import annotations

import argparse
import os
import sysconfig
import time

HELP = "encode a corpus with every bundled encoding, then train BPE vs SuperBPE on it and compare"

DEFAULT_MODULES = ["json", "email", "http", "logging", "unittest", "asyncio", "argparse.py", "typing.py", "inspect.py", "pathlib.py"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="*", metavar="FILE", help="text files to encode (default: Python stdlib source)")
    p.add_argument("--max-bytes", type=int, default=4_000_000, help="use at most this many bytes of text")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for the batch run")
    p.add_argument(
        "--vocab-sizes", default="1024,2048,4096,8192", metavar="N,N,...",
        help="vocabulary sizes for the BPE vs SuperBPE part (empty: skip training)",
    )
    p.add_argument("--transition", type=float, default=0.8, help="SuperBPE transition as a fraction of the vocabulary")
    p.add_argument("--plot", default="supertok-demo.png", metavar="PNG", help="where to write the plot ('' for none)")


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
        room = max_bytes - total
        if len(text.encode("utf-8")) > room:
            # cut the last document at a line boundary within the byte budget
            text = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
            text = text[: text.rfind("\n") + 1] or text
            docs.append(text)
            break
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

    sizes = _vocab_sizes(args.vocab_sizes)
    if not 0.0 <= args.transition <= 1.0:
        raise ValueError(f"--transition must be a fraction in [0, 1], got {args.transition}")
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
    if sizes:
        print()
        _train_part(docs, sizes, args.transition, args.threads, args.plot)
    return 0


def _vocab_sizes(spec: str) -> list[int]:
    try:
        sizes = [int(x) for x in spec.replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"--vocab-sizes must be comma-separated integers, got {spec!r}") from None
    bad = [v for v in sizes if v <= 256]
    if bad:
        raise ValueError(f"--vocab-sizes must be > 256 (the byte alphabet), got {bad}")
    return sorted(set(sizes))


def _train_part(docs: list[str], sizes: list[int], transition: float, threads: int, plot: str) -> None:
    """Train BPE and SuperBPE on 90 % of ``docs`` and compare them on the other 10 %."""
    import supertok

    n_test = max(1, len(docs) // 10)
    if len(docs) < 2:
        # one document: hold out its last tenth (cut at a line boundary)
        text = docs[0]
        cut = text.rfind("\n", 0, len(text) * 9 // 10) + 1 or len(text) * 9 // 10
        train_docs, test_docs = [text[:cut]], [text[cut:]]
    else:
        train_docs, test_docs = docs[:-n_test], docs[-n_test:]
    test_bytes = sum(len(d.encode("utf-8")) for d in test_docs)
    train_bytes = sum(len(d.encode("utf-8")) for d in train_docs)
    print(
        f"BPE vs SuperBPE (transition {transition:.0%} of the vocabulary): train on {len(train_docs)} documents "
        f"({train_bytes / 1e6:.2f} MB), evaluate on {len(test_docs)} held-out documents ({test_bytes / 1e6:.2f} MB)"
    )
    header = f"{'tokenizer':<10} {'vocab':>6} {'train s':>8} {'tokens':>9} {'bytes/tok':>9} {'vs BPE':>7} {'encode MB/s':>11}"
    print(header)
    print("-" * len(header))
    rows: list[tuple[str, int, float]] = []
    for v in sizes:
        bpe_tokens = 0
        for kind in ("BPE", "SuperBPE"):
            t = time.perf_counter()
            if kind == "BPE":
                # the same stage-1 pre-tokenizer, no stage 2: plain BPE
                tok = supertok.train_superbpe_from_iterator(train_docs, v, 1.0, threads=threads, show_progress=False)
            else:
                tok = supertok.train_superbpe_from_iterator(train_docs, v, transition, threads=threads, show_progress=False)
            train_s = time.perf_counter() - t
            n_tok = sum(len(x) for x in tok.encode_batch(test_docs, add_special_tokens=False))
            enc_s = _best_of(lambda: [tok.encode(d, add_special_tokens=False) for d in test_docs])
            if kind == "BPE":
                bpe_tokens = n_tok
                rel = ""
            else:
                rel = f"{n_tok / bpe_tokens - 1:+.1%}"
            bpt = test_bytes / n_tok
            rows.append((kind, v, bpt))
            print(f"{kind:<10} {v:>6} {train_s:>8.2f} {n_tok:>9,} {bpt:>9.3f} {rel:>7} {test_bytes / enc_s / 1e6:>11.1f}")
    if plot:
        _plot(rows, transition, plot)


def _plot(rows: list[tuple[str, int, float]], transition: float, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plot (pip install 'supertok[plot]')")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, style in (("BPE", "o-"), ("SuperBPE", "s-")):
        pts = [(v, b) for k, v, b in rows if k == kind]
        label = kind if kind == "BPE" else f"SuperBPE (t = {transition:.0%})"
        ax.plot([v for v, _ in pts], [b for _, b in pts], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("vocabulary size")
    ax.set_ylabel("held-out bytes per token (higher is better)")
    ax.set_title("BPE vs SuperBPE on the demo corpus")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nplot written to {path}")
