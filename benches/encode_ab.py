"""Compare two builds of supertok's encoder in one process, side by side with tiktoken.

    python benches/encode_ab.py --other /work/main/python/supertok/_core.cpython-311-x86_64-linux-gnu.so \
        [--rounds 7] [--encodings o200k_base cl100k_base] [--corpora en.txt code.txt]

Loads the extension module ``--other`` (another build's ``supertok._core``, e.g. main's)
next to this checkout's, and times ``encode_ordinary`` over the same documents as
``bench_encode.py``: the whole-corpus stream (every document once per pass, each build's
piece cache cleared before its pass) and the repeated 2 MB sample. The three encoders run
interleaved (the order rotating every round); medians of thread CPU time. Prints
MB/s, the ratios against tiktoken and after/before (this build / ``--other``: the ratio
of the medians, and the median of each round's own ratio, steadier under changing load); writes
nothing. Both builds must give the same ids (checked on the first 300 documents).

``--worst`` times issue 3's worst-case inputs instead (``bench_encode.adversarial_inputs``:
one call on one long input, the three encoders interleaved, tiktoken only on inputs of
at most 200 KB), printing ns/byte, ns/token and after/before per input.
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
import supertok._core as NEW  # noqa: E402


def load_extension(path: str):
    """Import the extension module at ``path`` under a private name."""
    return C.load_extension(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True, help="path of the other build's _core extension module")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--encodings", nargs="+", default=["o200k_base"])
    ap.add_argument("--corpora", nargs="+", default=["en.txt", "code.txt"])
    ap.add_argument("--worst", action="store_true", help="time the worst-case inputs instead of the corpora")
    args = ap.parse_args()
    old_mod = load_extension(args.other)
    print(f"load: {os.getloadavg()[0]:.2f}")
    for name in args.encodings:
        enc = supertok.get_encoding(name)
        new = enc._core_bpe
        old = old_mod.CoreEncoding.from_tiktoken_file(B.tiktoken_ranks_file(name), {}, enc._pat_str)
        tk = B.load_tiktoken(name)
        if args.worst:
            worst_cases(name, new, old, tk, args.rounds)
            continue
        for corpus in args.corpora:
            docs = B.corpus_docs(corpus)
            if docs is None:
                print(f"{corpus}: corpus absent, skipped")
                continue
            for label, ds in (("stream", docs), ("sample 2 MB", B.sample(docs, 2.0))):
                nb = sum(len(d.encode()) for d in ds)
                head = ds[:300]
                if [old.encode_ordinary(d) for d in head] != [new.encode_ordinary(d) for d in head]:
                    raise SystemExit(f"{name} {corpus}: the two builds disagree")
                fns: dict[str, Callable[[], object]]
                if label == "stream":
                    fns = {
                        "before": lambda ds=ds: (old_mod._clear_piece_cache(), [old.encode_ordinary(d) for d in ds]),
                        "after": lambda ds=ds: (NEW._clear_piece_cache(), [new.encode_ordinary(d) for d in ds]),
                    }
                else:
                    fns = {
                        "before": lambda ds=ds: [old.encode_ordinary(d) for d in ds],
                        "after": lambda ds=ds: [new.encode_ordinary(d) for d in ds],
                    }
                    for f in fns.values():
                        f()
                fns["tiktoken"] = lambda ds=ds: [tk.encode_ordinary(d) for d in ds]
                times: dict[str, list[float]] = {k: [] for k in fns}
                keys = list(fns)
                for r in range(args.rounds):
                    for k in keys[r % 3 :] + keys[: r % 3]:
                        t = time.thread_time()
                        fns[k]()
                        times[k].append(time.thread_time() - t)
                m = {k: statistics.median(v) for k, v in times.items()}
                # the median of the rounds' own ratios follows load changes between rounds
                paired = statistics.median(b / a for b, a in zip(times["before"], times["after"]))
                print(
                    f"{name} {corpus} {label} ({nb / 1e6:.1f} MB): "
                    f"before {nb / m['before'] / 1e6:.1f} MB/s ({m['tiktoken'] / m['before']:.2f}x tiktoken), "
                    f"after {nb / m['after'] / 1e6:.1f} MB/s ({m['tiktoken'] / m['after']:.2f}x), "
                    f"tiktoken {nb / m['tiktoken'] / 1e6:.1f} MB/s; after/before {m['before'] / m['after']:.3f} "
                    f"(paired rounds {paired:.3f})",
                    flush=True,
                )
    print(f"load: {os.getloadavg()[0]:.2f}")


def worst_cases(name: str, new, old, tk, rounds: int) -> None:
    """One call per encoder and round on each worst-case input, interleaved."""
    for label, text in B.adversarial_inputs():
        nb = len(text.encode())
        ref = old.encode_ordinary(text)
        if new.encode_ordinary(text) != ref:
            raise SystemExit(f"{name} {label}: the two builds disagree")
        fns: dict[str, Callable[[], object]] = {
            "before": lambda t=text: old.encode_ordinary(t),
            "after": lambda t=text: new.encode_ordinary(t),
        }
        if nb <= 200_000:
            fns["tiktoken"] = lambda t=text: tk.encode_ordinary(t)
        times: dict[str, list[float]] = {k: [] for k in fns}
        keys = list(fns)
        for r in range(rounds):
            for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
                t = time.thread_time()
                fns[k]()
                times[k].append(time.thread_time() - t)
        m = {k: statistics.median(v) for k, v in times.items()}
        line = (
            f"{name} {label}: after {m['after'] / nb * 1e9:.1f} ns/B {m['after'] / len(ref) * 1e9:.1f} ns/token, "
            f"before {m['before'] / nb * 1e9:.1f} ns/B; after/before {m['before'] / m['after']:.3f}"
        )
        if "tiktoken" in m:
            line += f"; vs tiktoken after {m['tiktoken'] / m['after']:.1f}x, before {m['tiktoken'] / m['before']:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
