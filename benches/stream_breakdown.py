"""Where the time of one whole-corpus stream goes at the Python level (issue 3, target 1).

    python benches/stream_breakdown.py [--rounds 5] [--encodings o200k_base] [--corpora en.txt code.txt]
    python benches/stream_breakdown.py --sample 2 ...   # the warm 2 MB sample instead

For each corpus, times (thread CPU, interleaved rounds, medians) the stream exactly as
``bench_encode.py --only stream`` does (every document once, the piece cache cleared first,
``[enc.encode_ordinary(d) for d in docs]``) and variants that take one part away:

- ``full``: the benchmark's call;
- ``nogc``: the same with ``gc.disable()`` (a diagnostic only: the cyclic GC's gen-0/1/2
  traversals that the young lists cause);
- ``count``: ``count`` on an encoding without special tokens (the same encoder into the
  reused per-thread buffer, no list: call, argument conversion, lexing, lookups, merges);
- ``empty``: one call per document on an empty string (call overhead only);
- tiktoken ``full`` and ``nogc`` for comparison.

Prints ns per byte of each part: call overhead, encoding (Rust), building and freeing the
lists, GC. Writes nothing.

``--sample MB`` breaks down ``bench_encode.py``'s single-thread table instead: the same
evenly spaced documents, the piece cache warm (never cleared; one untimed pass first),
the variants interleaved with tiktoken as there. ``count`` then runs on the benchmark's
own encoding (``count(d, None, None)``: no special token is looked for in these corpora's
documents, and it uses the same piece-cache entries as ``full``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import bench_encode as B  # noqa: E402
import supertok  # noqa: E402
import supertok._core as core  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--encodings", nargs="+", default=["o200k_base"])
    ap.add_argument("--corpora", nargs="+", default=["en.txt", "code.txt"])
    ap.add_argument("--sample", type=float, default=None, help="MB of evenly spaced documents, warm cache")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f}")
    for name in args.encodings:
        enc = supertok.get_encoding(name)
        bare = core.CoreEncoding.from_tiktoken_file(B.tiktoken_ranks_file(name), {}, enc._pat_str)
        tk = B.load_tiktoken(name)
        for corpus in args.corpora:
            docs = B.corpus_docs(corpus)
            if docs is None:
                print(f"{corpus}: corpus absent, skipped")
                continue
            warm = args.sample is not None
            if warm:
                docs = B.sample(docs, args.sample)
            nb = sum(len(d.encode()) for d in docs)
            ntok = sum(len(x) for x in (enc.encode_ordinary(d) for d in docs))
            empties = [""] * len(docs)

            def full(docs=docs) -> None:
                if not warm:
                    core._clear_piece_cache()
                [enc.encode_ordinary(d) for d in docs]

            def count(docs=docs) -> None:
                if warm:
                    # the benchmark's encoding (a second one would share the per-thread
                    # cache with it, under another owner)
                    [enc._core_bpe.count(d, None, None) for d in docs]
                else:
                    core._clear_piece_cache()
                    [bare.count(d, None, None) for d in docs]

            fns: dict[str, Callable[[], object]] = {
                "full": full,
                "nogc": C.nogc(full),
                "count": C.nogc(count),
                "empty": C.nogc(lambda: [enc.encode_ordinary(d) for d in empties]),
                "tk full": lambda docs=docs: [tk.encode_ordinary(d) for d in docs],
                "tk nogc": C.nogc(lambda docs=docs: [tk.encode_ordinary(d) for d in docs]),
            }
            if warm:
                for f in fns.values():
                    f()
            times: dict[str, list[float]] = {k: [] for k in fns}
            keys = list(fns)
            for r in range(args.rounds):
                for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
                    t = time.thread_time()
                    fns[k]()
                    times[k].append(time.thread_time() - t)
            m = {k: statistics.median(v) * 1e9 / nb for k, v in times.items()}
            print(
                f"{name} {corpus}{' sample' if warm else ''} ({nb / 1e6:.1f} MB, {len(docs)} docs, {ntok / nb:.3f} tokens/B), ns/B: "
                f"full {m['full']:.2f} = call {m['empty']:.2f} + encode {m['count'] - m['empty']:.2f} "
                f"+ lists {m['nogc'] - m['count']:.2f} ({(m['nogc'] - m['count']) * nb / ntok:.2f} ns/token) "
                f"+ GC {m['full'] - m['nogc']:.2f}; "
                f"tiktoken full {m['tk full']:.2f} (GC {m['tk full'] - m['tk nogc']:.2f}); "
                f"x tiktoken {m['tk full'] / m['full']:.2f}",
                flush=True,
            )
    print(f"load: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
