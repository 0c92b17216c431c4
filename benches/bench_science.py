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
    pattern: str, est_sweep: list[int] = (), est_sweep_T: int = 1000,
) -> list[dict]:
    rng = np.random.default_rng(seed)
    langs = sorted(rng.choice(langs_all, size=n, replace=False).tolist())
    w = rng.dirichlet(np.ones(n))
    avail = np.array([nbytes(pools[lang][0]) for lang in langs], dtype=float)
    total = float(min(max_train, (avail / w).min()))
    parts = {lang: take_bytes(pools[lang][0], wi * total) for lang, wi in zip(langs, w)}
    true_bytes = np.array([nbytes(parts[lang]) for lang in langs], dtype=float)
    truth = true_bytes / true_bytes.sum()
    docs = [ln for lang in langs for ln in parts[lang]]
    random.Random(seed).shuffle(docs)
    # documents of ~64 lines (each is one text for the pretokenizer)
    texts = ["\n".join(docs[i : i + 64]) + "\n" for i in range(0, len(docs), 64)]
    tmax = max(merges_list)
    t0 = time.perf_counter()
    tok = supertok.train_from_iterator(texts, 256 + tmax, pattern=pattern, show_progress=False)
    t_train = time.perf_counter() - t0
    samples = {lang: take_bytes(pools[lang][1], est_bytes) for lang in langs}
    sample_texts = {lang: ["\n".join(s[i : i + 64]) + "\n" for i in range(0, len(s), 64)] for lang, s in samples.items()}
    rows = []
    t0 = time.perf_counter()
    traces = mixture.replay(tok, sample_texts, max_merges=tmax)
    t_replay = time.perf_counter() - t0
    for T in merges_list:
        sub = {k: _truncate(tr, T) for k, tr in traces.items()}
        t0 = time.perf_counter()
        res = mixture.infer_traces(sub)
        t_inf = time.perf_counter() - t0
        est = np.array([res.proportions[lang] for lang in langs])
        mse = float(np.mean((est - truth) ** 2))
        uni = float(np.mean((np.full(n, 1.0 / n) - truth) ** 2))
        rows.append(dict(
            seed=seed, n=n, T=T, langs=langs, truth=truth, est=est, mse=mse, uniform=uni,
            train_mb=true_bytes.sum() / 1e6, est_kb=np.mean([nbytes(s) for s in samples.values()]) / 1e3,
            t_train=t_train, t_replay=t_replay, t_infer=t_inf, constraints=res.n_constraints,
            rounds=res.rounds, converged=res.converged, worst=int(np.argmax(np.abs(est - truth))),
            t_sweep=res.seconds_sweep, t_lp=res.seconds_lp, est_bytes=est_bytes,
        ))
    for b in est_sweep:
        small = {lang: take_bytes(pools[lang][1], b) for lang in langs}
        st = {lang: ["\n".join(s[i : i + 64]) + "\n" for i in range(0, len(s), 64)] for lang, s in small.items()}
        res = mixture.infer_traces(mixture.replay(tok, st, max_merges=est_sweep_T))
        est = np.array([res.proportions[lang] for lang in langs])
        rows.append(dict(seed=seed, n=n, T=est_sweep_T, est_bytes=b, mse=float(np.mean((est - truth) ** 2)), sweep=True))
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
    pools = {lang: split_pool(read_lines(lang), 0.6) for lang in langs_all}
    all_rows = []
    for n, runs in ((5, args.runs5), (10, args.runs10)):
        for r in range(runs):
            seed = 1000 * n + r
            t0 = time.perf_counter()
            rows = one_run(seed, n, langs_all, pools, args.merges, args.max_train, args.est_bytes, args.pattern,
                           args.est_sweep)
            all_rows += rows
            print(f"n={n} run {r}: " + ", ".join(f"T={x['T']}/{x['est_bytes'] // 1000}KB: {math.log10(x['mse']):.2f}" for x in rows)
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
    md.append(_tables(all_rows, args.merges, args.est_sweep, "languages"))
    if args.domain_runs:
        pools_d = domain_pools()
        d_rows = []
        for r in range(args.domain_runs):
            seed = 3000 + r
            t0 = time.perf_counter()
            rows = one_run(seed, 3, sorted(pools_d), pools_d, args.merges, args.max_train, args.est_bytes, args.pattern)
            d_rows += rows
            print(f"domains run {r}: " + ", ".join(f"T={x['T']}: {math.log10(x['mse']):.2f}" for x in rows)
                  + f" ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        md.append("")
        md.append(
            "Harder, 'domains'-like categories (the paper's RedPajama domains reach only -3.41): English prose "
            "(`en.txt`: man pages and Rust books), Python source (`code.txt`) and English UI strings "
            "(the `en` side of `parallel.jsonl`), same protocol, n = 3:\n"
        )
        md.append(_tables(d_rows, args.merges, [], "categories"))
    return "\n".join(md)


def domain_pools() -> dict:
    """Training/estimation pools of three English-ish domains (lines, shuffled, 60/40)."""
    def lines_of(name: str, limit: int) -> list[str]:
        with open(os.path.join(CORPUS_DIR, name), encoding="utf-8") as f:
            text = f.read(limit)
        return [ln for ln in text.split("\n") if ln.strip()]

    ui = [r["en"] for r in M.load_parallel(os.path.join(CORPUS_DIR, "parallel.jsonl")) if r.get("en")]
    return {
        "prose": split_pool(lines_of("en.txt", 4_000_000), 0.6),
        "python": split_pool(lines_of("code.txt", 4_000_000), 0.6),
        "ui": split_pool(ui, 0.6),
    }


def _tables(all_rows: list[dict], merges: list[int], est_sweep: list[int], what: str) -> str:
    main_rows = [x for x in all_rows if not x.get("sweep")]
    header = ["n", "run", what, "train MB"] + [f"log10 MSE T={T}" for T in merges] + [
        "uniform", f"worst share at T={merges[-1]} (true → est.)", "constraints", "replay s", "sweep s", "LP s"]
    rows = []
    ns = sorted({x["n"] for x in main_rows})
    for n in ns:
        for seed in sorted({x["seed"] for x in main_rows if x["n"] == n}):
            xs = [x for x in main_rows if x["seed"] == seed]
            last = xs[-1]
            k = last["worst"]
            rows.append([
                n, seed % 1000, " ".join(last["langs"]), f"{last['train_mb']:.2f}",
                *[f"{math.log10(x['mse']):.2f}" for x in xs],
                f"{math.log10(last['uniform']):.2f}",
                f"{last['langs'][k]} {last['truth'][k]:.4f} → {last['est'][k]:.4f}",
                last["constraints"], f"{last['t_replay']:.1f}", f"{last['t_sweep']:.1f}", f"{last['t_lp']:.1f}",
            ])
    out = [md_table(header, rows), ""]
    summ = []
    for n in ns:
        for T in merges:
            v = [math.log10(x["mse"]) for x in main_rows if x["n"] == n and x["T"] == T]
            if v:
                summ.append([n, T, f"{main_rows[0]['est_bytes'] // 1000} KB", len(v), f"{np.mean(v):.2f} ± {np.std(v):.2f}",
                             f"{min(v):.2f} … {max(v):.2f}"])
        for b in est_sweep:
            v = [math.log10(x["mse"]) for x in all_rows if x.get("sweep") and x["n"] == n and x["est_bytes"] == b]
            if v:
                T = [x["T"] for x in all_rows if x.get("sweep")][0]
                summ.append([n, T, f"{b // 1000} KB", len(v), f"{np.mean(v):.2f} ± {np.std(v):.2f}", f"{min(v):.2f} … {max(v):.2f}"])
        u = [math.log10(x["uniform"]) for x in main_rows if x["n"] == n and x["T"] == merges[0]]
        if u:
            summ.append([n, "uniform guess", "", len(u), f"{np.mean(u):.2f} ± {np.std(u):.2f}", f"{min(u):.2f} … {max(u):.2f}"])
    out.append(md_table(["n", "merges T", "sample per category", "runs", "mean ± sd log10 MSE", "range"], summ))
    return "\n".join(out)


STAGE2_LINES = r"[^\n]+\n?|\n"  # SuperBPE-style stage 2: whole lines are the training chunks


def _superbpe_veto(left: bytes, right: bytes) -> bool:
    """SuperBPE's two stage-2 filters: no ': ' inside a token, at most 4 space-separated words."""
    s = left + right
    return b": " in s or len([p for p in s.split(b" ") if p]) > 4


def premium_tokenizers(args: argparse.Namespace) -> tuple[dict, str]:
    """A BPE and a two-stage SuperBPE tokenizer trained on the multilingual corpus (+ 1 MB of
    English prose), same vocabulary size."""
    files = [os.path.join(ML_DIR, f) for f in sorted(os.listdir(ML_DIR)) if f.endswith(".txt")]
    texts = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        texts += ["\n".join(lines[i : i + 64]) + "\n" for i in range(0, len(lines), 64)]
    with open(os.path.join(CORPUS_DIR, "en.txt"), encoding="utf-8") as fh:
        en = fh.read(1_000_000).split("\n")
    texts += ["\n".join(en[i : i + 16]) + "\n" for i in range(0, len(en), 16)]
    V = args.superbpe_vocab
    t1 = int(round(args.superbpe_transition * V))
    t0 = time.perf_counter()
    bpe = supertok.train_from_iterator(texts, V, pattern="o200k", show_progress=False)
    t_bpe = time.perf_counter() - t0
    toks = {f"BPE {V // 1024}K (ml)": bpe}
    train_superbpe = getattr(supertok, "train_superbpe", None)
    t0 = time.perf_counter()
    if train_superbpe is not None:
        sb = supertok.train_superbpe_from_iterator(texts, V, t1, show_progress=False)
        how = f"`supertok.train_superbpe_from_iterator(texts, {V}, {t1})`"
    else:
        # two stages from the trainer's own hooks: stage 1 = the BPE's first merges up to the
        # transition; stage 2 counts whole lines, replays stage 1 and continues greedily with
        # SuperBPE's two filters
        stage1 = mixture.tokenizer_merges(bpe)[: t1 - 256]
        counts = supertok.count_pretokens_from_iterator(texts, STAGE2_LINES, show_progress=False)
        tr = supertok._core.BpeTrainer(counts)
        tr.replay(stage1, "keep")
        tr.train(V, veto=_superbpe_veto)
        vocab = tr.vocab()
        merges = [(a, b) for a, b, _, _ in tr.merges()]
        sb = supertok.Tokenizer.from_bpe(vocab, merges, pattern=STAGE2_LINES)
        how = (
            f"two stages built from the trainer's hooks (`supertok.train_superbpe`, issue 6, is not on this "
            f"branch): stage 1 = the BPE's merges up to vocab {t1}, stage 2 = whole lines as chunks, stage-1 "
            f"merges replayed, greedy continuation to {V} with SuperBPE's filters (no `: `, ≤ 4 words); no digit "
            f"grouping"
        )
    t_sb = time.perf_counter() - t0
    toks[f"SuperBPE {V // 1024}K (ml)"] = sb
    note = (
        f"Trained tokenizers ('ml'): {len(files)} `multilingual/*.txt` files + 1 MB of `en.txt` "
        f"({sum(len(t.encode()) for t in texts) / 1e6:.0f} MB, disjoint from `parallel.jsonl`), vocab {V}, "
        f"o200k pattern; BPE = `supertok.train_from_iterator` ({t_bpe:.0f} s); SuperBPE = {how} ({t_sb:.0f} s)."
    )
    return toks, note


def premium_experiment(args: argparse.Namespace) -> str:
    rows = M.load_parallel(os.path.join(CORPUS_DIR, "parallel.jsonl"))
    ref_rows = [r for r in rows if r.get("en")]
    langs = M.parallel_languages(ref_rows, min_rows=1000)
    toks = {"cl100k_base": supertok.get_encoding("cl100k_base"), "o200k_base": supertok.get_encoding("o200k_base")}
    trained, note = premium_tokenizers(args)
    toks.update(trained)
    bp = M.byte_premium(rows, "en", languages=langs)
    prem = {name: M.token_premium(t, rows, "en", languages=langs) for name, t in toks.items()}
    from supertok.cli_eval import premium_rows

    names = list(toks)
    header, body = premium_rows(names, prem, bp)
    en_tokens = {name: M.corpus_token_count(t, [r["en"] for r in ref_rows]) for name, t in toks.items()}
    out = [
        f"Token premium = tokens(language) / tokens(English) over the rows of `parallel.jsonl` that have both "
        f"({len(langs)} languages with ≥ 1,000 rows; what `supertok eval ... --corpus parallel.jsonl` prints). {note}\n",
        "English tokens (all " + f"{len(ref_rows)} rows): " + ", ".join(f"{k} {v:,}" for k, v in en_tokens.items()) + ".\n",
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
    ap.add_argument("--est-sweep", type=int, nargs="*", default=[50_000, 150_000])
    ap.add_argument("--domain-runs", type=int, default=3)
    ap.add_argument("--pattern", default="o200k")
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
