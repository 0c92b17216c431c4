"""``supertok eval``: measure tokenizers on corpora (metrics table) and on a parallel corpus
(token-premium table, optional bar chart)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Optional

HELP = (
    "measure tokenizers (bundled names, tokenizer.json or .tiktoken paths) on text corpora "
    "and on a parallel .jsonl corpus (token premiums; --plot for a bar chart)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``eval`` arguments to ``p``."""
    p.add_argument("tokenizers", nargs="+", metavar="TOKENIZER", help="bundled encoding name, tokenizer.json or .tiktoken")
    p.add_argument(
        "--corpus", nargs="+", action="extend", default=[], metavar="FILE", required=True,
        help="UTF-8 text files (metrics) and/or .jsonl parallel corpora (token premiums)",
    )
    p.add_argument("--ref", default="en", help="reference language of the parallel corpus (default en)")
    p.add_argument(
        "--languages", default=None,
        help="comma-separated languages of the parallel corpus (default: all with --min-rows rows)",
    )
    p.add_argument(
        "--min-rows", type=int, default=1000,
        help="languages need this many rows shared with --ref (default 1000, capped at the row count)",
    )
    p.add_argument("--max-bytes", type=int, default=None, help="use at most this many bytes of each text corpus")
    p.add_argument("--power", type=float, default=2.5, help="Rényi efficiency power (default 2.5)")
    p.add_argument("--pattern", default="cl100k_base", help="split pattern for .tiktoken files: bundled name or regex")
    p.add_argument("--plot", metavar="PNG", help="bar chart of token premiums per language (needs matplotlib)")
    p.add_argument("--json", metavar="PATH", help="also write every number as JSON")


def _read_text(path: str, max_bytes: Optional[int], doc_bytes: int = 65536) -> list[str]:
    """The file's lines grouped into documents of about ``doc_bytes``."""
    docs: list[str] = []
    cur: list[str] = []
    n = total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            b = len(line.encode("utf-8"))
            if max_bytes is not None and total + b > max_bytes:
                break
            cur.append(line)
            n += b
            total += b
            if n >= doc_bytes:
                docs.append("".join(cur))
                cur, n = [], 0
    if cur:
        docs.append("".join(cur))
    if not any(docs):
        raise ValueError(f"{path}: no text")
    return docs


def _fmt(x: float, digits: int = 3) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and x.is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def premium_rows(
    names: list[str], premiums: dict[str, dict[str, float]], byte_prem: dict[str, float]
) -> tuple[list[str], list[list[str]]]:
    """Markdown header and rows of a premium table (languages sorted by the first
    tokenizer's premium), with mean and max rows."""
    langs = sorted(byte_prem, key=lambda lang: (premiums[names[0]][lang], lang))
    header = ["language", "byte premium"] + names
    rows = [[lang, _fmt(byte_prem[lang], 2)] + [_fmt(premiums[n][lang], 2) for n in names] for lang in langs]
    rows.append(["**mean**", _fmt(sum(byte_prem.values()) / len(byte_prem), 2)] + [
        _fmt(sum(premiums[n].values()) / len(premiums[n]), 2) for n in names
    ])
    rows.append(["**max**", _fmt(max(byte_prem.values()), 2)] + [_fmt(max(premiums[n].values()), 2) for n in names])
    return header, rows


def plot_premiums(
    path: str, names: list[str], premiums: dict[str, dict[str, float]], *, ref: str = "en", title: str = ""
) -> None:
    """Write a grouped bar chart of token premiums per language to ``path`` (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'supertok[plot]'") from None
    langs = sorted(premiums[names[0]], key=lambda lang: (premiums[names[0]][lang], lang))
    k = len(names)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(min(20.0, max(8.0, 0.2 * len(langs) + 2)), 5.0))
    for j, n in enumerate(names):
        xs = [i + (j - (k - 1) / 2) * width for i in range(len(langs))]
        ax.bar(xs, [premiums[n][lang] for lang in langs], width=width, label=n)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(langs)))
    ax.set_xticklabels(langs, rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(langs) - 0.4)
    ax.set_ylabel(f"token premium (tokens / tokens of {ref})")
    ax.set_title(title or "Token premium per language")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Run ``supertok eval``."""
    from supertok import metrics as M
    from supertok._adapt import load_tokenizer

    toks = []
    for spec in args.tokenizers:
        toks.append(load_tokenizer(spec, pattern=args.pattern))
    names = [t.name for t in toks]
    if len(set(names)) != len(names):
        names = [f"{n} ({spec})" if names.count(n) > 1 else n for n, spec in zip(names, args.tokenizers)]
        for t, n in zip(toks, names):
            t.name = n
    text_corpora = [c for c in args.corpus if not c.endswith(".jsonl")]
    parallel = [c for c in args.corpus if c.endswith(".jsonl")]
    result: dict[str, Any] = {"metrics": {}, "premiums": {}}

    if text_corpora:
        rows = []
        for c in text_corpora:
            texts = _read_text(c, args.max_bytes)
            for t in toks:
                r = M.evaluate(t, texts, power=args.power)
                result["metrics"].setdefault(t.name, {})[c] = r
                rows.append([
                    t.name, os.path.basename(c), _fmt(r["tokens"], 0), _fmt(r["bytes_per_token"], 3),
                    _fmt(r["chars_per_token"], 3), _fmt(r["fertility"], 3), _fmt(r["continued_word_rate"], 3),
                    _fmt(r["vocab_utilization"], 4), _fmt(r["renyi_efficiency"], 4),
                ])
        header = ["tokenizer", "corpus", "tokens", "bytes/token", "chars/token", "fertility",
                  "continued words", "vocab use", f"Rényi eff. (a={args.power:g})"]
        print("## Corpus metrics\n")
        print(_table(header, rows))
        print()

    premiums_for_plot: Optional[tuple[str, dict[str, dict[str, float]]]] = None
    for c in parallel:
        data = M.load_parallel(c)
        if args.languages:
            langs = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
            if args.ref not in langs:
                langs.append(args.ref)
        else:
            min_rows = max(1, min(args.min_rows, len(data)))
            ref_rows = [r for r in data if r.get(args.ref)]
            langs = M.parallel_languages(ref_rows, min_rows=min_rows)
        if not langs or args.ref not in langs:
            raise ValueError(f"{c}: the reference language {args.ref!r} is missing or no language has enough rows")
        bp = M.byte_premium(data, args.ref, languages=langs)
        prem = {t.name: M.token_premium(t, data, args.ref, languages=langs) for t in toks}
        result["premiums"][c] = {"byte_premium": bp, "token_premium": prem, "ref": args.ref}
        header, rows = premium_rows(names, prem, bp)
        print(f"## Token premiums ({os.path.basename(c)}, reference {args.ref}, {len(langs)} languages)\n")
        print(_table(header, rows))
        print()
        if premiums_for_plot is None:
            premiums_for_plot = (c, prem)

    if args.plot:
        if premiums_for_plot is None:
            raise ValueError("--plot needs a parallel .jsonl corpus in --corpus")
        c, prem = premiums_for_plot
        plot_premiums(args.plot, names, prem, ref=args.ref, title=f"Token premium per language ({os.path.basename(c)})")
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, sort_keys=True, allow_nan=True)
    return 0
