"""Single-thread encode speed of supertok.Tokenizer vs HF tokenizers on the same
tokenizer.json files (section "hf" of BENCHMARKS.md).

    python benches/bench_hf.py [--mb 2] [--repeats 3] [--no-write]

Tokenizers (real vocabularies, built from the bundled tiktoken files, written as
tokenizer.json and loaded by both libraries):
* gpt2: r50k vocab, ByteLevel(use_regex=true) pre-tokenizer (GPT-2's own setup);
* gpt4: cl100k vocab, Split(cl100k) + ByteLevel, ignore_merges (as from_tiktoken writes it);
* llama3: cl100k vocab, Split(Llama-3 regex) + ByteLevel, ignore_merges (Llama-3's setup);
* superbpe: cl100k vocab, Digits + Split((?=(\\d{3})+(?!\\d))) + ByteLevel (SuperBPE's
  paper pre-tokenizer: whole lines are pieces).

Each document is encoded with one call; HF is measured with ``encode`` (its standard API,
computing offsets) and ``encode_batch_fast`` (no offsets) with TOKENIZERS_PARALLELISM=false.
Ratios use the faster HF figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import tokenizers  # noqa: E402

import supertok  # noqa: E402

DIGIT_GROUPS = r"(?=(\d{3})+(?!\d))"
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build(config: str) -> str:
    """tokenizer.json text for a benchmark configuration."""
    if config == "gpt2":
        j = json.loads(supertok.Tokenizer.from_tiktoken(supertok.get_encoding("r50k_base")).to_json())
        j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
        j["model"]["ignore_merges"] = False
        return json.dumps(j)
    j = json.loads(supertok.Tokenizer.from_tiktoken(supertok.get_encoding("cl100k_base")).to_json())
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    if config == "gpt4":
        return json.dumps(j)
    if config == "llama3":
        j["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
                bl,
            ],
        }
        return json.dumps(j)
    if config == "superbpe":
        j["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": False},
                {"type": "Split", "pattern": {"Regex": DIGIT_GROUPS}, "behavior": "Isolated", "invert": False},
                bl,
            ],
        }
        j["model"]["ignore_merges"] = False
        return json.dumps(j)
    raise ValueError(config)


def corpora(mb: float) -> dict[str, list[str]]:
    n = int(mb * 1_000_000)
    out: dict[str, list[str]] = {}
    for name in ["en.txt", "code.txt"]:
        t = C.read_corpus(name)
        if t is not None:
            out[name.split(".")[0]] = C.chunk_documents(t[:n], 8192)
    ml_dir = os.path.join(C.CORPUS_DIR, "multilingual")
    if os.path.isdir(ml_dir):
        langs = ["de", "ru", "ja", "zh_CN", "ko", "el", "ta", "vi", "ka", "tr"]
        parts = []
        for lang in langs:
            t = C.read_corpus(f"multilingual/{lang}.txt")
            if t:
                parts.append(t[: n // len(langs)])
        out["multilingual"] = C.chunk_documents("\n".join(parts), 8192)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=2.0, help="MB of each corpus")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--digits", type=int, default=16000, help="length of the digit run")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    docs_by_corpus = corpora(args.mb)
    rows = []
    for config in ["gpt2", "gpt4", "llama3", "superbpe"]:
        js = build(config)
        ours = supertok.Tokenizer.from_str(js)
        hf = tokenizers.Tokenizer.from_str(js)
        for cname, docs in docs_by_corpus.items():
            mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
            # exactness first
            mine = [ours.encode(d) for d in docs]
            theirs = [e.ids for e in hf.encode_batch_fast(docs)]
            bad = sum(a != b for a, b in zip(mine, theirs))
            fns = {
                "supertok": lambda: [ours.encode(d) for d in docs],
                "hf_encode": lambda: [hf.encode(d) for d in docs],
                "hf_fast": lambda: hf.encode_batch_fast(docs),
            }
            t = {k: v[1] for k, v in C.interleaved_medians_cpu(fns, repeats=args.repeats).items()}
            best_hf = min(t["hf_encode"], t["hf_fast"])
            rows.append(
                [
                    config,
                    cname,
                    f"{mb:.2f}",
                    f"{mb / t['supertok']:.1f}",
                    f"{mb / t['hf_encode']:.2f}",
                    f"{mb / t['hf_fast']:.2f}",
                    f"{best_hf / t['supertok']:.1f}x",
                    bad,
                ]
            )
            print(rows[-1], file=sys.stderr)
    # the quadratic digit case
    js = build("superbpe")
    ours = supertok.Tokenizer.from_str(js)
    hf = tokenizers.Tokenizer.from_str(js)
    digits = "7" * args.digits
    assert ours.encode(digits) == hf.encode(digits).ids
    t = C.interleaved_medians_cpu(
        {"supertok": lambda: ours.encode(digits), "hf_encode": lambda: hf.encode(digits)},
        repeats=args.repeats,
    )
    t = {k: v[1] for k, v in t.items()}
    digit_row = [
        "superbpe",
        f"'7' * {args.digits}",
        f"{len(digits) / 1e6:.3f}",
        f"{t['supertok'] * 1e3:.2f} ms",
        f"{t['hf_encode'] * 1e3:.0f} ms",
        "",
        f"{t['hf_encode'] / t['supertok']:.0f}x",
        0,
    ]
    rows.append(digit_row)
    print(digit_row, file=sys.stderr)

    # load time of the same tokenizer.json text
    load_rows = []
    for config in ["gpt2", "gpt4"]:
        js = build(config)
        t = C.interleaved_medians(
            {
                "supertok": lambda: supertok.Tokenizer.from_str(js),
                "hf": lambda: tokenizers.Tokenizer.from_str(js),
            },
            repeats=args.repeats,
        )
        load_rows.append(
            [config, f"{len(js) / 1e6:.1f}", f"{t['supertok'] * 1e3:.0f} ms", f"{t['hf'] * 1e3:.0f} ms", f"{t['hf'] / t['supertok']:.1f}x"]
        )
        print(load_rows[-1], file=sys.stderr)

    md = "\n".join(
        [
            "## HF tokenizer.json: single-thread encode (`benches/bench_hf.py`)",
            "",
            f"Machine: {C.machine_info()}. Versions: {C.versions(['supertok', 'tokenizers'])}; git {C.git_rev()}.",
            f"Medians of {args.repeats} interleaved runs of thread CPU time (the machine is shared; all contenders "
            "run on the calling thread); MB/s of UTF-8 input; each document (≤ 8 KB chunks of the corpus) "
            "encoded with one call. HF `encode` computes offsets (its standard API); `encode_batch_fast` skips them "
            "(TOKENIZERS_PARALLELISM=false, so single-threaded). Ratio = fastest HF / supertok. "
            "`mismatch` = documents whose ids differ (must be 0).",
            "",
            C.md_table(
                ["tokenizer", "corpus", "MB", "supertok MB/s", "HF encode MB/s", "HF encode_batch_fast MB/s", "ratio", "mismatch"],
                rows,
            ),
            "",
            "Loading (`Tokenizer.from_str` on the same JSON text):",
            "",
            C.md_table(["tokenizer", "JSON MB", "supertok", "HF", "ratio"], load_rows),
        ]
    )
    print(md)
    if not args.no_write:
        C.write_section("hf", md)


if __name__ == "__main__":
    main()
