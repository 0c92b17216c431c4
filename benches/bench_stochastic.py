"""StochasTok and BPE-dropout: throughput vs a straightforward Python implementation of the
reference procedure, and token-length increase on en.txt.

    python benches/bench_stochastic.py [--tokens 10000000] [--repeats 3] [--py-sample 1000000]

Writes the section "stochastic" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import supertok  # noqa: E402
from _common import (  # noqa: E402
    chunk_documents,
    git_rev,
    interleaved_medians,
    machine_info,
    md_table,
    read_corpus,
    versions,
    write_section,
)
from supertok import _core  # noqa: E402
from supertok.stochastic import stochastok, stochastok_batch  # noqa: E402

PS = [0.05, 0.1, 0.3, 1.0]


# ----------------------------------------------------------------------------- Python reference
# Straightforward Python, written the way the reference (anyasims/stochastok,
# stochastok_processor.py) works, minus its pitfalls (O(|V|) list membership in the table
# build; the JSON cache that silently disables expansion).


def py_build_table(ranks: dict[bytes, int]) -> dict[int, list[tuple[int, int]]]:
    table: dict[int, list[tuple[int, int]]] = {}
    for tok, i in ranks.items():
        for j in range(1, len(tok)):
            a, b = ranks.get(tok[:j]), ranks.get(tok[j:])
            if a is not None and b is not None:
                table.setdefault(i, []).append((a, b))
    return table


def py_expand(ids: list[int], table: dict[int, list[tuple[int, int]]], p: float, rng: random.Random) -> list[int]:
    n_attempts = int(len(ids) * p)
    for _ in range(n_attempts):
        idx = rng.randrange(len(ids))
        options = table.get(ids[idx])
        if options:
            ids = ids[:idx] + list(rng.choice(options)) + ids[idx + 1 :]
    return ids


# ----------------------------------------------------------------------------- helpers


def wall_and_cpu(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Interleaved medians of wall time and of process CPU time (all threads) per function.
    CPU time is the steadier figure on a shared, oversubscribed machine."""
    for fn in fns.values():
        fn()
    wall: dict = {k: [] for k in fns}
    cpu: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    return ({k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()})


