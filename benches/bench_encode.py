#!/usr/bin/env python
"""Encoder speed (issue 3): supertok against every installed anchor, side by side.

    python benches/bench_encode.py            # full run, writes the "encode" section
    python benches/bench_encode.py --quick    # small samples, prints only

Anchors (each used only if installed): tiktoken, rs-bpe, bpe-openai, tokie and HF
``tokenizers`` (both from a tokenizer.json built here from the same ``.tiktoken`` ranks:
merges recovered from the ranks, ``Split(pattern, Isolated)`` + ``ByteLevel(use_regex=False)``,
``ignore_merges``), rustbpe (listed; it cannot load an existing vocabulary). Every anchor's
ids are compared with tiktoken's on every document, so the tables say which are exact.

Timings are medians of interleaved runs (every contender once per round), reported with
ratios measured in the same run; the single-thread table gives thread CPU time and wall
clock, all contenders warm (same warm-up pass), plus supertok's cold first pass. Documents are the corpora cut at line
boundaries into chunks of at most 8 KB; a sample of evenly spaced documents (``--mb`` per
corpus) keeps the run short. Nothing here is asserted: see BENCHMARKS.md for the figures.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import supertok  # noqa: E402
from supertok.registry import DATA_DIR  # noqa: E402

ENCODINGS = ["o200k_base", "cl100k_base"]
CACHE = os.path.join(C.ROOT, "benches", ".cache")
ANCHOR_PACKAGES = ["tiktoken", "rs-bpe", "bpe-openai", "tokie", "tokenizers", "rustbpe"]

Encoder = Callable[[str], list]
COLD = "supertok (cold)"


# ----------------------------------------------------------------------------- corpora


def corpus_docs(name: str) -> list[str] | None:
    """All documents (<= 8 KB, cut at line boundaries) of a corpus."""
    if name == "multilingual":
        files = sorted(glob.glob(os.path.join(C.CORPUS_DIR, "multilingual", "*.txt")))
        if not files:
            return None
        docs: list[str] = []
        for f in files:
            with open(f, encoding="utf-8") as fh:
                docs += C.chunk_documents(fh.read())
        return docs
    text = C.read_corpus(name)
    return None if text is None else C.chunk_documents(text)


def sample(docs: list[str], mb: float) -> list[str]:
    """Evenly spaced documents totalling about ``mb`` MB (all of them if smaller)."""
    total = sum(len(d.encode()) for d in docs)
    step = max(1, round(total / (mb * 1e6)))
    return docs[::step]


# ----------------------------------------------------------------------------- anchors


def tiktoken_ranks_file(name: str) -> str:
    return os.path.join(DATA_DIR, f"{name}.tiktoken")


def load_tiktoken(name: str):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ours = supertok.get_encoding(name)
    return tiktoken.Encoding(
        name,
        pat_str=ours._pat_str,
        mergeable_ranks=load_tiktoken_bpe(tiktoken_ranks_file(name)),
        special_tokens=dict(ours._special_tokens),
    )


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _merge_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's merge of ``token`` using only ranks below ``max_rank``."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def tokenizer_json(name: str) -> str:
    """Path of a HF tokenizer.json equivalent to the .tiktoken ranks (built once, cached)."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"{name}.tokenizer.json")
    if os.path.exists(path):
        return path
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(tiktoken_ranks_file(name))
    enc = _bytes_to_unicode()
    s = lambda b: "".join(enc[x] for x in b)  # noqa: E731
    vocab = {s(b): r for b, r in ranks.items()}
    merges = []
    for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) == 1:
            continue
        parts = _merge_parts(ranks, tok, r)
        if len(parts) != 2:
            raise RuntimeError(f"{name}: cannot recover the merge of {tok!r}: {parts}")
        merges.append([s(parts[0]), s(parts[1])])
    pattern = supertok.get_encoding(name)._pat_str
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": merges,
        },
    }
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def anchors(name: str) -> tuple[dict[str, Encoder], dict[str, str]]:
    """Encoders of the installed anchors for ``name`` and notes on the others."""
    enc: dict[str, Encoder] = {}
    notes: dict[str, str] = {}
    try:
        tk = load_tiktoken(name)
        enc["tiktoken"] = tk.encode_ordinary
    except ImportError:
        notes["tiktoken"] = "not installed"
    try:
        from rs_bpe.bpe import openai as rs_openai

        rs = getattr(rs_openai, name)()
        enc["rs-bpe"] = rs.encode
    except ImportError:
        notes["rs-bpe"] = "not installed"
    try:
        import bpe_openai

        bo = bpe_openai.get_encoding(name)
        enc["bpe-openai"] = bo.encode_ordinary
    except ImportError:
        notes["bpe-openai"] = "not installed"
    try:
        import tokenizers

        hf = tokenizers.Tokenizer.from_file(tokenizer_json(name))
        enc["HF tokenizers"] = lambda t, hf=hf: hf.encode(t, add_special_tokens=False).ids
    except ImportError:
        notes["HF tokenizers"] = "not installed"
    try:
        import tokie

        tt = tokie.Tokenizer.from_json(tokenizer_json(name))
        enc["tokie"] = lambda t, tt=tt: tt.encode(t).ids
    except ImportError:
        notes["tokie"] = "not installed"
    try:
        import rustbpe  # noqa: F401

        notes["rustbpe"] = "installed, but cannot load an existing vocabulary (a trainer whose encoder only serves its own training)"
    except ImportError:
        notes["rustbpe"] = "not installed"
    return enc, notes


