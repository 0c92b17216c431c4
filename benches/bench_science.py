"""Science experiments for BENCHMARKS.md (section "science").

1. Data-mixture inference (Hayase et al. 2024) at small scale: byte-level BPE tokenizers
   trained with supertok's trainer on known random mixtures (weights uniform on the simplex)
   of 5 and 10 languages from ../shared/corpus/multilingual, inferred from held-out samples
   of each language with supertok.mixture.infer; log10 MSE of the byte shares per run,
   against the uniform-guess baseline.
2. Token premiums over ../shared/corpus/parallel.jsonl (reference English) for cl100k_base,
   o200k_base and a SuperBPE tokenizer trained with supertok (when train_superbpe exists).

Usage: python benches/bench_science.py [--quick] [--runs5 N] [--runs10 N] [--merges T ...]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import CORPUS_DIR, git_rev, machine_info, md_table, versions, write_section  # noqa: E402

import numpy as np  # noqa: E402

import supertok  # noqa: E402
from supertok import metrics as M  # noqa: E402
from supertok import mixture  # noqa: E402

ML_DIR = os.path.join(CORPUS_DIR, "multilingual")


def read_lines(lang: str) -> list[str]:
    with open(os.path.join(ML_DIR, f"{lang}.txt"), encoding="utf-8") as f:
        return [ln for ln in f.read().split("\n") if ln.strip()]


def split_pool(lines: list[str], train_frac: float) -> tuple[list[str], list[str]]:
    """Disjoint halves: lines shuffled with a fixed seed, the first ``train_frac`` for
    training, the rest for estimation (catalogues are sorted by package, so a plain prefix
    would be a different distribution)."""
    idx = list(range(len(lines)))
    random.Random(1234).shuffle(idx)
    k = int(len(idx) * train_frac)
    return [lines[i] for i in idx[:k]], [lines[i] for i in idx[k:]]


def nbytes(lines: list[str]) -> int:
    return sum(len(x.encode("utf-8")) + 1 for x in lines)


def take_bytes(lines: list[str], budget: float) -> list[str]:
    out, n = [], 0
    for ln in lines:
        if n >= budget:
            break
        out.append(ln)
        n += len(ln.encode("utf-8")) + 1
    return out


def one_run(
    seed: int, n: int, langs_all: list[str], pools: dict, merges_list: list[int], max_train: int, est_bytes: int,
    pattern: str,
) -> list[dict]:
    rng = np.random.default_rng(seed)
    langs = sorted(rng.choice(langs_all, size=n, replace=False).tolist())
    w = rng.dirichlet(np.ones(n))
    avail = np.array([nbytes(pools[l][0]) for l in langs], dtype=float)
    total = float(min(max_train, (avail / w).min()))
    parts = {l: take_bytes(pools[l][0], wi * total) for l, wi in zip(langs, w)}
    true_bytes = np.array([nbytes(parts[l]) for l in langs], dtype=float)
    truth = true_bytes / true_bytes.sum()
    docs = [ln for l in langs for ln in parts[l]]
    random.Random(seed).shuffle(docs)
    # documents of ~64 lines (each is one text for the pretokenizer)
    texts = ["\n".join(docs[i : i + 64]) + "\n" for i in range(0, len(docs), 64)]
    tmax = max(merges_list)
    t0 = time.perf_counter()
    tok = supertok.train_from_iterator(texts, 256 + tmax, pattern=pattern, show_progress=False)
    t_train = time.perf_counter() - t0
    samples = {l: take_bytes(pools[l][1], est_bytes) for l in langs}
    sample_texts = {l: ["\n".join(s[i : i + 64]) + "\n" for i in range(0, len(s), 64)] for l, s in samples.items()}
    rows = []
    t0 = time.perf_counter()
    traces = mixture.replay(tok, sample_texts, max_merges=tmax)
    t_replay = time.perf_counter() - t0
    for T in merges_list:
        sub = {k: _truncate(tr, T) for k, tr in traces.items()}
        t0 = time.perf_counter()
        res = mixture.infer_traces(sub)
        t_inf = time.perf_counter() - t0
        est = np.array([res.proportions[l] for l in langs])
        mse = float(np.mean((est - truth) ** 2))
        uni = float(np.mean((np.full(n, 1.0 / n) - truth) ** 2))
        rows.append(dict(
            seed=seed, n=n, T=T, langs=langs, truth=truth, est=est, mse=mse, uniform=uni,
            train_mb=true_bytes.sum() / 1e6, est_kb=np.mean([nbytes(s) for s in samples.values()]) / 1e3,
            t_train=t_train, t_replay=t_replay, t_infer=t_inf, constraints=res.n_constraints,
            rounds=res.rounds, converged=res.converged, worst=int(np.argmax(np.abs(est - truth))),
        ))
    return rows


def _truncate(tr: mixture.PairTrace, T: int) -> mixture.PairTrace:
    """The trace of the first ``T`` merges."""
    end = int(tr.step_ptr[T])
    return mixture.PairTrace(
        name=tr.name, merge_keys=tr.merge_keys[:T], init_keys=tr.init_keys, init_counts=tr.init_counts,
        step_ptr=tr.step_ptr[: T + 1], change_keys=tr.change_keys[:end], change_counts=tr.change_counts[:end],
        n_bytes=tr.n_bytes, n_pairs=tr.n_pairs,
    )


def mixture_experiment(args: argparse.Namespace) -> str:
    langs_all = sorted(f[:-4] for f in os.listdir(ML_DIR) if f.endswith(".txt"))
    pools = {l: split_pool(read_lines(l), 0.6) for l in langs_all}
    all_rows = []
    for n, runs in ((5, args.runs5), (10, args.runs10)):
        for r in range(runs):
            seed = 1000 * n + r
            t0 = time.perf_counter()
            rows = one_run(seed, n, langs_all, pools, args.merges, args.max_train, args.est_bytes, args.pattern)
            all_rows += rows
            print(f"n={n} run {r}: " + ", ".join(f"T={x['T']}: {math.log10(x['mse']):.2f}" for x in rows)
                  + f" (uniform {math.log10(rows[0]['uniform']):.2f}; {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    md = []
    md.append(
        f"Mixture inference: byte-level BPE trained with `supertok.train_from_iterator` (pattern {args.pattern}) "
        f"on random mixtures (weights ~ Dirichlet(1)) of n languages drawn from the 40 in "
        f"`multilingual/` (≤ {args.max_train / 1e6:.1f} MB per mixture, limited by each language's "
        f"60 % training pool), inferred by `supertok.mixture.infer_traces` from disjoint held-out samples "
        f"(≈ {args.est_bytes / 1e3:.0f} KB per language, the other 40 % of the lines). "
        "MSE over the n byte shares; 'uniform' = guessing 1/n.\n"
    )
    header = ["n", "run", "languages", "train MB"] + [f"log10 MSE T={T}" for T in args.merges] + [
        "uniform", "worst share (true → est.)", "constraints", "replay s", "LP s"]
    rows = []
    for n in (5, 10):
        for seed in sorted({x["seed"] for x in all_rows if x["n"] == n}):
            xs = [x for x in all_rows if x["seed"] == seed]
            last = xs[-1]
            k = last["worst"]
            rows.append([
                n, seed % 1000, " ".join(last["langs"]), f"{last['train_mb']:.2f}",
                *[f"{math.log10(x['mse']):.2f}" for x in xs],
                f"{math.log10(last['uniform']):.2f}",
                f"{last['langs'][k]} {last['truth'][k]:.4f} → {last['est'][k]:.4f}",
                last["constraints"], f"{last['t_replay']:.1f}", f"{last['t_infer']:.1f}",
            ])
    md.append(md_table(header, rows))
    md.append("")
    summ = []
    for n in (5, 10):
        for T in args.merges:
            v = [math.log10(x["mse"]) for x in all_rows if x["n"] == n and x["T"] == T]
            if v:
                summ.append([n, T, len(v), f"{np.mean(v):.2f} ± {np.std(v):.2f}", f"{min(v):.2f} … {max(v):.2f}"])
        u = [math.log10(x["uniform"]) for x in all_rows if x["n"] == n and x["T"] == args.merges[0]]
        if u:
            summ.append([n, "uniform guess", len(u), f"{np.mean(u):.2f} ± {np.std(u):.2f}", f"{min(u):.2f} … {max(u):.2f}"])
    md.append(md_table(["n", "merges T", "runs", "mean ± sd log10 MSE", "range"], summ))
    return "\n".join(md)


def premium_experiment(args: argparse.Namespace) -> str:
    rows = M.load_parallel(os.path.join(CORPUS_DIR, "parallel.jsonl"))
    ref_rows = [r for r in rows if r.get("en")]
    langs = M.parallel_languages(ref_rows, min_rows=1000)
    toks = {"cl100k_base": supertok.get_encoding("cl100k_base"), "o200k_base": supertok.get_encoding("o200k_base")}
    note = ""
    train_superbpe = getattr(supertok, "train_superbpe", None)
    if train_superbpe is not None:
        sb = train_superbpe(args.superbpe_files, args.superbpe_vocab, args.superbpe_transition, show_progress=False)
        toks[f"SuperBPE {args.superbpe_vocab // 1000}K"] = sb
        note = (f"SuperBPE: `supertok.train_superbpe` on {', '.join(os.path.basename(f) for f in args.superbpe_files)}, "
                f"vocab {args.superbpe_vocab}, transition {args.superbpe_transition}.")
    else:
        note = "SuperBPE column pending: `supertok.train_superbpe` (issue 6) is not on this branch yet."
    bp = M.byte_premium(rows, "en", languages=langs)
    prem = {name: M.token_premium(t, rows, "en", languages=langs) for name, t in toks.items()}
    from supertok.cli_eval import premium_rows

    names = list(toks)
    header, body = premium_rows(names, prem, bp)
    out = [
        f"Token premium = tokens(language) / tokens(English) over the rows of `parallel.jsonl` that have both "
        f"({len(langs)} languages with ≥ 1,000 rows; `supertok eval ... --corpus parallel.jsonl`). {note}\n",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in body]
    if args.plot:
        from supertok.cli_eval import plot_premiums

        plot_premiums(args.plot, names, prem, title="Token premium per language (parallel.jsonl)")
        out.append(f"\nPlot: `{os.path.relpath(args.plot, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}`.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs5", type=int, default=8)
    ap.add_argument("--runs10", type=int, default=5)
    ap.add_argument("--merges", type=int, nargs="+", default=[300, 1000, 3000])
    ap.add_argument("--max-train", type=int, default=2_000_000)
    ap.add_argument("--est-bytes", type=int, default=400_000)
    ap.add_argument("--pattern", default="o200k")
    ap.add_argument("--superbpe-files", nargs="+", default=[os.path.join(CORPUS_DIR, "en.txt")])
    ap.add_argument("--superbpe-vocab", type=int, default=32768)
    ap.add_argument("--superbpe-transition", type=float, default=0.8)
    ap.add_argument("--plot", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "token_premiums.png"))
    ap.add_argument("--skip-mixture", action="store_true")
    ap.add_argument("--skip-premiums", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    parts = [
        "## Science: data-mixture inference and token premiums\n",
        f"`python benches/bench_science.py` — {machine_info()}; {versions(['numpy', 'scipy'])}; commit {git_rev()}.\n",
    ]
    if not args.skip_mixture:
        parts.append("### Data-mixture inference\n")
        parts.append(mixture_experiment(args))
        parts.append("")
    if not args.skip_premiums:
        parts.append("### Token premiums\n")
        parts.append(premium_experiment(args))
    md = "\n".join(parts)
    print(md)
    if not args.no_write:
        write_section("science", md)


if __name__ == "__main__":
    main()
