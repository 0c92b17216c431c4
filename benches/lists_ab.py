"""Time the building of id lists in several builds of supertok, loaded side by side.

    python benches/lists_ab.py --build main=/work/so/base-f00c668.so --build copy=/tmp/copy.so \
        [--build this=python/supertok/_core.cpython-311-x86_64-linux-gnu.so] [--rounds 31] \
        [--encodings o200k_base cl100k_base] [--corpora multilingual en.txt] [--mode sample|stream]

Every ``--build label=path`` is another build's ``supertok._core`` (give an A/A copy of one
build a different path: a path loads once per process). For each build and corpus (the
warm 2 MB sample of ``bench_encode.py``, or the whole stream with the piece cache cleared
first) it times, interleaved (the order rotating and reversing every round), thread CPU:
``full`` (``[encode_ordinary(d) for d in docs]``, lists freed inside), ``nogc`` (the same
with the cyclic GC off) and ``count`` (the same encoder, no list, GC off). Prints the
medians and, per id, ``lists`` = the median of each round's ``nogc - count`` (building and
freeing the lists) and ``gc`` = ``full - nogc``. Writes nothing.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", required=True, help="label=path of a _core extension module")
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--encodings", nargs="+", default=["o200k_base"])
    ap.add_argument("--corpora", nargs="+", default=["multilingual", "en.txt"])
    ap.add_argument("--mode", default="sample", choices=["sample", "stream"])
    args = ap.parse_args()
    mods = {}
    for i, b in enumerate(args.build):
        label, path = b.split("=", 1)
        mods[label] = C.load_extension(path, f"b{i}")
    print(f"load: {os.getloadavg()[0]:.2f}", flush=True)
    for name in args.encodings:
        ours = supertok.get_encoding(name)
        encs = {
            label: m.CoreEncoding.from_tiktoken_file(B.tiktoken_ranks_file(name), {}, ours._pat_str)
            for label, m in mods.items()
        }
        for corpus in args.corpora:
            docs = B.corpus_docs(corpus)
            if docs is None:
                print(f"{corpus}: corpus absent, skipped")
                continue
            if args.mode == "sample":
                docs = B.sample(docs, 2.0)
            nb = sum(len(d.encode()) for d in docs)
            results = [[e.encode_ordinary(d) for d in docs[:300]] for e in encs.values()]
            if any(r != results[0] for r in results):
                raise SystemExit(f"{name} {corpus}: the builds disagree")
            ntok = sum(len(next(iter(encs.values())).encode_ordinary(d)) for d in docs)
            fns: dict[tuple[str, str], Callable[[], object]] = {}
            for label, e in encs.items():
                m = mods[label]

                def full(e=e, m=m, docs=docs) -> None:
                    if args.mode == "stream":
                        m._clear_piece_cache()
                    [e.encode_ordinary(d) for d in docs]

                def count(e=e, m=m, docs=docs) -> None:
                    if args.mode == "stream":
                        m._clear_piece_cache()
                    [e.count(d, None, None) for d in docs]

                fns[(label, "full")] = full
                fns[(label, "nogc")] = C.nogc(full)
                fns[(label, "count")] = C.nogc(count)
            for f in fns.values():
                f()
            times: dict[tuple[str, str], list[float]] = {k: [] for k in fns}
            keys = list(fns)
            for r in range(args.rounds):
                rot = keys[(r * 3) % len(keys) :] + keys[: (r * 3) % len(keys)]
                for k in rot[::-1] if r % 2 else rot:
                    t = time.thread_time()
                    fns[k]()
                    times[k].append(time.thread_time() - t)
            print(f"{name} {corpus} {args.mode} ({nb / 1e6:.2f} MB, {ntok} ids, {ntok / nb:.3f} per byte)")
            for label in encs:
                md = {k: statistics.median(times[(label, k)]) for k in ("full", "nogc", "count")}
                lists = statistics.median(n - c for n, c in zip(times[(label, "nogc")], times[(label, "count")]))
                print(
                    f"  {label:10s} full {md['full'] * 1e3:7.2f} ms  nogc {md['nogc'] * 1e3:7.2f}  "
                    f"count {md['count'] * 1e3:7.2f}  lists {lists * 1e9 / ntok:5.2f} ns/id  "
                    f"gc {(md['full'] - md['nogc']) * 1e9 / ntok:5.2f} ns/id",
                    flush=True,
                )
    print(f"load: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