# ----------------------------------------------------------------------------- measurements


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def single_thread(names: list[str], corpora: list[str], mb: float, repeats: int) -> tuple[str, dict]:
    rows = []
    per_byte: dict[tuple[str, str], float] = {}
    summary = []
    for name in names:
        ours = supertok.get_encoding(name)
        others, notes = anchors(name)
        contenders: dict[str, Encoder] = {"supertok": ours.encode_ordinary, **others}
        for corpus in corpora:
            docs = corpus_docs(corpus)
            if docs is None:
                print(f"corpus {corpus} absent, skipped", file=sys.stderr)
                continue
            docs = sample(docs, mb)
            nbytes = sum(len(d.encode()) for d in docs)
            ref = [contenders["tiktoken"](d) for d in docs] if "tiktoken" in contenders else None
            exact: dict[str, str] = {}
            for k, f in contenders.items():
                if ref is None:
                    exact[k] = "?"
                    continue
                try:
                    bad = sum(1 for d, r in zip(docs, ref) if f(d) != r)
                    exact[k] = "yes" if bad == 0 else f"**no** ({bad} docs differ)"
                except Exception as e:  # noqa: BLE001
                    exact[k] = f"error: {type(e).__name__}"
            fns = {k: (lambda f=f: [f(d) for d in docs]) for k, f in contenders.items() if not exact[k].startswith("error")}
            # Steady state: every contender gets the same untimed warm-up pass, then timed
            # passes (supertok's per-thread piece cache and tokie's caches are then warm).
            # supertok's cold first pass (piece cache cleared before the pass) is timed in
            # the same rounds, as an extra column.
            fns[COLD] = lambda: (supertok._core._clear_piece_cache(), [ours.encode_ordinary(d) for d in docs])
            t = C.interleaved_medians_cpu(fns, repeats=repeats)
            cpu = {k: mbps(nbytes, v[1]) for k, v in t.items() if k != COLD}
            wall = {k: mbps(nbytes, v[0]) for k, v in t.items() if k != COLD}
            cold_cpu = mbps(nbytes, t[COLD][1])
            per_byte[(name, corpus)] = t["supertok"][0] / nbytes
            others_cpu = {k: v for k, v in cpu.items() if k != "supertok"}
            best_other_name = max(others_cpu, key=lambda k: others_cpu[k], default="-")
            best_other = others_cpu.get(best_other_name, float("nan"))
            tk = cpu.get("tiktoken", float("nan"))
            summary.append(
                [
                    name,
                    corpus,
                    f"{cpu['supertok'] / tk:.2f}x",
                    f"{cpu['supertok'] / best_other:.2f}x ({best_other_name})",
                    f"{cold_cpu / tk:.2f}x",
                    f"{cold_cpu / best_other:.2f}x",
                ]
            )
            for k in contenders:
                sample_txt = f"{nbytes / 1e6:.2f} MB / {len(docs)} docs"
                if k not in cpu:
                    rows.append([name, corpus, sample_txt, k, "-", "-", "-", "-", exact[k]])
                    continue
                rows.append(
                    [
                        name,
                        corpus,
                        sample_txt,
                        k,
                        f"{cpu[k]:.1f}",
                        f"{wall[k]:.1f}",
                        f"{cpu[k] / tk:.2f}x",
                        f"{cold_cpu:.1f} ({cold_cpu / tk:.2f}x)" if k == "supertok" else "",
                        exact[k],
                    ]
                )
            speeds = {**cpu, "supertok cold": cold_cpu}
            print(f"{name} {corpus}: " + ", ".join(f"{k} {v:.1f}" for k, v in speeds.items()), file=sys.stderr)
        for k, v in notes.items():
            rows.append([name, "-", "-", k, "-", "-", v])
    md = "### Single thread, `encode_ordinary` per document\n\n"
    md += (
        "Steady state: every contender gets one untimed warm-up pass over the sample, then the "
        "timed passes (so caches, supertok's per-thread piece cache included, are warm for all). "
        "MB/s from thread CPU time (the steadier figure on a shared machine) and from wall clock; "
        "ratios from CPU time. *Cold*: supertok's first pass, with its piece cache cleared "
        "before each timed pass (measured in the same rounds).\n\n"
    )
    md += C.md_table(
        [
            "encoding",
            "corpus",
            "sample",
            "encoder",
            "MB/s (CPU)",
            "MB/s (wall)",
            "vs tiktoken",
            "cold first pass MB/s (vs tiktoken)",
            "ids = tiktoken",
        ],
        rows,
    )
    md += "\n\nTarget 1 (>= 6x tiktoken and >= 1.5x the fastest other anchor), thread CPU time:\n\n"
    md += C.md_table(
        [
            "encoding",
            "corpus",
            "supertok / tiktoken",
            "supertok / fastest other anchor",
            "cold: / tiktoken",
            "cold: / fastest other",
        ],
        summary,
    )
    return md, per_byte


