"""Compare two builds of supertok on exact byte-level probabilities (public API only).

    python benches/bytes_ab.py --other /path/to/site-dir [--rounds 3] [--bytes 16000] [--prompts 100]

Runs this checkout's build and the build importable from ``--other`` (e.g. an unpacked
wheel of ``main``) alternately in fresh processes, ``--rounds`` times each, and prints the
medians and their ratios:

* scoring a held-out text with ``ByteLM.byte_logprobs`` (cl100k, token 3-gram LM);
* ``ByteLM.next_byte_logprobs(prompt)`` after prompts of up to 200 bytes.

Positions = rows the model was asked for. Non-LM time = time in the ByteLM call minus the
time in the model (so it includes the Python side of ByteLM and the bindings); reported
as wall and as CPU time of the calling thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class _Counting:
    """Wraps a prefix model: counts rows and the time spent in it."""

    def __init__(self, lm):
        self.lm = lm
        self.rows = 0
        self.wall = 0.0
        self.cpu = 0.0

    def logprobs(self, prefixes):
        t, c = time.perf_counter(), time.thread_time()
        out = self.lm.logprobs(prefixes)
        self.wall += time.perf_counter() - t
        self.cpu += time.thread_time() - c
        self.rows += len(prefixes)
        return out


def _measure(args) -> dict:
    sys.path.insert(0, HERE)
    from _common import read_corpus
    from _bytes_data import cut_points, held_out

    import supertok
    from supertok.bytelm import ByteLM, ByteStats
    from supertok.models import NGramLM

    text = read_corpus("en.txt")
    train = [t for t in text[: args.train_bytes].split("\n\n") if t.strip()]
    chunks = held_out(text, args.bytes)
    prompts = cut_points(text, args.prompts, 200)
    enc = supertok.get_encoding(args.encoding)
    model = _Counting(NGramLM.train(enc, train, order=3))
    blm = ByteLM(enc, model)
    blm.byte_logprobs("".join(train[:3])[:3000])  # warm-up on other text
    out = {"version": supertok.__file__}

    def run(name, calls, nbytes):
        model.rows, model.wall, model.cpu = 0, 0.0, 0.0
        t, c = time.perf_counter(), time.thread_time()
        for f in calls:
            f()
        wall, cpu = time.perf_counter() - t, time.thread_time() - c
        out[name] = {
            "positions_per_byte": model.rows / nbytes,
            "non_lm_wall_us_per_byte": (wall - model.wall) / nbytes * 1e6,
            "non_lm_cpu_us_per_byte": (cpu - model.cpu) / nbytes * 1e6,
            "lm_us_per_byte": model.wall / nbytes * 1e6,
        }

    run("score", [lambda c=c: blm.byte_logprobs(c) for c in chunks], sum(len(c.encode()) for c in chunks))
    # the Rust side as bench_bytes.py measures it: thread CPU around each Rust call
    st = ByteStats()
    for c in chunks:
        blm.byte_logprobs(c, stats=st)
    out["score"]["rust_tree_cpu_us_per_byte"] = st.tree_cpu_seconds / st.bytes * 1e6
    out["score"]["rust_rows_cpu_us_per_byte"] = st.row_cpu_seconds / st.bytes * 1e6
    out["score"]["rust_cpu_us_per_byte"] = (st.tree_cpu_seconds + st.row_cpu_seconds) / st.bytes * 1e6
    run("prompt", [lambda p=p: blm.next_byte_logprobs(p) for p in prompts], sum(len(p) for p in prompts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", help="directory holding the other build's supertok package")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bytes", type=int, default=16000)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--train-bytes", type=int, default=2_000_000)
    ap.add_argument("--encoding", default="cl100k_base")
    ap.add_argument("--write", action="store_true", help='write BENCHMARKS.md section "bytes-ab"')
    ap.add_argument("--label", default="main", help="name of the other build in the table")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_measure(args)))
        return
    base = [sys.executable, os.path.abspath(__file__), "--child", "--bytes", str(args.bytes),
            "--prompts", str(args.prompts), "--train-bytes", str(args.train_bytes),
            "--encoding", args.encoding]
    envs = {"this": dict(os.environ)}
    if args.other:
        e = dict(os.environ)
        e["PYTHONPATH"] = args.other + os.pathsep + e.get("PYTHONPATH", "")
        envs["other"] = e
    res: dict[str, list[dict]] = {k: [] for k in envs}
    for _ in range(args.rounds):
        for k, env in envs.items():
            p = subprocess.run(base, env=env, capture_output=True, text=True, check=True)
            res[k].append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(k, res[k][-1], file=sys.stderr)
    summary = {}
    for k, runs in res.items():
        summary[k] = {
            sec: {
                m: statistics.median(r[sec][m] for r in runs if m in r[sec])
                for m in runs[0][sec]
            }
            for sec in ("score", "prompt")
        }
    print(json.dumps(summary, indent=1))
    if "other" not in summary:
        return
    names = {
        "positions_per_byte": "LM positions / byte",
        "non_lm_cpu_us_per_byte": "non-LM CPU µs / byte",
        "non_lm_wall_us_per_byte": "non-LM wall µs / byte",
        "lm_us_per_byte": "LM (numpy n-gram) µs / byte",
        "rust_tree_cpu_us_per_byte": "Rust tree CPU µs / byte (per-call clocks)",
        "rust_rows_cpu_us_per_byte": "Rust rows CPU µs / byte (per-call clocks)",
        "rust_cpu_us_per_byte": "Rust CPU µs / byte (per-call clocks)",
    }
    rows = []
    for sec, title in (("score", "`byte_logprobs(text)`"), ("prompt", "`next_byte_logprobs(prompt)`")):
        for m, v in summary["this"][sec].items():
            o = summary["other"][sec].get(m)
            if o is None:
                continue
            print(f"{sec:6s} {m:26s} other {o:9.3f}  this {v:9.3f}  this/other {v / o if o else float('nan'):.3f}")
            rows.append([title, names[m], f"{o:.3f}", f"{v:.3f}", f"{v / o:.2f}" if o else "-"])
    if args.write:
        sys.path.insert(0, HERE)
        from _common import git_rev, machine_info, md_table, write_section

        md = "\n".join([
            f"Before/after: `python benches/bytes_ab.py --other <{args.label} build> --rounds {args.rounds} "
            f"--bytes {args.bytes} --prompts {args.prompts} --encoding {args.encoding} --write` (commit {git_rev()}); the two builds run "
            f"alternately in fresh processes, medians of {args.rounds} rounds. Machine: {machine_info()}.",
            "",
            f"{args.encoding} with a token 3-gram `NGramLM`; scoring ~1 KB chunks of held-out English with "
            "`byte_logprobs`, and next-byte distributions after prompts of up to 200 bytes. Positions = rows the "
            "model was asked for; non-LM time = time in the ByteLM call minus the time in the model (Rust, "
            "bindings and ByteLM's Python).",
            "",
            md_table(["call", "metric", args.label, "this", "this / " + args.label], rows),
        ])
        write_section("bytes-ab", md)


if __name__ == "__main__":
    main()
