"""Ground truth for byte-level probabilities: a finite-support byte source and the exact
canonical token LM it induces under a tokenizer.

The source is an order-1 Markov chain over a small alphabet of characters with a stop
probability after every character and a forced stop at ``max_len`` characters, so it
assigns a probability to finitely many strings. Encoding every string with the tokenizer's
canonical encoding gives a distribution over canonical token strings; its next-token
conditionals are the "exact canonical token LM". A byte-level marginaliser fed with it
must reproduce the source's byte-level prefix probabilities exactly.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np


class MarkovSource:
    """Order-1 Markov chain over characters with a stop probability."""

    def __init__(self, alphabet: Sequence[str], seed: int, max_len: int, stop: float = 0.2, sparsity: float = 0.4):
        rng = np.random.default_rng(seed)
        k = len(alphabet)
        self.alphabet = list(alphabet)
        self.max_len = max_len
        self.stop = stop
        start = rng.random(k) + 0.05
        self.start = start / start.sum()
        trans = rng.random((k, k)) + 0.02
        trans[rng.random((k, k)) < sparsity] = 0.0
        for i in range(k):
            if trans[i].sum() == 0:
                trans[i, rng.integers(k)] = 1.0
        self.trans = trans / trans.sum(axis=1, keepdims=True)

    def strings(self) -> dict[str, float]:
        """Every string with positive probability (the empty string included)."""
        out: dict[str, float] = {"": self.stop}
        frontier = [("", -1, 1.0 - self.stop)]
        for length in range(1, self.max_len + 1):
            nxt = []
            for s, last, p in frontier:
                probs = self.start if last < 0 else self.trans[last]
                for i, q in enumerate(probs):
                    if q == 0.0:
                        continue
                    s2 = s + self.alphabet[i]
                    mass = p * q
                    stop = 1.0 if length == self.max_len else self.stop
                    out[s2] = out.get(s2, 0.0) + mass * stop
                    if stop < 1.0:
                        nxt.append((s2, i, mass * (1.0 - stop)))
            frontier = nxt
        return out


class CanonicalTokenLM:
    """The exact next-token distribution of the source's canonical encodings.

    ``logprobs`` follows the :class:`supertok.ByteLM` model protocol. Prefixes that are not
    a prefix of any canonical encoding get a uniform row (their own probability is zero, so
    the row never matters)."""

    def __init__(self, strings: dict[str, float], encode: Callable[[str], list[int]], n_vocab: int, eot: int):
        self.n_vocab = n_vocab
        self.eot = eot
        self.prefix: dict[tuple, float] = defaultdict(float)
        self.next: dict[tuple, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.encodings: dict[str, tuple] = {}
        for s, p in strings.items():
            toks = tuple(encode(s))
            self.encodings[s] = toks
            for i in range(len(toks) + 1):
                self.prefix[toks[:i]] += p
                nxt = toks[i] if i < len(toks) else eot
                self.next[toks[:i]][nxt] += p
        self.calls = 0

    def logprobs(self, prefixes):
        out = np.full((len(prefixes), self.n_vocab), -np.inf)
        for r, pre in enumerate(prefixes):
            self.calls += 1
            key = tuple(int(t) for t in pre)
            tot = self.prefix.get(key, 0.0)
            if tot <= 0.0:
                out[r] = -math.log(self.n_vocab)
                continue
            for t, m in self.next[key].items():
                out[r, t] = math.log(m / tot)
        return out


class ByteTruth:
    """Exact byte-level prefix probabilities of a string distribution."""

    def __init__(self, strings: dict[str, float]):
        self.prefix: dict[bytes, float] = defaultdict(float)
        self.end: dict[bytes, float] = defaultdict(float)
        for s, p in strings.items():
            b = s.encode("utf-8")
            for i in range(len(b) + 1):
                self.prefix[b[:i]] += p
            self.end[b] += p

    def next_byte(self, x: bytes) -> np.ndarray:
        """The true 257-way next-byte probabilities after ``x``."""
        tot = self.prefix[x]
        out = np.zeros(257)
        for b in range(256):
            out[b] = self.prefix.get(x + bytes([b]), 0.0) / tot
        out[256] = self.end.get(x, 0.0) / tot
        return out

    def prefixes(self, max_bytes: int) -> list[bytes]:
        return sorted(x for x, p in self.prefix.items() if p > 0 and len(x) <= max_bytes)


_FIRST: dict[int, tuple] = {}


def _token_table(n_vocab: int, token_bytes: Callable[[int], bytes]):
    key = (n_vocab, id(token_bytes))
    hit = _FIRST.get(key)
    if hit is None:
        toks = [token_bytes(t) for t in range(n_vocab)]
        hit = (toks,)
        _FIRST[key] = hit
    return hit[0]


def naive_next_byte(lm: CanonicalTokenLM, encode: Callable[[str], list[int]], token_bytes: Callable[[int], bytes], x: bytes) -> np.ndarray | None:
    """Naive prompting: tokenize the prefix, group the next token by its first byte."""
    try:
        s = x.decode("utf-8")
    except UnicodeDecodeError:
        return None
    toks = _token_table(lm.n_vocab, token_bytes)
    key = tuple(encode(s))
    tot = lm.prefix.get(key, 0.0)
    if tot <= 0:
        return None
    out = np.zeros(257)
    for t, m in lm.next[key].items():
        if t == lm.eot:
            out[256] += m
        elif toks[t]:
            out[toks[t][0]] += m
    z = out.sum()
    return out / z if z > 0 else None


def healed_next_byte(lm: CanonicalTokenLM, encode: Callable[[str], list[int]], token_bytes: Callable[[int], bytes], x: bytes) -> np.ndarray | None:
    """One-token token healing: drop the last token, constrain the next token to start with
    its bytes, group by the byte after them."""
    try:
        s = x.decode("utf-8")
    except UnicodeDecodeError:
        return None
    ids = encode(s)
    if not ids:
        return naive_next_byte(lm, encode, token_bytes, x)
    toks = _token_table(lm.n_vocab, token_bytes)
    last = toks[ids[-1]]
    key = tuple(ids[:-1])
    out = np.zeros(257)
    for t, m in lm.next.get(key, {}).items():
        if t == lm.eot:
            continue
        b = toks[t]
        if b and b.startswith(last) and len(b) > len(last):
            out[b[len(last)]] += m
    z = out.sum()
    return out / z if z > 0 else None


def all_strings(alphabet: Sequence[str], max_len: int) -> list[str]:
    return ["".join(p) for n in range(max_len + 1) for p in itertools.product(alphabet, repeat=n)]