def hf_gpt2_json(enc: supertok.Encoding, dropout: float | None = None) -> str:
    """tokenizer.json of a byte-level BPE equivalent to gpt2 (merges derived from the ranks)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from stoch_helpers import hf_byte_level_bpe_json

    return hf_byte_level_bpe_json(enc._mergeable_ranks, enc._special_tokens, dropout)


def hf_gpt2(enc: supertok.Encoding, dropout: float):
    """HF tokenizers' own BPE(dropout=p) for that tokenizer.json."""
    import tokenizers

    return tokenizers.Tokenizer.from_str(hf_gpt2_json(enc, dropout))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--py-sample", type=int, default=1_000_000, help="tokens the Python reference runs on")
    ap.add_argument("--dropout-bytes", type=int, default=4_000_000, help="bytes of en.txt for the dropout rows")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    info = machine_info()
    enc = supertok.get_encoding("gpt2")  # the reference's vocabulary (GPT-2, 50,257 tokens)
    en = read_corpus("en.txt")
    code = read_corpus("code.txt")
    if en is None:
        sys.exit("corpus en.txt not found (set SUPERTOK_CORPUS)")
    text = en + ("\n" + code if code else "")

    # documents of <= 8 KB (about 2k tokens), encoded once
    docs = chunk_documents(text, 8192)
    rows = enc.encode_ordinary_batch(docs, num_threads=os.cpu_count() or 1)
    total = sum(map(len, rows))
    while total < args.tokens:  # tile if the corpus is smaller than requested
        rows = rows + rows
        total *= 2
    # cut to exactly args.tokens
    keep, acc = [], 0
    for r in rows:
        if acc + len(r) >= args.tokens:
            keep.append(r[: args.tokens - acc])
            break
        keep.append(r)
        acc += len(r)
    rows = [r for r in keep if r]
    n_tokens = sum(map(len, rows))
    values = np.concatenate([np.asarray(r, dtype=np.uint32) for r in rows])
    offsets = np.zeros(len(rows) + 1, dtype=np.uint64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    print(f"{n_tokens:,} tokens in {len(rows):,} documents", file=sys.stderr)

    rate = lambda secs: n_tokens / secs / 1e6  # noqa: E731

    # ------------------------------------------------------------------ table build
    ranks = enc._mergeable_ranks
    t_build = interleaved_medians(
        {
            "rust": lambda: _core.SplitTable.from_encoding(enc._core_bpe),
            "python": lambda: py_build_table(ranks),
        },
        repeats=args.repeats,
    )
    table_py = py_build_table(ranks)
    table = supertok.split_table(enc)

    # ------------------------------------------------------------------ StochasTok throughput, p = 0.1
    p = 0.1
    # Python reference on a prefix of the documents, extrapolated linearly (cost is per
    # document and documents are similar in size)
    sample, acc = [], 0
    for r in rows:
        if acc >= args.py_sample:
            break
        sample.append(list(r))
        acc += len(r)
    sample_tokens = acc

    def run_python() -> None:
        rng = random.Random(0)
        for r in sample:
            py_expand(r, table_py, p, rng)

    flat = values.tobytes()
    flat_offsets = offsets.tobytes()

    def run_rust_docs(threads: int):
        return lambda: table.stochastok_ragged(flat, flat_offsets, p, None, 1, threads)

    timings, cpu = wall_and_cpu(
        {
            "py": run_python,
            "rust_docs_1": run_rust_docs(1),
            "rust_docs_2": run_rust_docs(2),
            "rust_one_seq": lambda: table.stochastok_buffer(flat, p, None, 1),
            "api_numpy_docs": lambda: stochastok_batch(values, enc, p=p, seed=1, offsets=offsets),
        },
        repeats=args.repeats,
    )
    py_extrapolated = timings["py"] * n_tokens / sample_tokens
    py_cpu = cpu["py"] * n_tokens / sample_tokens

    def row(label: str, key: str) -> list:
        w, c = timings[key], cpu[key]
        return [label, w, rate(w), py_extrapolated / w, c, py_cpu / c]

    # ------------------------------------------------------------------ length increase, StochasTok
    en_docs = chunk_documents(en, 8192)
    en_rows = enc.encode_ordinary_batch(en_docs, num_threads=os.cpu_count() or 1)
    en_tokens = sum(map(len, en_rows))
    en_vals = np.concatenate([np.asarray(r, dtype=np.uint32) for r in en_rows])
    en_offs = np.zeros(len(en_rows) + 1, dtype=np.uint64)
    np.cumsum([len(r) for r in en_rows], out=en_offs[1:])
    stoch_inc = {}
    for q in PS:
        incs = []
        for seed in range(3):
            v, _ = stochastok_batch(en_vals, enc, p=q, seed=seed, offsets=en_offs)
            incs.append(len(v) / en_tokens - 1)
        stoch_inc[q] = statistics.mean(incs)
    # one sequence for the whole file (the attempts spread over everything)
    whole = {q: len(stochastok(en_vals, enc, p=q, seed=0)) / en_tokens - 1 for q in PS}

    # ------------------------------------------------------------------ length increase, dropout
    sub = en[: args.dropout_bytes]
    sub = sub[: sub.rfind("\n") + 1]
    sub_docs = chunk_documents(sub, 8192)
    base = sum(len(enc.encode_ordinary(d)) for d in sub_docs)
    drop_inc = {}
    drop_time = {}
    for q in PS:
        t = time.perf_counter()
        n = sum(len(enc.encode(d, dropout=q, seed=i, disallowed_special=())) for i, d in enumerate(sub_docs))
        drop_time[q] = time.perf_counter() - t
        drop_inc[q] = n / base - 1
    short = [ln[:64] for ln in en.splitlines() if ln.strip()][:2000]

    def encode_without_keyword(self, text, allowed_special=frozenset(), disallowed_special="all"):  # noqa: ANN001
        # Encoding.encode's body before the dropout keyword existed (for an A/B of its cost)
        from supertok.core import _check_str, _fix_surrogates

        _check_str(text)
        allowed, disallowed = self._resolve_special(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.encode(_fix_surrogates(text), allowed, disallowed)

    t_kw = interleaved_medians(
        {
            "encode": lambda: [enc.encode(d) for d in short],
            "before": lambda: [encode_without_keyword(enc, d) for d in short],
        },
        repeats=max(args.repeats, 7),
    )
    t_plain = interleaved_medians({"plain": lambda: [enc.encode(d, disallowed_special=()) for d in sub_docs]}, repeats=args.repeats)["plain"]
    hf_inc = {}
    try:
        hf_sub = sub_docs[: max(1, len(sub_docs) // 4)]
        hf_base = sum(len(enc.encode_ordinary(d)) for d in hf_sub)
        for q in PS:
            tok = hf_gpt2(enc, q)
            hf_inc[q] = sum(len(e.ids) for e in tok.encode_batch(hf_sub)) / hf_base - 1
        ours_small = {
            q: sum(len(enc.encode(d, dropout=q, seed=i, disallowed_special=())) for i, d in enumerate(hf_sub)) / hf_base - 1
            for q in PS
        }
        # the same HF merge list in supertok.Tokenizer: only the dropout algorithm differs
        st_tok = supertok.Tokenizer.from_str(hf_gpt2_json(enc))
        tok_small = {
            q: sum(len(st_tok.encode(d, dropout=q, seed=i)) for i, d in enumerate(hf_sub)) / hf_base - 1 for q in PS
        }
    except ImportError:
        ours_small, tok_small = {}, {}

    # ------------------------------------------------------------------ report
    lines = [
        "## Stochastic tokenization (StochasTok, BPE-dropout)",
        "",
        f"`python benches/bench_stochastic.py` at {git_rev()} — {info}; {versions(['numpy', 'tokenizers'])}.",
        f"Vocabulary: gpt2 (r50k_base, the StochasTok reference's). Medians of {args.repeats} interleaved runs.",
        "",
        f"### StochasTok throughput, p = {p}, {n_tokens:,} tokens",
        "",
        f"Input: en.txt + code.txt encoded with gpt2, cut into {len(rows):,} documents of <= 8 KB "
        f"(~{n_tokens // len(rows):,} tokens each), expanded per document like the reference's "
        "`dataset.map`. The Python implementation is the reference procedure written "
        "straightforwardly (dict table, `random`, list splicing per success); it ran on the first "
        f"{sample_tokens:,} tokens and is **extrapolated linearly** to {n_tokens:,} tokens.",
        "",
        md_table(
            ["implementation", "wall s", "M tokens/s", "speed-up (wall)", "CPU s (all threads)", "speed-up (CPU)"],
            [
                ["Python reference (extrapolated)", py_extrapolated, rate(py_extrapolated), 1.0, py_cpu, 1.0],
                row("supertok core, per document, 1 thread (uint32 bytes in, bytearray out)", "rust_docs_1"),
                row("supertok core, per document, 2 threads", "rust_docs_2"),
                row("`supertok.stochastok_batch(values, offsets=)`: numpy in/out, end to end, all cores", "api_numpy_docs"),
                row(f"supertok core, the whole input as one sequence ({n_tokens / 1e6:g}M tokens), 1 thread", "rust_one_seq"),
            ],
        ),
        "",
        "The end-to-end row is what users call: it hands large batches to Rust in chunks of 2M "
        "tokens, so its buffers are reused. The core rows pass one 40 MB buffer in and get one fresh "
        "40 MB buffer back; first-touch page faults on fresh memory are most of their remaining cost "
        "(which is why the API chunks). The one-sequence row is bound by memory latency (every "
        "attempt reads a random slot of an 80 MB array) and by ~250 MB of fresh buffers.",
        "",
        f"(The Python procedure on one {n_tokens / 1e6:g}M-token sequence would splice a list of that size "
        f"{int(n_tokens * p):,} times, O(p·n²); not run.)",
        "",
        f"Split table build (gpt2, {table.n_splits:,} splits): supertok {t_build['rust'] * 1e3:.1f} ms, "
        f"straightforward Python (dict lookups) {t_build['python'] * 1e3:.0f} ms "
        f"({t_build['python'] / t_build['rust']:.0f}×).",
        "",
        f"### Token-length increase on en.txt ({en_tokens:,} gpt2 tokens)",
        "",
        "StochasTok: per 8 KB document, mean of seeds 0–2 (and, for comparison, the whole file as one "
        f"sequence, seed 0). BPE-dropout (`Encoding.encode(text, dropout=p, seed=i)`): first "
        f"{len(sub.encode()):,} bytes of en.txt ({base:,} plain tokens); encode time relative to plain "
        "`encode` of the same documents. On the first quarter of those documents: Hugging Face "
        "`tokenizers` `BPE(dropout=p)` (unseeded) and `supertok.Tokenizer.encode(dropout=p)` on the "
        "same tokenizer.json (merges derived from the gpt2 ranks; identical ids at p = 0), so that "
        "the two differ only in the dropout algorithm (HF re-draws for stale heap entries, which "
        "gives skipped merges extra chances: docs/stochastic.md), and `Encoding` (tiktoken merge "
        "semantics: any two parts whose concatenation is a token can merge).",
        "",
        md_table(
            [
                "p",
                "StochasTok (per doc)",
                "StochasTok (one sequence)",
                "dropout (Encoding)",
                "dropout time / plain",
                "¼ subset: HF `BPE(dropout=p)`",
                "¼ subset: supertok.Tokenizer (same merge list)",
                "¼ subset: Encoding",
            ],
            [
                [
                    q,
                    f"+{stoch_inc[q] * 100:.2f}%",
                    f"+{whole[q] * 100:.2f}%",
                    f"+{drop_inc[q] * 100:.2f}%",
                    f"{drop_time[q] / t_plain:.1f}×",
                    f"+{hf_inc[q] * 100:.2f}%" if q in hf_inc else "n/a",
                    f"+{tok_small[q] * 100:.2f}%" if q in tok_small else "n/a",
                    f"+{ours_small[q] * 100:.2f}%" if q in ours_small else "n/a",
                ]
                for q in PS
            ],
        ),
        "",
        f"Plain encoding is unaffected by the `dropout` keyword (default `None`: one `is not None` "
        f"test in Python, the Rust encoder is untouched): `Encoding.encode` on {len(short):,} "
        f"64-character strings, {t_kw['encode'] / len(short) * 1e6:.2f} µs per call vs "
        f"{t_kw['before'] / len(short) * 1e6:.2f} µs for the method body as it was before the "
        f"keyword (ratio {t_kw['encode'] / t_kw['before']:.2f}).",
        "",
        "StochasTok's increase is at most p (one token per successful attempt); attempts that land on "
        "single bytes (or on tokens without a legal split) are wasted. BPE-dropout at the same p "
        "perturbs far more: every merge of every word is a chance to stop.",
    ]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        write_section("stochastic", md)


if __name__ == "__main__":
    main()
