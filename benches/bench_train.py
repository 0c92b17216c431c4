"""Benchmark: BPE training speed, memory and quality vs HF BpeTrainer, rustbpe and bpeasy.

    python benches/bench_train.py            # full run, writes the "train" section of BENCHMARKS.md
    python benches/bench_train.py --quick    # one repeat, main table only (no file written)

Every trainer runs in its own subprocess (so peak RSS is its own), interleaved round by round,
median of >= 3 rounds. Training data: the first 90 % of en.txt and code.txt (cut at a line
boundary); held-out bytes/token: the last 10 % of each file, encoded with each trainer's own
vocabulary (HF with its own model, the others through tiktoken-style rank encoding).
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
from _common import CORPUS_DIR, git_rev, machine_info, md_table, versions, write_section  # noqa: E402

TRAINERS = ["supertok", "supertok-lines", "hf", "rustbpe", "bpeasy"]
THREADS = 2


def split_file(name: str) -> tuple[str, str]:
    with open(os.path.join(CORPUS_DIR, name), encoding="utf-8") as f:
        text = f.read()
    b = text.encode("utf-8")
    cut = int(len(b) * 0.9)
    nl = b.rfind(b"\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    return b[:cut].decode("utf-8"), b[cut:].decode("utf-8")


def chunks(text: str, size: int = 8192) -> list[str]:
    """Documents of ~8 KB cut at line boundaries (what the iterator-based trainers are fed)."""
    out, cur, n = [], [], 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line)
        if n >= size:
            out.append("".join(cur))
            cur, n = [], 0
    if cur:
        out.append("".join(cur))
    return out


# ---------------------------------------------------------------- worker side


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(name: str, files: list[str], vocab: int, out: str) -> None:
    pattern = _pattern()
    texts = None
    if name in ("rustbpe", "bpeasy"):
        texts = []
        for p in files:
            with open(p, encoding="utf-8") as f:
                texts.extend(chunks(f.read()))
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    if name in ("supertok", "supertok-lines"):
        import importlib

        T = importlib.import_module("supertok.train")
        counts = T.count_pretokens(
            files, pattern, threads=THREADS, show_progress=False, split_lines=name == "supertok-lines"
        )
        t_count = time.perf_counter() - t0
        res = T._train_counts(counts, vocab, [], 1, None, pattern, False, 0.0)
        ranks = res.mergeable_ranks()
    elif name == "hf":
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tr = trainers.BpeTrainer(
            vocab_size=vocab, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
        tok.train(files, tr)
        ranks = None
    elif name == "rustbpe":
        import rustbpe

        t = rustbpe.Tokenizer()
        t.train_from_iterator(iter(texts), vocab, pattern=pattern)
        ranks = dict(t.get_mergeable_ranks())
    elif name == "bpeasy":
        import bpeasy

        ranks = bpeasy.train_bpe(iter(texts), pattern, 128, vocab)
    else:
        raise SystemExit(f"unknown trainer {name}")
    el = time.perf_counter() - t0
    rss = _peak_rss_mb()
    if name == "hf":
        tok.save(out)
    else:
        import pickle

        with open(out, "wb") as f:
            pickle.dump(ranks, f)
    phases = {"count": t_count, "merge": el - t_count} if name.startswith("supertok") else {}
    print(json.dumps({"time": el, "rss": rss, "rss_before": base, **phases}))


def _pattern() -> str:
    from supertok.registry import CL100K_PAT_STR

    return CL100K_PAT_STR


# ---------------------------------------------------------------- parent side


def run_one(name: str, files: list[str], vocab: int, out: str) -> dict | None:
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), RAYON_RS_NUM_CPUS=str(THREADS), TOKENIZERS_PARALLELISM="true")
    try:
        r = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--vocab", str(vocab), "--out", out, *files],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        print(f"[{name}] failed: {r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def available(name: str) -> bool:
    mod = {"supertok": "supertok", "supertok-lines": "supertok", "hf": "tokenizers", "rustbpe": "rustbpe", "bpeasy": "bpeasy"}[name]
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def bytes_per_token(name: str, out: str, held: list[str]) -> float:
    total = sum(len(h.encode("utf-8")) for h in held)
    if name == "hf":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(out)
        n = sum(len(e.ids) for e in tok.encode_batch(held_chunks(held)))
    else:
        import pickle

        import tiktoken

        with open(out, "rb") as f:
            ranks = pickle.load(f)
        enc = tiktoken.Encoding(f"bench-{name}", pat_str=_pattern(), mergeable_ranks=ranks, special_tokens={})
        n = sum(len(x) for x in enc.encode_ordinary_batch(held_chunks(held)))
    return total / n


def held_chunks(held: list[str]) -> list[str]:
    # One text per file would be exact; chunking at line boundaries changes nothing for
    # cl100k except at cuts, identically for every trainer.
    out = []
    for h in held:
        out.extend(chunks(h, 1 << 16))
    return out


def measure(names: list[str], files: list[str], vocab: int, repeats: int, tmp: str) -> dict[str, dict]:
    res: dict[str, dict] = {n: {"time": [], "rss": [], "count": [], "merge": []} for n in names}
    for r in range(repeats):
        for n in names:
            out = os.path.join(tmp, f"{n}-{vocab}-{len(files)}.out")
            m = run_one(n, files, vocab, out)
            if m is None:
                continue
            res[n]["time"].append(m["time"])
            res[n]["rss"].append(m["rss"])
            for ph in ("count", "merge"):
                if ph in m:
                    res[n][ph].append(m[ph])
            res[n]["out"] = out
            print(f"  round {r + 1}: {n:9s} {m['time']:7.2f} s  {m['rss']:7.0f} MB", file=sys.stderr)
    return {
        n: {
            "time": statistics.median(v["time"]),
            "rss": statistics.median(v["rss"]),
            "out": v.get("out"),
            **({ph: statistics.median(v[ph]) for ph in ("count", "merge")} if v["count"] else {}),
        }
        for n, v in res.items()
        if v["time"]
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.files, a.vocab, a.out)
        return

    tmp = tempfile.mkdtemp(prefix="bench-train-")
    try:
        run_parent(a, tmp)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_parent(a: argparse.Namespace, tmp: str) -> None:
    repeats = 1 if a.quick else max(3, a.repeats)
    names = [n for n in TRAINERS if available(n)]
    files, held = [], []
    for name in ("en.txt", "code.txt"):
        tr, ho = split_file(name)
        p = os.path.join(tmp, f"train-{name}")
        with open(p, "w", encoding="utf-8") as f:
            f.write(tr)
        files.append(p)
        held.append(ho)
    size_mb = sum(os.path.getsize(p) for p in files) / 1e6
    info = machine_info()
    print(info, file=sys.stderr)

    print(f"main table: {size_mb:.1f} MB, vocab 32768", file=sys.stderr)
    main_res = measure(names, files, 32768, repeats, tmp)
    bpt = {n: bytes_per_token(n, r["out"], held) for n, r in main_res.items()}
    st = main_res.get("supertok")
    rows = []
    for n, r in main_res.items():
        rows.append(
            [
                n,
                f"{r['time']:.2f}",
                f"{r['time'] / st['time']:.2f}×" if st else "-",
                f"{r['rss']:.0f}",
                f"{bpt[n]:.4f}",
                f"{(bpt[n] / bpt['hf'] - 1) * 100:+.2f} %" if "hf" in bpt else "-",
            ]
        )
    md = [
        "## BPE training (`benches/bench_train.py`)",
        "",
        f"Machine: {info}. Commit {git_rev()}. Versions: "
        + versions(["tokenizers", "rustbpe", "bpeasy", "tiktoken"])
        + f". {THREADS} threads for every trainer (RAYON_NUM_THREADS / RAYON_RS_NUM_CPUS).",
        "",
        f"Training data: first 90 % of en.txt + code.txt ({size_mb:.1f} MB), GPT-4 (cl100k) regex, "
        f"vocab 32,768; each trainer in its own subprocess, interleaved, median of {repeats} rounds; "
        "time = the training call only (HF: `Tokenizer.train(files)`, supertok: `count_pretokens(files)` + "
        "merges, rustbpe/bpeasy: an iterator of ~8 KB documents already in memory). Peak RSS of the "
        "subprocess (includes the Python interpreter and, for rustbpe/bpeasy, the text held in memory). "
        "Held-out bytes/token: last 10 % of each file. `supertok-lines` = `split_lines=True`, which "
        "pretokenizes each line on its own exactly like HF's `train(files)` (the like-for-like quality "
        "comparison); the default pretokenizes whole files, as the encoder sees text, and so also learns "
        "tokens such as `\\n\\n` that line-by-line training cannot.",
        "",
        md_table(["trainer", "time (s)", "time / supertok", "peak RSS (MB)", "held-out bytes/token", "vs HF"], rows),
    ]
    if st:
        tgt = []
        if "hf" in main_res:
            tgt.append(f"HF/supertok time = {main_res['hf']['time'] / st['time']:.1f}× (target ≥ 6×)")
        if "rustbpe" in main_res:
            tgt.append(
                f"rustbpe/supertok time = {main_res['rustbpe']['time'] / st['time']:.1f}× (target ≥ 3×); "
                f"RSS supertok/rustbpe = {st['rss'] / main_res['rustbpe']['rss']:.2f} (target ≤ 1)"
            )
        md += ["", "Targets: " + "; ".join(tgt) + "."]
        if "count" in st:
            md += [
                "",
                f"supertok's phases (medians): counting pretokens {st['count']:.2f} s, merge loop "
                f"{st['merge']:.2f} s. Counting is pretokenization-bound: the pattern runs through "
                "`pretok::Pretokenizer` (fancy-regex unless a hand-written lexer exists for it).",
            ]

    if not a.quick:
        # Scaling with data: repeat the training files 2x and 4x.
        scale_names = [n for n in ("supertok", "hf", "rustbpe") if n in names]
        rows = []
        for k in (1, 2, 4):
            if k == 1:
                r = {n: main_res[n] for n in scale_names if n in main_res}
            else:
                fk = []
                for p in files:
                    q = p + f".x{k}"
                    with open(p, encoding="utf-8") as f:
                        t = f.read()
                    with open(q, "w", encoding="utf-8") as f:
                        f.write(t * k)
                    fk.append(q)
                print(f"data scaling {k}x", file=sys.stderr)
                r = measure(scale_names, fk, 32768, repeats, tmp)
            rows.append([f"{k}× ({size_mb * k:.0f} MB)"] + [f"{r[n]['time']:.2f}" if n in r else "-" for n in scale_names]
                        + [f"{r['hf']['time'] / r['supertok']['time']:.1f}×" if "hf" in r and "supertok" in r else "-"])
        md += [
            "",
            "Scaling with data (the training files repeated k times; vocab 32,768; seconds):",
            "",
            md_table(["data"] + scale_names + ["HF / supertok"], rows),
        ]
        rows = []
        for v in (8192, 16384, 32768, 65536, 131072):
            if v == 32768:
                r = {n: main_res[n] for n in scale_names if n in main_res}
            else:
                print(f"vocab scaling {v}", file=sys.stderr)
                r = measure(scale_names, files, v, repeats, tmp)
            rows.append([f"{v:,}"] + [f"{r[n]['time']:.2f}" if n in r else "-" for n in scale_names]
                        + [f"{r['hf']['time'] / r['supertok']['time']:.1f}×" if "hf" in r and "supertok" in r else "-"])
        md += [
            "",
            f"Scaling with vocabulary size ({size_mb:.0f} MB; seconds):",
            "",
            md_table(["vocab"] + scale_names + ["HF / supertok"], rows),
        ]
        write_section("train", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
