"""Dask scale-out benchmark: ``encode_dataset`` throughput with 1 vs 2 worker processes on
../shared/corpus, and its overhead against in-process ``encode_batch``.

    python benches/bench_dask.py [--repeats 3] [--no-write]

Rows (same documents, o200k_base, ids appended with <|endoftext|>):
* in-process ``Encoding.encode_batch_to_numpy`` on documents already in memory, 1 and 2
  threads (the pure encoder: no reading, no writing);
* ``encode_dataset`` in-process (``client=False``): reading, splitting, encoding, writing
  Parquet, hashing, manifest;
* ``encode_dataset`` on a LocalCluster with 1 and with 2 worker processes (1 thread each),
  Parquet and .npy output; both clusters are started before timing (startup reported apart).

Runs are interleaved (one of each per round) and medians of ``--repeats`` rounds reported.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import CORPUS_DIR, git_rev, machine_info, md_table, versions, write_section  # noqa: E402


def corpus_inputs() -> list[str]:
    files = [os.path.join(CORPUS_DIR, "en.txt"), os.path.join(CORPUS_DIR, "code.txt")]
    files += sorted(glob.glob(os.path.join(CORPUS_DIR, "multilingual", "*.txt")))
    files.append(os.path.join(CORPUS_DIR, "parallel.jsonl"))
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        sys.exit(f"corpus files missing: {missing[:3]} (set SUPERTOK_CORPUS)")
    return files


def documents(files: list[str]) -> list[str]:
    """The documents encode_dataset sees (lines of text files, the 'en' field of JSONL)."""
    docs: list[str] = []
    for f in files:
        if f.endswith(".jsonl"):
            with open(f, encoding="utf-8") as fh:
                docs.extend(json.loads(ln)["en"] for ln in fh if ln.strip())
        else:
            with open(f, encoding="utf-8") as fh:
                docs.extend(ln for ln in fh.read().split("\n") if ln)
    return docs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import logging

    import numpy as np
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)

    import supertok
    from supertok.distributed import encode_dataset

    info = machine_info()
    files = corpus_inputs()
    enc = supertok.get_encoding("o200k_base")
    docs = documents(files)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    file_bytes = sum(os.path.getsize(f) for f in files)
    eot = enc.eot_token
    print(
        f"{len(files)} files, {file_bytes / 1e6:.1f} MB on disk, {len(docs):,} documents, {nbytes / 1e6:.1f} MB of text",
        file=sys.stderr,
    )

    def in_process(threads: int):
        def run() -> None:
            ids, offs = enc.encode_batch_to_numpy(docs, num_threads=threads, disallowed_special=())
            np.insert(ids, offs[1:].astype(np.intp), np.uint32(eot))

        return run

    tmp = tempfile.mkdtemp(prefix="bench_dask_")
    t = time.perf_counter()
    c1 = Client(
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)
    )
    c2 = Client(
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)
    )
    c1.wait_for_workers(1)
    c2.wait_for_workers(2)
    startup = (time.perf_counter() - t) / 2
    tokens = {}

    def dataset(client, fmt: str, name: str):
        def run() -> None:
            out = os.path.join(tmp, name)
            res = encode_dataset(
                enc, files, out, client=client, text_column="en", format=fmt, overwrite=True, show_progress=False
            )
            tokens[name] = res.tokens
            shutil.rmtree(out)

        return run

    clients = {"w1": c1, "w2": c2, "w2npy": c2}

    def cpu_now(name: str) -> float:
        """CPU seconds of this process plus (for cluster runs) of the cluster's workers."""
        c = time.process_time()
        if name in clients:
            c += sum(clients[name].run(time.process_time).values())
        return c

    contenders = {
        "in-process encode_batch_to_numpy, 1 thread": in_process(1),
        "in-process encode_batch_to_numpy, 2 threads": in_process(2),
        "encode_dataset in-process (client=False), Parquet": dataset(False, "parquet", "local"),
        "encode_dataset, 1 worker, Parquet": dataset(c1, "parquet", "w1"),
        "encode_dataset, 2 workers, Parquet": dataset(c2, "parquet", "w2"),
        "encode_dataset, 2 workers, .npy": dataset(c2, "npy", "w2npy"),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    cpu_key = {k: ("w1" if "1 worker" in k else "w2npy" if "2 workers" in k else "") for k in contenders}
    try:
        for fn in contenders.values():  # warm-up (tokenizer built on the workers, page cache)
            fn()
        for r in range(args.repeats):
            for k, fn in contenders.items():
                c = cpu_now(cpu_key[k])
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
                cpus[k].append(cpu_now(cpu_key[k]) - c)
            print(f"round {r + 1}: " + ", ".join(f"{v[-1]:.2f}" for v in times.values()), file=sys.stderr)
    finally:
        c1.close()
        c2.close()
        c1.cluster.close()
        c2.cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    assert len(set(tokens.values())) == 1, tokens
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    base1 = med["in-process encode_batch_to_numpy, 1 thread"]
    base2 = med["in-process encode_batch_to_numpy, 2 threads"]
    w1 = med["encode_dataset, 1 worker, Parquet"]
    rows = []
    for k, v in med.items():
        ref = base2 if ("2 workers" in k or "2 threads" in k) else base1
        rows.append([k, f"{v:.2f}", f"{nbytes / v / 1e6:.1f}", f"{v / ref:.2f}×", f"{w1 / v:.2f}×", f"{cpu[k]:.2f}"])
    speedup = w1 / med["encode_dataset, 2 workers, Parquet"]
    md = "\n".join(
        [
            "## Dask scale-out: `encode_dataset` (`python benches/bench_dask.py`)",
            "",
            f"Machine: {info}. Versions: {versions(['dask', 'distributed', 'pyarrow', 'numpy'])}; supertok {git_rev()}.",
            f"Data: all of `../shared/corpus` ({len(files)} files, {file_bytes / 1e6:.1f} MB on disk: en, code and 40 "
            f"multilingual .txt files one document per line, parallel.jsonl field `en`) = {len(docs):,} documents, "
            f"{nbytes / 1e6:.1f} MB of text, {next(iter(tokens.values())):,} tokens with o200k_base + `<|endoftext|>` "
            f"per document. {len(files)} shards (default shard size), largest first.",
            f"Medians of {args.repeats} interleaved rounds after a warm-up; LocalCluster startup (excluded) "
            f"≈ {startup:.1f} s per cluster. Each worker: 1 process, 1 thread, 1 encoder thread.",
            "",
            md_table(
                [
                    "run",
                    "seconds",
                    "MB/s",
                    "time vs in-process encode (same cores)",
                    "speed vs 1 worker",
                    "CPU s (all processes)",
                ],
                rows,
            ),
            "",
            f"**2 workers vs 1 worker: {speedup:.2f}×** (target ≥ 1.7× on 2 cores). Overhead of the whole "
            f"pipeline (read, split, encode, Parquet, SHA-256, manifest, Dask) over the bare in-process encoder: "
            f"{w1 / base1:.2f}× with 1 worker vs 1 thread, "
            f"{med['encode_dataset, 2 workers, Parquet'] / base2:.2f}× with 2 workers vs 2 threads.",
            "",
            f"CPU accounting (robust to a loaded machine): the 2-worker run used {cpu['encode_dataset, 2 workers, Parquet']:.2f} "
            f"CPU s vs {cpu['encode_dataset, 1 worker, Parquet']:.2f} with 1 worker (work added by going parallel: "
            f"{cpu['encode_dataset, 2 workers, Parquet'] / cpu['encode_dataset, 1 worker, Parquet'] - 1:+.1%}); the "
            f"pipeline costs {cpu['encode_dataset, 1 worker, Parquet'] / cpu['in-process encode_batch_to_numpy, 1 thread']:.2f}× "
            "the bare encoder's CPU. Wall-clock ratios need two idle cores: check the load average above.",
        ]
    )
    print(md)
    if not args.no_write:
        write_section("dask", md)


if __name__ == "__main__":
    main()
