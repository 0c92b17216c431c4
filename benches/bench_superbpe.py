"""Benchmark: SuperBPE training (both stages) vs our BPE training, and SuperBPE encoding vs
HF ``tokenizers`` on the same tokenizer.json.

    python benches/bench_superbpe.py              # writes the "superbpe" section of BENCHMARKS.md
    python benches/bench_superbpe.py --quick      # 1 round, small vocab, nothing written
    python benches/bench_superbpe.py --train-only # the training table only, nothing written

Training: every run is its own subprocess (so peak RSS = VmHWM is its own), trainers
interleaved round by round, median of >= 3 rounds. Data: the first 90 % of en.txt (cut at a
line boundary). Contenders at the same vocabulary size:

* ``supertok.train`` (BPE, o200k pattern, the library's BPE trainer) — the baseline;
* ``train_superbpe(transition=1.0)`` (BPE with the paper's stage-1 pre-tokenizer);
* ``train_superbpe(transition=0.8)`` (SuperBPE, both stages, paper presets, filters on).

Encoding: the SuperBPE tokenizer's tokenizer.json, loaded by HF ``tokenizers`` and by
supertok; the held-out last 10 % of en.txt (and of code.txt) as one string and as ~8 KB
documents; ids checked identical before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    CORPUS_DIR,
    chunk_documents,
    git_rev,
    interleaved_medians_cpu,
    machine_info,
    md_table,
    versions,
    write_section,
)

THREADS = 2
TRAINERS = ["bpe", "bpe-paper", "superbpe"]


def split_file(name: str) -> tuple[str, str]:
    """(first 90 %, last 10 %) of a corpus file, cut at a line boundary."""
    with open(os.path.join(CORPUS_DIR, name), encoding="utf-8") as f:
        b = f.read().encode("utf-8")
    cut = int(len(b) * 0.9)
    nl = b.rfind(b"\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    return b[:cut].decode("utf-8"), b[cut:].decode("utf-8")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(name: str, path: str, vocab: int, out: str) -> None:
    """Train once and print time / CPU / peak RSS as JSON (saving the tokenizer for the
    encode part is not timed: the BPE baseline does not save either)."""
    import supertok

    t0 = time.perf_counter()
    c0 = time.process_time()
    if name == "bpe":
        enc = supertok.train(path, vocab, threads=THREADS, show_progress=False)
        el, cpu = time.perf_counter() - t0, time.process_time() - c0
        del enc
    elif name == "bpe-paper":
        tok = supertok.train_superbpe(path, vocab, 1.0, threads=THREADS, show_progress=False)
        el, cpu = time.perf_counter() - t0, time.process_time() - c0
        tok.save(out + ".bpe-paper.json")
    elif name == "superbpe":
        tok = supertok.train_superbpe(path, vocab, 0.8, threads=THREADS, show_progress=False)
        el, cpu = time.perf_counter() - t0, time.process_time() - c0
        tok.save(out)
    else:
        raise SystemExit(f"unknown trainer {name}")
    print(json.dumps({"time": el, "cpu": cpu, "rss": _peak_rss_mb()}))


def run_one(name: str, path: str, vocab: int, out: str) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    r = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--vocab", str(vocab), "--out", out, path],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_train(path: str, vocab: int, rounds: int, out: str) -> dict[str, dict[str, float]]:
    res: dict[str, list[dict]] = {n: [] for n in TRAINERS}
    for k in range(rounds):
        for n in TRAINERS:
            r = run_one(n, path, vocab, out)
            res[n].append(r)
            print(f"  round {k + 1}: {n:10s} {r['time']:7.2f} s  {r['cpu']:7.2f} s CPU  {r['rss']:7.0f} MB", flush=True)
    return {n: {m: statistics.median(x[m] for x in v) for m in ("time", "cpu", "rss")} for n, v in res.items()}


def bench_encode_bpe_paper(tok_json: str, held: dict[str, str], rounds: int) -> list[list[object]]:
    """The stage-1-only BPE (``transition=1.0``, the paper stage-1 pre-tokenizer): one string,
    1 thread, vs HF on the same file."""
    import tokenizers

    import supertok

    ours = supertok.Tokenizer.from_file(tok_json)
    hf = tokenizers.Tokenizer.from_file(tok_json)
    rows = []
    for name, text in held.items():
        mb = len(text.encode("utf-8")) / 1e6
        assert ours.encode(text) == hf.encode(text).ids, f"ids differ on {name}"
        m = interleaved_medians_cpu(
            {"hf_1": lambda: hf.encode(text), "ours_1": lambda: ours.encode(text)}, repeats=rounds
        )
        t = {k: v[1] for k, v in m.items()}  # thread CPU time (1 thread)
        rows.append([f"{name}, one string, 1 thread", f"{mb / t['hf_1']:.2f}", f"{mb / t['ours_1']:.1f}",
                     f"**{t['hf_1'] / t['ours_1']:.1f}×**"])
        print(rows[-1], flush=True)
    return rows


def cold_medians(tok_json: str, text: str, rounds: int) -> dict[str, float]:
    """Thread CPU time of the first encode by a freshly loaded tokenizer (empty caches: the
    warm rows re-encode the same text, so their piece caches already hold its lines), both
    libraries alternating, median of ``rounds``."""
    import tokenizers

    import supertok

    res: dict[str, list[float]] = {"ours": [], "hf": []}
    for _ in range(rounds):
        for k in res:
            tok = supertok.Tokenizer.from_file(tok_json) if k == "ours" else tokenizers.Tokenizer.from_file(tok_json)
            c = time.thread_time()
            tok.encode(text)
            res[k].append(time.thread_time() - c)
    return {k: statistics.median(v) for k, v in res.items()}


def bench_encode(tok_json: str, held: dict[str, str], rounds: int) -> list[list[object]]:
    import tokenizers

    import supertok

    ours = supertok.Tokenizer.from_file(tok_json)
    hf = tokenizers.Tokenizer.from_file(tok_json)
    rows = []
    for name, text in held.items():
        docs = chunk_documents(text, 8192)
        mb = len(text.encode("utf-8")) / 1e6
        ids = ours.encode(text)
        assert ids == hf.encode(text).ids, f"ids differ on {name} (whole text)"
        assert ours.encode_long(text, num_threads=THREADS) == ids
        ob = ours.encode_batch(docs, num_threads=THREADS)
        assert ob == [e.ids for e in hf.encode_batch(docs)], f"ids differ on {name} (documents)"
        m = interleaved_medians_cpu(
            {
                "hf_1": lambda: hf.encode(text),
                "ours_1": lambda: ours.encode(text),
                "ours_long": lambda: ours.encode_long(text, num_threads=THREADS),
                "hf_batch": lambda: hf.encode_batch(docs),
                "ours_batch": lambda: ours.encode_batch(docs, num_threads=THREADS),
            },
            repeats=rounds,
        )
        # 1-thread rows: thread CPU time (steady on a shared machine); parallel rows: wall
        t = {k: v[1] if k in ("hf_1", "ours_1") else v[0] for k, v in m.items()}
        rows.append([f"{name}, one string, 1 thread", f"{mb / t['hf_1']:.2f}", f"{mb / t['ours_1']:.1f}",
                     f"**{t['hf_1'] / t['ours_1']:.1f}×**"])
        cold = cold_medians(tok_json, text, rounds)
        rows.append([f"{name}, one string, 1 thread, cold caches (fresh tokenizer, first call)",
                     f"{mb / cold['hf']:.2f}", f"{mb / cold['ours']:.1f}", f"**{cold['hf'] / cold['ours']:.1f}×**"])
        rows.append([f"{name}, one string, ours `encode_long` {THREADS} threads vs HF 1", f"{mb / t['hf_1']:.2f}",
                     f"{mb / t['ours_long']:.1f}", f"**{t['hf_1'] / t['ours_long']:.1f}×**"])
        rows.append([f"{name}, {len(docs)} docs of ≤8 KB, batch ({THREADS} threads both)", f"{mb / t['hf_batch']:.2f}",
                     f"{mb / t['ours_batch']:.1f}", f"**{t['hf_batch'] / t['ours_batch']:.1f}×**"])
        print(rows[-4:], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--train-only", action="store_true", help="print the training table only (nothing written)")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.files[0], a.vocab, a.out)
        return
    if not os.path.exists(os.path.join(CORPUS_DIR, "en.txt")):
        raise SystemExit(f"corpus not found in {CORPUS_DIR}")
    if a.quick:
        a.rounds, a.vocab = 1, 4096
    with tempfile.TemporaryDirectory(prefix="bench-superbpe-") as tmp:
        train_en, held_en = split_file("en.txt")
        _, held_code = split_file("code.txt")
        path = os.path.join(tmp, "train-en.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(train_en)
        out = os.path.join(tmp, "tokenizer.json")
        mb = len(train_en.encode("utf-8")) / 1e6
        print(f"training on {mb:.1f} MB, vocab {a.vocab}", flush=True)
        load0 = os.getloadavg()[0]
        tr = bench_train(path, a.vocab, a.rounds, out)
        if a.train_only:
            base = tr["bpe"]
            for n in TRAINERS:
                r = tr[n]
                print(f"{n:10s} wall {r['time']:.3f} s ({r['time'] / base['time']:.2f}x)  "
                      f"CPU {r['cpu']:.3f} s ({r['cpu'] / base['cpu']:.2f}x)  "
                      f"peak RSS {r['rss']:.0f} MB ({r['rss'] / base['rss']:.2f}x)")
            print(f"load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
            return
        held = {"en.txt held-out": held_en, "code.txt held-out": held_code}
        enc_rows = bench_encode(out, held, max(3, a.rounds))
        bpe_rows = bench_encode_bpe_paper(out + ".bpe-paper.json", held, max(3, a.rounds))
    base = tr["bpe"]
    rows = []
    label = {
        "bpe": "BPE: `supertok.train` (o200k pattern) — baseline",
        "bpe-paper": "BPE: `train_superbpe(transition=1.0)` (paper stage-1 pre-tokenizer)",
        "superbpe": "SuperBPE: `train_superbpe(transition=0.8)` (both stages, filters)",
    }
    for n in TRAINERS:
        r = tr[n]
        rows.append([label[n], f"{r['time']:.2f}", f"{r['time'] / base['time']:.2f}×", f"{r['cpu']:.2f}",
                     f"{r['cpu'] / base['cpu']:.2f}×", f"{r['rss']:.0f}", f"{r['rss'] / base['rss']:.2f}×"])
    md = (
        f"SuperBPE training and encoding. {machine_info()}; {versions(['tokenizers'])}; rev {git_rev()}.\n\n"
        f"**Training** on the first 90 % of en.txt ({mb:.1f} MB), vocabulary {a.vocab:,}, {THREADS} threads, "
        f"each run a separate process (peak RSS = its VmHWM, including the interpreter), "
        f"median of {a.rounds} interleaved rounds; CPU = the process's CPU time (all threads; less sensitive to "
        f"other load than wall time). Targets: SuperBPE ≤ 2.5× the time and ≤ 2× the memory of BPE.\n\n"
        + md_table(["trainer", "time (s)", "time ratio", "CPU (s)", "CPU ratio", "peak RSS (MB)", "RSS ratio"], rows)
        + "\n\n**Encoding** with that SuperBPE tokenizer's tokenizer.json (HF `tokenizers` vs supertok on the "
        f"same file; ids checked identical first), held-out last 10 % of en.txt and code.txt, MB/s, median of "
        f"{max(3, a.rounds)} interleaved rounds; 1-thread rows from thread CPU time, parallel rows from wall "
        f"time. Target ≥ 10×.\n\n"
        + md_table(["input", "HF MB/s", "supertok MB/s", "speed-up"], enc_rows)
        + "\n\n**Encoding with the BPE baseline** (`train_superbpe(transition=1.0)`: the paper stage-1 "
        "pre-tokenizer `Digits` + `Split(paper regex)`, which supertok runs as one hand-written step), "
        "same held-out texts, same protocol.\n\n"
        + md_table(["input", "HF MB/s", "supertok MB/s", "speed-up"], bpe_rows)
        + "\n"
    )
    print(md)
    if not a.quick:
        write_section("superbpe", md)


if __name__ == "__main__":
    main()
