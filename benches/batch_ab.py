"""A/B the batch and long-document paths of two builds in one process (issue 3, targets 3 and 5).

    python benches/batch_ab.py --other /work/wt/base/python/supertok/_core.cpython-311-x86_64-linux-gnu.so \
        [--rounds 7] [--batch-mb 8] [--long-mb 4] [--only batch long]

Loads ``--other`` (another build's ``supertok._core``) next to this checkout's and times,
for each build, ``encode_ordinary_batch`` / ``encode_batch`` on 1 and 2 threads over the
en.txt sample of ``bench_encode.py`` and ``encode_ordinary`` / ``encode_ordinary_parallel``
(2 threads) on the first ``--long-mb`` MB of en.txt as one string. Every round runs every
call once, the order rotating; medians of wall clock (the calls use several threads) and
of the calling thread's CPU time. Results are dropped inside the timed region (freeing the
lists is part of a call's cost). Writes nothing.
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
import encode_ab  # noqa: E402
import supertok  # noqa: E402


def thread_cpu() -> dict[int, tuple[int, int]]:
    """CPU time and run-queue delay (ns) of every thread of this process, from
    ``/proc/self/task/*/schedstat`` (the delay is time spent runnable but not running:
    other jobs holding the cores)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as fh:
                    f = fh.read().split()
                    out[int(tid)] = (int(f[0]), int(f[1]))
            except OSError:
                pass
    except OSError:
        pass
    return out


CLEAN: dict[str, list[float]] = {}
"""Wall times of the rounds in which no thread of ours waited for a core (run-queue delay
under 2 % of the call's wall time): what a quiet machine would show."""


def timed(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float]]:
    for f in fns.values():
        f()
    names = list(fns)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    proc: dict[str, list[float]] = {k: [] for k in names}
    busiest: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for k in order:
            th0 = thread_cpu()
            p = time.process_time()
            c = time.thread_time()
            t = time.perf_counter()
            fns[k]()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.thread_time() - c)
            proc[k].append(time.process_time() - p)
            th1 = thread_cpu()
            busiest[k].append(max((v[0] - th0.get(tid, (0, 0))[0]) for tid, v in th1.items()) / 1e9)
            delay = sum(v[1] - th0.get(tid, (0, 0))[1] for tid, v in th1.items()) / 1e9
            if delay < 0.02 * wall[k][-1]:
                CLEAN.setdefault(k, []).append(wall[k][-1])
    return {
        k: (statistics.median(wall[k]), statistics.median(cpu[k]), statistics.median(proc[k]), statistics.median(busiest[k]))
        for k in names
    }


def clean(one: str, two: str) -> str:
    """The wall-clock ratio over the rounds no thread waited for a core, if enough."""
    a, b = CLEAN.get(one, []), CLEAN.get(two, [])
    if len(a) < 3 or len(b) < 3:
        return f"(unloaded rounds: {len(a)}/{len(b)}, too few)"
    return f"unloaded rounds ({len(a)}/{len(b)}): wall ratio {statistics.median(a) / statistics.median(b):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-mb", type=float, default=8.0)
    ap.add_argument("--long-mb", type=float, default=4.0)
    ap.add_argument("--only", nargs="+", default=["batch", "long"])
    args = ap.parse_args()
    old_mod = encode_ab.load_extension(args.other)
    enc = supertok.get_encoding("o200k_base")
    new = enc._core_bpe
    old = old_mod.CoreEncoding.from_tiktoken_file(B.tiktoken_ranks_file("o200k_base"), enc._special_tokens, enc._pat_str)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    builds = {"before": old, "after": new}
    if "batch" in args.only:
        docs = B.sample(B.corpus_docs("en.txt") or [], args.batch_mb)
        nb = sum(len(d.encode()) for d in docs)
        ref = new.encode_ordinary_batch(docs, 1)
        for b in builds.values():
            assert b.encode_ordinary_batch(docs, 2) == ref
            assert b.encode_batch(docs, 2, set(), "all" and True) == ref
        fns: dict[str, Callable[[], object]] = {}
        for bn, b in builds.items():
            for n in (1, 2):
                fns[f"{bn} ordinary_batch {n}t"] = lambda b=b, n=n: (b.encode_ordinary_batch(docs, n), None)[1]
                fns[f"{bn} encode_batch {n}t"] = lambda b=b, n=n: (b.encode_batch(docs, n, set(), True), None)[1]
                fns[f"{bn} batch_to_bytes {n}t"] = lambda b=b, n=n: (b.encode_batch_to_bytes(docs, n, set(), True), None)[1]
        t = timed(fns, args.rounds)
        print(f"batch: {nb / 1e6:.2f} MB, {len(docs)} documents")
        for k, (w, c, pc, bz) in t.items():
            print(f"  {k:28s} wall {w * 1e3:7.2f} ms {nb / w / 1e6:6.1f} MB/s  cpu: caller {c * 1e3:6.2f} busiest {bz * 1e3:6.2f} all {pc * 1e3:6.2f} ms")
        for bn in builds:
            for call in ("ordinary_batch", "encode_batch", "batch_to_bytes"):
                one, two = t[f"{bn} {call} 1t"], t[f"{bn} {call} 2t"]
                est = one[2] / two[3]
                print(f"  {bn:6s} {call:16s} 2t/1t wall = {one[0] / two[0]:.3f}   cpu: all 1t / busiest thread 2t = {est:.3f}  cpu 2t/1t = {two[2] / one[2]:.3f}  {clean(f'{bn} {call} 1t', f'{bn} {call} 2t')}")
        for call in ("ordinary_batch", "encode_batch", "batch_to_bytes"):
            for n in (1, 2):
                a, b_ = t[f"after {call} {n}t"], t[f"before {call} {n}t"]
                print(
                    f"  after/before {call} {n}t speed: wall {b_[0] / a[0]:.3f}, "
                    f"all threads' cpu {b_[2] / a[2]:.3f}, busiest thread {b_[3] / a[3]:.3f}"
                )
    if "long" in args.only:
        text = (C.read_corpus("en.txt") or "")[: int(args.long_mb * 1e6)]
        nb = len(text.encode())
        ref = new.encode_ordinary(text)
        for b in builds.values():
            assert b.encode_ordinary_parallel(text, 2) == ref
        fns = {}
        for bn, b in builds.items():
            fns[f"{bn} sequential"] = lambda b=b: (b.encode_ordinary(text), None)[1]
            fns[f"{bn} parallel 2t"] = lambda b=b: (b.encode_ordinary_parallel(text, 2), None)[1]
        t = timed(fns, args.rounds)
        print(f"long: {nb / 1e6:.2f} MB")
        for k, (w, c, pc, bz) in t.items():
            print(f"  {k:28s} wall {w * 1e3:7.2f} ms {nb / w / 1e6:6.1f} MB/s  cpu: caller {c * 1e3:6.2f} busiest {bz * 1e3:6.2f} all {pc * 1e3:6.2f} ms")
        for bn in builds:
            one, two = t[f"{bn} sequential"], t[f"{bn} parallel 2t"]
            est = one[2] / two[3]
            print(f"  {bn:6s} parallel/sequential wall = {one[0] / two[0]:.3f}   cpu: all seq / busiest thread par >= {est:.3f}  cpu par/seq = {two[2] / one[2]:.3f}  {clean(f'{bn} sequential', f'{bn} parallel 2t')}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
