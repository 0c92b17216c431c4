"""Brute-force references for the mixture-inference tests: pretoken counting, greedy BPE
training and merge replay that recount every pair at every step (small data only)."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from supertok.mixture import PairTrace


def key(a: int, b: int) -> int:
    return (a << 32) | b


def count_words(texts: list[str], splitter) -> Counter[bytes]:
    c: Counter[bytes] = Counter()
    for t in texts:
        for piece in splitter(t):
            c[piece.encode("utf-8")] += 1
    return c


def _pairs(segs: list[tuple[list[int], int]]) -> Counter[int]:
    pc: Counter[int] = Counter()
    for s, c in segs:
        for a, b in zip(s, s[1:]):
            pc[key(a, b)] += c
    return pc


def _apply(segs: list[tuple[list[int], int]], a: int, b: int, new: int) -> None:
    for k, (s, c) in enumerate(segs):
        out, i = [], 0
        while i < len(s):
            if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                out.append(new)
                i += 2
            else:
                out.append(s[i])
                i += 1
        segs[k] = (out, c)


def train(words: Counter[bytes], n_merges: int) -> list[tuple[bytes, bytes]]:
    """Greedy BPE: highest count, ties to the smallest (left id, right id)."""
    segs = [(list(w), c) for w, c in sorted(words.items())]
    vocab = [bytes([i]) for i in range(256)]
    ids = {b: i for i, b in enumerate(vocab)}
    merges = []
    for _ in range(n_merges):
        pc = _pairs(segs)
        if not pc:
            break
        best = max(pc.items(), key=lambda kv: (kv[1], -kv[0]))[0]
        a, b = best >> 32, best & 0xFFFFFFFF
        nb = vocab[a] + vocab[b]
        if nb in ids:
            new = ids[nb]
        else:
            new = len(vocab)
            vocab.append(nb)
            ids[nb] = new
        merges.append((vocab[a], vocab[b]))
        _apply(segs, a, b, new)
    return merges


def replay_trace(name: str, words: Counter[bytes], merges: list[tuple[bytes, bytes]], n_bytes: int) -> PairTrace:
    """Replay ``merges`` (keeping merges that do not occur), recording full counts."""
    segs = [(list(w), c) for w, c in sorted(words.items())]
    vocab = [bytes([i]) for i in range(256)]
    ids = {b: i for i, b in enumerate(vocab)}
    before = []
    mk = []
    for lb, rb in merges:
        a, b = ids[lb], ids[rb]
        before.append(_pairs(segs))
        mk.append(key(a, b))
        nb = lb + rb
        if nb in ids:
            new = ids[nb]
        else:
            new = len(vocab)
            vocab.append(nb)
            ids[nb] = new
        _apply(segs, a, b, new)
    after_all = _pairs(segs)
    states = before + [after_all]
    init = states[0]
    ik = np.array(sorted(init), dtype=np.uint64)
    ic = np.array([init[int(k)] for k in ik], dtype=np.uint64)
    ptr = [0]
    ck: list[int] = []
    cc: list[int] = []
    for t in range(len(merges)):
        s0, s1 = states[t], states[t + 1]
        for k in sorted(set(s0) | set(s1)):
            if s0.get(k, 0) != s1.get(k, 0):
                ck.append(k)
                cc.append(s1.get(k, 0))
        ptr.append(len(ck))
    return PairTrace(
        name=name,
        merge_keys=np.array(mk, dtype=np.uint64),
        init_keys=ik,
        init_counts=ic,
        step_ptr=np.array(ptr, dtype=np.int64),
        change_keys=np.array(ck, dtype=np.uint64),
        change_counts=np.array(cc, dtype=np.uint64),
        n_bytes=n_bytes,
        n_pairs=int(sum(init.values())),
    )


def synthetic_language(seed: int, n_words: int, alphabet: str, vocab: int = 300) -> list[str]:
    """Text lines from a Zipfian vocabulary of random words over ``alphabet``."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 8))) for _ in range(vocab)]
    weights = [1.0 / (r + 1) for r in range(vocab)]
    out = []
    line: list[str] = []
    for w in rng.choices(words, weights, k=n_words):
        line.append(w)
        if len(line) >= 12:
            out.append(" ".join(line))
            line = []
    if line:
        out.append(" ".join(line))
    return out


def mixture(corpora: dict[str, list[str]], weights: dict[str, float], total_bytes: int, seed: int = 0) -> list[str]:
    """Lines drawn from each corpus until it holds ``weights[c] * total_bytes`` bytes."""
    out = []
    for name, lines in corpora.items():
        budget = weights[name] * total_bytes
        n = 0
        for ln in lines:
            if n >= budget:
                break
            out.append(ln)
            n += len(ln.encode()) + 1
        if n < budget:
            raise ValueError(f"corpus {name} is too small for its share")
    random.Random(seed).shuffle(out)
    return out