def whole_corpus(names: list[str], corpora: list[str], repeats: int) -> str:
    """Target 1 on the whole corpora, as a stream: each pass encodes every document once.

    The sample table above times repeated passes over the same 2 MB, which a per-thread
    piece cache can come to hold almost entirely; here no document repeats within a pass
    and supertok's piece cache is cleared before each pass, so it only holds what the
    stream itself taught it (what a user encoding a large corpus sees).
    """
    rows = []
    for name in names:
        ours = supertok.get_encoding(name)
        others, _ = anchors(name)
        # HF tokenizers runs at ~3 MB/s here (0.14-0.21x tiktoken in the sample table):
        # three passes over 73 MB would take minutes and it is never the fastest anchor.
        others.pop("HF tokenizers", None)
        for corpus in corpora:
            docs = corpus_docs(corpus)
            if docs is None:
                continue
            nbytes = sum(len(d.encode()) for d in docs)
            fns: dict[str, Callable[[], object]] = {
                "supertok": lambda docs=docs: (
                    supertok._core._clear_piece_cache(),
                    [ours.encode_ordinary(d) for d in docs],
                )
            }
            for k, f in others.items():
                fns[k] = lambda f=f, docs=docs: [f(d) for d in docs]
            t = C.interleaved_medians_cpu(fns, repeats=repeats, warmup=False)
            cpu = {k: mbps(nbytes, v[1]) for k, v in t.items()}
            rest = {k: v for k, v in cpu.items() if k != "supertok"}
            best = max(rest, key=lambda k: rest[k], default="-")
            tk = cpu.get("tiktoken", float("nan"))
            rows.append(
                [
                    name,
                    corpus,
                    f"{nbytes / 1e6:.1f} MB / {len(docs)} docs",
                    f"{cpu['supertok']:.1f}",
                    f"{tk:.1f}",
                    f"{cpu['supertok'] / tk:.2f}x",
                    f"{cpu['supertok'] / rest[best]:.2f}x ({best})" if rest else "-",
                ]
            )
            print(f"stream {name} {corpus}: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), file=sys.stderr)
    md = "### Single thread, whole corpora as a stream\n\n"
    md += (
        "Every document of the corpus encoded once per pass (no repeats within a pass; supertok's "
        f"piece cache cleared before each pass), {repeats} interleaved passes, medians of thread CPU "
        "time. HF tokenizers is left out (too slow for whole corpora; see the sample table). "
        "Exactness on the whole corpora is checked by the slow corpus tests "
        "(`pytest -m slow -k corpus`).\n\n"
    )
    md += C.md_table(
        ["encoding", "corpus", "size", "supertok MB/s", "tiktoken MB/s", "vs tiktoken", "vs fastest other anchor"],
        rows,
    )
    return md


def adversarial_inputs() -> list[tuple[str, str]]:
    rnd = random.Random(1234)
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    zwj = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
    return [
        ('"x" * 1,000,000', "x" * 1_000_000),
        ("100 K random lowercase letters", "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=100_000))),
        ("100 K spaces", " " * 100_000),
        ("1 M digits", "".join(rnd.choices("0123456789", k=1_000_000))),
        ("1 MB base64 blob", "".join(rnd.choices(b64, k=1_000_000))),
        ("100 KB CJK, no spaces", "".join(map(chr, rnd.choices(range(0x4E00, 0x9FA6), k=33_334)))),
        ("100 KB emoji ZWJ sequences", zwj * (100_000 // len(zwj.encode()))),
        # the row above repeats one family sequence (periodic: caches help); this one does not
        ("100 KB random emoji ZWJ sequences", _random_zwj(rnd, 100_000)),
    ]


def _random_zwj(rnd: random.Random, nbytes: int) -> str:
    """Random ZWJ sequences of 2-4 emoji (people, animals, objects, skin tones), no repeats."""
    people = [0x1F468, 0x1F469, 0x1F467, 0x1F466, 0x1F9D1, 0x1F475, 0x1F474]
    other = list(range(0x1F400, 0x1F43F)) + list(range(0x1F680, 0x1F6C5)) + [0x2764, 0x1F525, 0x1F4BB]
    tones = [0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF]
    out: list[str] = []
    size = 0
    while size < nbytes:
        parts = []
        for _ in range(rnd.randint(2, 4)):
            c = chr(rnd.choice(people if rnd.random() < 0.6 else other))
            if rnd.random() < 0.3:
                c += chr(rnd.choice(tones))
            parts.append(c)
        seq = "\u200d".join(parts)
        out.append(seq)
        size += len(seq.encode())
    return "".join(out)


_SUBPROCESS_WORST = r"""
import sys, time, json, statistics
sys.path.insert(0, {benches!r})
import bench_encode as B
name, which, case = sys.argv[1], sys.argv[2], int(sys.argv[3])
label, text = B.adversarial_inputs()[case]
enc, _ = B.anchors(name)
f = enc[which]
f(text[:1000])
ts = []
for _ in range({repeats}):
    t = time.perf_counter(); f(text); ts.append(time.perf_counter() - t)
print(json.dumps(statistics.median(ts)))
"""


def worst_cases(names: list[str], per_byte: dict, repeats: int, timeout: float) -> str:
    rows = []
    for name in names:
        ours = supertok.get_encoding(name)
        others, _ = anchors(name)
        en = per_byte.get((name, "en.txt"))
        for case, (label, text) in enumerate(adversarial_inputs()):
            nbytes = len(text.encode())
            fns: dict[str, Callable[[], object]] = {"supertok": lambda t=text: ours.encode_ordinary(t)}
            errors: dict[str, str] = {}
            for k in ("tiktoken", "rs-bpe", "bpe-openai"):
                if k in others:
                    f = others[k]
                    try:
                        f(text[:1000])
                        fns[k] = lambda f=f, t=text: f(t)
                    except Exception as e:  # noqa: BLE001
                        errors[k] = type(e).__name__
            ref = fns["tiktoken"]() if "tiktoken" in fns else None
            for k in list(fns):
                if k != "tiktoken" and ref is not None:
                    try:
                        if fns[k]() != ref:
                            errors[k] = "ids differ"
                            del fns[k]
                    except Exception as e:  # noqa: BLE001
                        errors[k] = f"{type(e).__name__}: {str(e)[:60]}"
                        del fns[k]
            t = C.interleaved_medians(fns, repeats=repeats)
            # HF and tokie in a subprocess with a time limit (tokie is quadratic on long pieces)
            for k in ("HF tokenizers", "tokie"):
                if k not in others:
                    continue
                code = _SUBPROCESS_WORST.format(benches=os.path.dirname(os.path.abspath(__file__)), repeats=max(1, repeats // 2))
                try:
                    out = subprocess.run(
                        [sys.executable, "-c", code, name, k, str(case)],
                        capture_output=True,
                        text=True,
                        timeout=timeout,
                    )
                    t[k] = float(out.stdout.strip().splitlines()[-1])
                except subprocess.TimeoutExpired:
                    errors[k] = f"> {timeout:.0f} s"
                except Exception as e:  # noqa: BLE001
                    errors[k] = f"failed: {type(e).__name__}"
            ns = t["supertok"] / nbytes * 1e9
            vs_en = (t["supertok"] / nbytes) / en if en else float("nan")
            tk = t.get("tiktoken")
            cells = [name, label, f"{mbps(nbytes, t['supertok']):.1f}", f"{ns:.1f}", f"{vs_en:.2f}x"]
            cells.append(f"{tk / t['supertok']:.1f}x" if tk else "-")
            others_txt = []
            for k in ("tiktoken", "rs-bpe", "bpe-openai", "HF tokenizers", "tokie"):
                if k in t:
                    others_txt.append(f"{k} {mbps(nbytes, t[k]):.2f}")
                elif k in errors:
                    others_txt.append(f"{k}: {errors[k]}")
            cells.append("; ".join(others_txt))
            rows.append(cells)
            print(f"{name} {label}: supertok {ns:.1f} ns/B, {cells[-1]}", file=sys.stderr)
    md = "### Worst cases (one call on one long input)\n\n"
    md += "Target 2: per-byte time <= 3x that of en.txt (same encoding, table above) and >= 10x faster than tiktoken.\n\n"
    md += C.md_table(
        ["encoding", "input", "supertok MB/s", "ns/byte", "per byte vs en.txt", "speed-up vs tiktoken", "anchors (MB/s)"],
        rows,
    )
    return md


def batch_scaling(mb: float, repeats: int) -> str:
    """Target 3: each batch call on 2 threads against the same call on 1 thread.

    The target is a ratio of a call to itself, so each call's pair is timed in its own
    rounds, back to back, alternating which of the two goes first (a call that follows
    another library's call starts with evicted caches; alternating spreads that evenly).
    """
    docs = corpus_docs("en.txt")
    if docs is None:
        return "### Batch scaling\n\nen.txt absent.\n"
    docs = sample(docs, mb)
    nbytes = sum(len(d.encode()) for d in docs)
    ours = supertok.get_encoding("o200k_base")
    calls: dict[str, Callable[[int], object]] = {
        "supertok encode_ordinary_batch": lambda n: ours.encode_ordinary_batch(docs, num_threads=n),
        "supertok encode_batch": lambda n: ours.encode_batch(docs, num_threads=n),
    }
    try:
        import numpy  # noqa: F401

        calls["supertok encode_batch_to_numpy"] = lambda n: ours.encode_batch_to_numpy(docs, num_threads=n)
    except ImportError:
        pass
    try:
        tk = load_tiktoken("o200k_base")
        calls["tiktoken encode_ordinary_batch"] = lambda n: tk.encode_ordinary_batch(docs, num_threads=n)
    except ImportError:
        pass
    rows = []
    for name, call in calls.items():
        call(1)
        call(2)
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(max(repeats, 2) * 2):
            for n in (1, 2) if r % 2 == 0 else (2, 1):
                t0 = time.perf_counter()
                call(n)
                times[n].append(time.perf_counter() - t0)
        one, two = statistics.median(times[1]), statistics.median(times[2])
        rows.append([f"{name}, 1 thread", f"{mbps(nbytes, one):.1f}", "1.00x"])
        rows.append([f"{name}, 2 threads", f"{mbps(nbytes, two):.1f}", f"{one / two:.2f}x"])
    # the GIL is released: a Python thread keeps running during a long batch
    ticks = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    t0 = time.perf_counter()
    ours.encode_ordinary_batch(docs * 3, num_threads=2)
    elapsed = time.perf_counter() - t0
    stop.set()
    th.join()
    md = f"### Batch scaling (o200k_base, en.txt sample {nbytes / 1e6:.2f} MB, {len(docs)} documents)\n\n"
    md += (
        "Target 3: 2 threads >= 1.8x one thread. The machine has 2 cores shared with other jobs. "
        f"Each call's 1- and 2-thread runs alternate back to back ({max(repeats, 2) * 2} rounds, "
        "first one alternating), medians of wall clock.\n\n"
    )
    md += C.md_table(["call", "MB/s", "2 threads / 1 thread"], rows)
    md += (
        f"\n\nGIL released while encoding: a pure-Python counting thread advanced {ticks[0]:,} times "
        f"during a {elapsed:.2f} s batch call.\n"
    )
    return md


_COLD = {
    "supertok": "import supertok, time\nt = time.perf_counter()\nsupertok.get_encoding('o200k_base')\nprint(time.perf_counter() - t)\n",
    "tiktoken": (
        "import tiktoken, time\nfrom tiktoken.load import load_tiktoken_bpe\nimport supertok\n"
        "pat = supertok.registry.O200K_PAT_STR\n"
        "t = time.perf_counter()\n"
        "r = load_tiktoken_bpe({path!r})\n"
        "tiktoken.Encoding('o200k_base', pat_str=pat, mergeable_ranks=r, special_tokens={{'<|endoftext|>': 199999, '<|endofprompt|>': 200018}})\n"
        "print(time.perf_counter() - t)\n"
    ),
}


def cold_start(repeats: int) -> str:
    path = tiktoken_ranks_file("o200k_base")
    times: dict[str, list[float]] = {k: [] for k in _COLD}
    for _ in range(repeats):
        for k, code in _COLD.items():
            out = subprocess.run([sys.executable, "-c", code.format(path=path)], capture_output=True, text=True)
            if out.returncode != 0:
                times[k].append(float("nan"))
                continue
            times[k].append(float(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(v) for k, v in times.items()}
    md = "### Cold start (o200k_base, fresh process, imports excluded)\n\n"
    md += "Target 4: `get_encoding(\"o200k_base\")` <= 1/2 of tiktoken's load from the same local file.\n\n"
    md += C.md_table(
        ["loader", "median ms", "vs tiktoken"],
        [
            ["supertok.get_encoding('o200k_base')", f"{med['supertok'] * 1e3:.1f}", f"{med['supertok'] / med['tiktoken']:.2f}x"],
            ["tiktoken load_tiktoken_bpe + Encoding", f"{med['tiktoken'] * 1e3:.1f}", "1.00x"],
        ],
    )
    return md


def long_document(repeats: int) -> str:
    text = C.read_corpus("en.txt")
    if text is None:
        return "### One long document\n\nen.txt absent.\n"
    text = text[:4_000_000]
    nbytes = len(text.encode())
    ours = supertok.get_encoding("o200k_base")
    ref = ours.encode_ordinary(text)
    same = ours.encode_ordinary_parallel(text, num_threads=2) == ref
    fns: dict[str, Callable[[], object]] = {
        "supertok encode_ordinary": lambda: ours.encode_ordinary(text),
        "supertok encode_ordinary_parallel, 2 threads": lambda: ours.encode_ordinary_parallel(text, num_threads=2),
    }
    try:
        tk = load_tiktoken("o200k_base")
        fns["tiktoken encode_ordinary"] = lambda: tk.encode_ordinary(text)
    except ImportError:
        pass
    t = C.interleaved_medians(fns, repeats=repeats)
    base = t["supertok encode_ordinary"]
    rows = [[k, f"{mbps(nbytes, v):.1f}", f"{base / v:.2f}x"] for k, v in t.items()]
    md = f"### One long document (o200k_base, first {nbytes / 1e6:.1f} MB of en.txt as one string)\n\n"
    md += f"Target 5: parallel encoding of one document on request; ids identical to the sequential call: {'yes' if same else '**no**'}.\n\n"
    md += C.md_table(["call", "MB/s", "vs sequential supertok"], rows)
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=2.0, help="sample size per corpus in MB (default 2)")
    ap.add_argument("--batch-mb", type=float, default=8.0, help="batch-scaling sample in MB (default 8)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median; default 5)")
    ap.add_argument("--encodings", nargs="+", default=ENCODINGS)
    ap.add_argument("--timeout", type=float, default=60.0, help="time limit of one anchor call on a worst-case input")
    ap.add_argument("--quick", action="store_true", help="0.3 MB samples, print only")
    ap.add_argument("--no-write", action="store_true", help="print the tables instead of writing BENCHMARKS.md")
    ap.add_argument("--only", nargs="+", default=["single", "stream", "worst", "batch", "cold", "long"])
    args = ap.parse_args()
    mb = 0.3 if args.quick else args.mb
    write = not (args.quick or args.no_write)
    started = time.strftime("%Y-%m-%d %H:%M")
    header = (
        f"Command: `python benches/bench_encode.py` (git {C.git_rev()}, {started}).\n\n"
        f"Machine: {C.machine_info()}.\n\n"
        f"Versions: supertok {supertok._core.__version__}, {C.versions(ANCHOR_PACKAGES)}.\n\n"
        f"Medians of {args.repeats} interleaved rounds (single thread: thread CPU time and wall clock; "
        "the other tables: wall clock); ratios from the same run. "
        f"Corpora from `{os.path.relpath(C.CORPUS_DIR, C.ROOT)}`, cut into documents of at most 8 KB at line "
        f"boundaries, {mb:g} MB of evenly spaced documents per corpus.\n"
    )
    parts = [header]
    per_byte: dict = {}
    if "single" in args.only:
        md, per_byte = single_thread(args.encodings, ["en.txt", "code.txt", "multilingual"], mb, args.repeats)
        parts.append(md)
    if "stream" in args.only and not args.quick:
        parts.append(whole_corpus(args.encodings, ["en.txt", "code.txt", "multilingual"], 3))
    if "worst" in args.only:
        if not per_byte:
            _, per_byte = single_thread(args.encodings, ["en.txt"], mb, args.repeats)
        parts.append(worst_cases(args.encodings, per_byte, args.repeats, args.timeout))
    if "batch" in args.only:
        parts.append(batch_scaling(mb if args.quick else args.batch_mb, args.repeats))
    if "cold" in args.only:
        parts.append(cold_start(max(5, args.repeats)))
    if "long" in args.only:
        parts.append(long_document(args.repeats))
    md = "## Encoding speed (issue 3)\n\n" + "\n\n".join(parts)
    if write:
        C.write_section("encode", md)
        print(f"wrote section 'encode' of {C.BENCHMARKS_MD}", file=sys.stderr)
    else:
        print(md)


if __name__ == "__main__":
    main()
