"""Science: bytes/token of SuperBPE vs BPE on held-out text (issue 6).

    python benches/superbpe_science.py            # writes "superbpe-science" in BENCHMARKS.md
                                                  # and docs/superbpe_science.png
    python benches/superbpe_science.py --quick    # tiny grid, nothing written

Protocol: train on the first 90 % of a corpus file (cut at a line boundary), evaluate
bytes/token (UTF-8 bytes / tokens) on the last 10 %, encoded as one string per ~8 KB
document (the trained tokenizer's own pre-tokenizer: stage-2 for SuperBPE).

* BPE = ``train_superbpe(transition=1.0)``: plain BPE with the paper's stage-1
  pre-tokenizer (the paper's BPE baseline); also the o200k-pattern ``supertok.train`` BPE
  for reference on the vocabulary grid.
* SuperBPE = ``train_superbpe(transition=t)``, paper presets, default filters
  (no ``": "``, <= 4 words), training chunks = lines.
* ``recommended``: the same with the reference's newer presets (en.txt only).
* ``en.txt:man``: only en.txt's man-page part (the Rust books are cut off), split 90/10
  again, i.e. evaluated on unseen man pages.
* ``t = 0`` = no stage 1 (whitespace-free BPE from bytes, filters still on) — our own t = 0
  baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import CORPUS_DIR, ROOT, chunk_documents, git_rev, machine_info, md_table, write_section  # noqa: E402

THREADS = 2
PNG = os.path.join(ROOT, "docs", "superbpe_science.png")


#: en.txt = Debian man pages, then the Rust books from this line on (corpus README).
RUST_BOOKS_START = b"\nThe Rust Programming Language\n"


def split_file(name: str, max_train: int | None) -> tuple[str, str, int]:
    """(train part, held-out part, full train size) — the first 90 % / last 10 %, cut at a
    line boundary; the train part optionally truncated to its first ``max_train`` bytes.
    ``name`` may end in ``:man`` (en.txt's man-page part only)."""
    man = name.endswith(":man")
    name = name.removesuffix(":man")
    with open(os.path.join(CORPUS_DIR, name), "rb") as f:
        b = f.read()
    if man:
        end = b.find(RUST_BOOKS_START)
        if end < 0:
            raise SystemExit("en.txt: Rust books start not found")
        b = b[: end + 1]
    cut = int(len(b) * 0.9)
    nl = b.rfind(b"\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    train = b[:cut]
    full = len(train)
    if max_train is not None and len(train) > max_train:
        nl = train.rfind(b"\n", 0, max_train)
        train = train[: nl + 1 if nl > 0 else max_train]
    return train.decode("utf-8"), b[cut:].decode("utf-8"), full


class Run:
    def __init__(self, train_path: str, held: str) -> None:
        self.path = train_path
        self.docs = chunk_documents(held, 8192)
        self.nbytes = sum(len(d.encode("utf-8")) for d in self.docs)
        self.cache: dict[tuple, float] = {}
        self.secs: dict[tuple, float] = {}

    def bpt(self, kind: str, vocab: int, t: float | None = None) -> float:
        import supertok

        key = (kind, vocab, t)
        if key in self.cache:
            return self.cache[key]
        t0 = time.perf_counter()
        if kind == "o200k":
            tok = supertok.train(self.path, vocab, threads=THREADS, show_progress=False)
        else:
            tok = supertok.train_superbpe(self.path, vocab, t, pattern=kind, threads=THREADS, show_progress=False)
        self.secs[key] = time.perf_counter() - t0
        n = sum(len(x) for x in tok.encode_batch(self.docs, num_threads=THREADS))
        self.cache[key] = self.nbytes / n
        print(f"    {kind:8s} vocab {vocab:6d} t={t}: {self.cache[key]:.3f} B/tok ({self.secs[key]:.1f} s)", flush=True)
        return self.cache[key]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-train-mb", type=float, default=None, help="train on the first N MB of the 90 %% part")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(CORPUS_DIR, "en.txt")):
        raise SystemExit(f"corpus not found in {CORPUS_DIR}")
    vocabs = [4096, 8192, 16384, 32768, 65536]
    sweep = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    files = [("en.txt", vocabs, sweep), ("en.txt:man", [8192, 16384, 32768], [0.0, 0.4, 0.8, 1.0]),
             ("code.txt", [8192, 16384, 32768], sweep),
             ("multilingual/de.txt", [4096, 8192, 16384], [0.0, 0.4, 0.8, 1.0])]
    if a.quick:
        vocabs, sweep = [2048, 4096], [0.0, 0.8, 1.0]
        files = [("en.txt", vocabs, sweep)]
    max_train = None if a.max_train_mb is None else int(a.max_train_mb * 1e6)
    t_start = time.perf_counter()
    grids: dict[str, dict] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="superbpe-science-") as tmp:
        for name, vgrid, sgrid in files:
            train, held, full = split_file(name, max_train)
            p = os.path.join(tmp, name.replace("/", "_").replace(":", "_"))
            with open(p, "w", encoding="utf-8") as f:
                f.write(train)
            mb = len(train.encode("utf-8")) / 1e6
            label = "`en.txt` man-page part (before the Rust books)" if name.endswith(":man") else f"`{name}`"
            notes.append(f"{label}: trained on {mb:.1f} MB (of {full / 1e6:.1f} MB = first 90 %), "
                         f"evaluated on the last 10 % ({len(held.encode('utf-8')) / 1e6:.1f} MB)")
            print(f"{name}: train {mb:.1f} MB", flush=True)
            r = Run(p, held)
            sweep_v = 16384 if 16384 in vgrid else vgrid[len(vgrid) // 2]
            rows_v = []
            for v in vgrid:
                bpe = r.bpt("paper", v, 1.0)
                sup = r.bpt("paper", v, 0.8)
                o2 = rec = None
                if name == "en.txt":
                    o2 = r.bpt("o200k", v)
                    rec = r.bpt("recommended", v, 0.8)
                rows_v.append((v, bpe, sup, o2, rec))
            rows_s = [(t, r.bpt("paper", sweep_v, t)) for t in sgrid]
            name = name.replace(":man", " (man pages only)")
            grids[name] = {"vocab": rows_v, "sweep": rows_s, "sweep_v": sweep_v, "secs": dict(r.secs)}
    total = time.perf_counter() - t_start

    md = [f"SuperBPE vs BPE compression on held-out text. {machine_info()}; rev {git_rev()}; total run {total / 60:.1f} min.\n",
          "Protocol: train on the first 90 % of the file, evaluate UTF-8 bytes per token on the last 10 % "
          "(~8 KB documents). BPE = `train_superbpe(transition=1.0)` (paper stage-1 pre-tokenizer); "
          "SuperBPE = paper presets, default filters (no `\": \"`, ≤ 4 words), lines as training chunks, "
          "t = transition as a fraction of the vocabulary; t = 0 = no stage 1 (our own no-pretokenization "
          "baseline, filters on). Data: " + "; ".join(notes) + ".\n"]
    for name, g in grids.items():
        rows = []
        for v, bpe, sup, o2, rec in g["vocab"]:
            row = [f"{v:,}", f"{bpe:.3f}", f"{sup:.3f}", f"**{(1 - bpe / sup) * 100:.1f} %**"]
            if o2 is not None and rec is not None:
                row += [f"{o2:.3f}", f"{(1 - o2 / sup) * 100:.1f} %", f"{rec:.3f}", f"{(1 - o2 / rec) * 100:.1f} %"]
            rows.append(row)
        hdr = ["vocab", "BPE B/tok", "SuperBPE t=0.8 B/tok", "fewer tokens"]
        if g["vocab"][0][3] is not None:
            hdr += ["BPE o200k pattern (`supertok.train`) B/tok", "SuperBPE (paper) fewer tokens than o200k-BPE",
                    "SuperBPE `recommended` t=0.8 B/tok", "`recommended` fewer tokens than o200k-BPE"]
        md.append(f"\n**{name}: bytes/token vs vocabulary**\n\n" + md_table(hdr, rows))
        bpe_sv = dict((t, b) for t, b in g["sweep"]).get(1.0)
        srows = []
        for t, b in g["sweep"]:
            red = "" if bpe_sv is None else f"{(1 - bpe_sv / b) * 100:.1f} %"
            srows.append([f"{t:.1f}" + (" (BPE)" if t == 1.0 else " (no stage 1)" if t == 0 else ""), f"{b:.3f}", red])
        md.append(f"\n**{name}: transition sweep at vocab {g['sweep_v']:,}**\n\n"
                  + md_table(["t", "B/tok", "fewer tokens than BPE"], srows))
    md.append(f"\n![bytes/token](docs/{os.path.basename(PNG)})\n")
    text = "\n".join(md)
    print(text)
    if a.quick:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, g in grids.items():
        vs = [x[0] for x in g["vocab"]]
        (l,) = axes[0].plot(vs, [x[1] for x in g["vocab"]], "o--", label=f"{name} BPE")
        axes[0].plot(vs, [x[2] for x in g["vocab"]], "s-", color=l.get_color(), label=f"{name} SuperBPE t=0.8")
        axes[1].plot([t for t, _ in g["sweep"]], [b for _, b in g["sweep"]], "o-",
                     label=f"{name} (vocab {g['sweep_v']:,})")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("vocabulary size")
    axes[0].set_ylabel("held-out bytes / token")
    axes[0].legend(fontsize=7)
    axes[0].set_title("BPE vs SuperBPE")
    axes[1].set_xlabel("transition t (fraction of vocab; 1.0 = BPE)")
    axes[1].set_ylabel("held-out bytes / token")
    axes[1].legend(fontsize=7)
    axes[1].set_title("transition sweep")
    fig.tight_layout()
    fig.savefig(PNG, dpi=110)
    write_section("superbpe-science", text)


if __name__ == "__main__":
    main()
