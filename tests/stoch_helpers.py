"""Reference implementations and statistics for the stochastic-tokenization tests.

Everything here is deliberately straightforward (lists, dicts, the `random` module) so that
it can serve as the reference the Rust implementations are checked against.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

Splits = Dict[int, List[Tuple[int, int]]]

# ----------------------------------------------------------------------------- StochasTok


def ref_split_table(ranks: Dict[bytes, int], special_ids: Iterable[int] = ()) -> Splits:
    """For every token, every cut whose two halves are both tokens (cut order)."""
    specials = set(special_ids)
    table: Splits = {}
    for tok, i in ranks.items():
        if i in specials:
            continue
        found = []
        for j in range(1, len(tok)):
            a, b = ranks.get(tok[:j]), ranks.get(tok[j:])
            if a is not None and b is not None and a not in specials and b not in specials:
                found.append((a, b))
        if found:
            table[i] = found
    return table


def ref_stochastok(
    ids: Sequence[int], table: Splits, p: float, rng: random.Random, max_expansions: Optional[int] = None
) -> List[int]:
    """The reference procedure (anyasims/stochastok ``expand``), with a working table."""
    ids = list(ids)
    n_attempts = int(len(ids) * p)
    done = 0
    for _ in range(n_attempts):
        if max_expansions is not None and done >= max_expansions:
            break
        i = rng.randrange(len(ids))
        options = table.get(ids[i])
        if options:
            ids[i : i + 1] = list(rng.choice(options))
            done += 1
    return ids


def exact_stochastok_distribution(
    ids: Sequence[int], table: Splits, p: float, max_expansions: Optional[int] = None
) -> Dict[Tuple[int, ...], float]:
    """Exact output distribution of the reference procedure, by enumeration (tiny inputs)."""
    dist: Dict[Tuple[Tuple[int, ...], int], float] = {(tuple(ids), 0): 1.0}
    for _ in range(int(len(ids) * p)):
        new: Dict[Tuple[Tuple[int, ...], int], float] = defaultdict(float)
        for (seq, done), pr in dist.items():
            if max_expansions is not None and done >= max_expansions:
                new[(seq, done)] += pr
                continue
            for i, t in enumerate(seq):
                options = table.get(t)
                if not options:
                    new[(seq, done)] += pr / len(seq)
                    continue
                for l, r in options:
                    new[(seq[:i] + (l, r) + seq[i + 1 :], done + 1)] += pr / len(seq) / len(options)
        dist = new
    out: Dict[Tuple[int, ...], float] = defaultdict(float)
    for (seq, _), pr in dist.items():
        out[seq] += pr
    return dict(out)


# ----------------------------------------------------------------------------- BPE-dropout


def lazy_dropout_parts(parts: list, rank_of: Callable, drop: Callable[[], bool]) -> Tuple[list, bool]:
    """BPE-dropout of Provilkov et al. as implemented by its authors (subword-nmt
    ``apply_bpe.py``): at every step each applicable merge is dropped with probability p, the
    best surviving pair (rank, then position) is merged at all its surviving positions (left
    to right, no overlaps); stop when all are dropped. Draws are made lazily in the
    documented order (candidates in priority order until the first survivor, then the other
    occurrences of its pair to the right), which gives the same distribution.
    ``rank_of(a, b)`` is the rank of merging parts a and b, or None. Returns the parts and
    whether anything was dropped."""
    parts = list(parts)
    dropped = False
    while True:
        cands = sorted((r, i) for i in range(len(parts) - 1) if (r := rank_of(parts[i], parts[i + 1])) is not None)
        k = None
        for idx, _ in enumerate(cands):
            if drop():
                dropped = True
                continue
            k = idx
            break
        if k is None:
            return parts, dropped
        r, i = cands[k]
        pair = (parts[i], parts[i + 1])
        merge = [i]
        for r2, j in cands[k + 1 :]:
            if r2 != r:
                break
            if (parts[j], parts[j + 1]) != pair or j == merge[-1] + 1:
                continue
            if drop():
                dropped = True
            else:
                merge.append(j)
        for j in reversed(merge):
            parts[j : j + 2] = [parts[j] + parts[j + 1]]


def subword_nmt_dropout_parts(parts: list, rank_of: Callable, p: float, rng: random.Random) -> list:
    """A literal transcription of subword-nmt's ``encode(..., dropout=p)`` loop (every pair
    position drawn at every step), for distribution tests."""
    word = list(parts)
    while len(word) > 1:
        pairs = [
            (r, i, pair)
            for i, pair in enumerate(zip(word, word[1:]))
            if rng.random() > p and (r := rank_of(*pair)) is not None
        ]
        if not pairs:
            break
        bigram = min(pairs)[2]
        positions = [i for (_, i, pair) in pairs if pair == bigram]
        i = 0
        new_word = []
        for j in positions:
            if j < i:
                continue
            new_word.extend(word[i:j])
            new_word.append(bigram[0] + bigram[1])
            i = j + 2
        new_word.extend(word[i:])
        word = new_word
    return word


def ref_dropout_piece(ranks: Dict[bytes, int], piece: bytes, drop: Callable[[], bool]) -> List[int]:
    """BPE-dropout of one piece with tiktoken merge rules (two parts merge iff their
    concatenation is a token, at that token's rank); a piece in which nothing was dropped
    gets the plain encoding (a piece that is a token is emitted whole)."""
    parts, dropped = lazy_dropout_parts([bytes([b]) for b in piece], lambda a, b: ranks.get(a + b), drop)
    if not dropped and piece in ranks:
        return [ranks[piece]]
    return [ranks[x] for x in parts]


# ----------------------------------------------------------------------------- generator

_M64 = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _M64


class Xoshiro:
    """Python mirror of the documented generator (xoshiro256++ seeded by SplitMix64 with a
    seed and a stream), used to check the reproducibility contract draw for draw."""

    def __init__(self, seed: int, stream: int = 0):
        a, b = seed, stream ^ 0xD1B54A32D192ED03

        def sm(x: int) -> Tuple[int, int]:
            x = (x + 0x9E3779B97F4A7C15) & _M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            return x, z ^ (z >> 31)

        s = []
        for _ in range(4):
            a, za = sm(a)
            b, zb = sm(b)
            s.append(za ^ zb)
        if s == [0, 0, 0, 0]:
            s[0] = 1
        self.s = s

    def next_u64(self) -> int:
        s = self.s
        result = (_rotl((s[0] + s[3]) & _M64, 23) + s[0]) & _M64
        t = (s[1] << 17) & _M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def next_f64(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def bernoulli(self, p: float) -> bool:
        return self.next_f64() < p


# ----------------------------------------------------------------------------- statistics


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2)."""
    if x <= 0:
        return 1.0
    a, y = df / 2.0, x / 2.0
    log_prefix = -y + a * math.log(y) - math.lgamma(a)
    if y < a + 1:  # series for the lower function P
        term = 1.0 / a
        total = term
        n = 0
        while abs(term) > abs(total) * 1e-16:
            n += 1
            term *= y / (a + n)
            total += term
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # continued fraction for Q (modified Lentz)
    tiny = 1e-300
    b = y + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_prefix) * h


def chi2_goodness_of_fit(observed: Counter, expected_probs: Dict[Hashable, float], min_expected: float = 5.0) -> float:
    """p-value of observed counts against expected probabilities (rare cells pooled)."""
    n = sum(observed.values())
    assert set(observed) <= set(expected_probs), set(observed) - set(expected_probs)
    stat = 0.0
    cells = 0
    pool_o, pool_e = 0.0, 0.0
    for key, pr in expected_probs.items():
        e = pr * n
        o = observed.get(key, 0)
        if e < min_expected:
            pool_o += o
            pool_e += e
            continue
        stat += (o - e) ** 2 / e
        cells += 1
    if pool_e > 0:
        stat += (pool_o - pool_e) ** 2 / pool_e
        cells += 1
    return chi2_sf(stat, max(cells - 1, 1))


def chi2_two_sample(a: Counter, b: Counter, min_count: int = 10) -> float:
    """p-value of the two-sample chi-square test that ``a`` and ``b`` (category counts) come
    from the same distribution (categories with fewer than ``min_count`` pooled)."""
    na, nb = sum(a.values()), sum(b.values())
    ka, kb = math.sqrt(nb / na), math.sqrt(na / nb)
    stat = 0.0
    cells = 0
    rest_a = rest_b = 0
    for key in set(a) | set(b):
        x, y = a.get(key, 0), b.get(key, 0)
        if x + y < min_count:
            rest_a += x
            rest_b += y
            continue
        stat += (ka * x - kb * y) ** 2 / (x + y)
        cells += 1
    if rest_a + rest_b > 0:
        stat += (ka * rest_a - kb * rest_b) ** 2 / (rest_a + rest_b)
        cells += 1
    return chi2_sf(stat, max(cells - 1, 1))


# ----------------------------------------------------------------------------- vocabularies


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's byte -> printable character map (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def merges_from_ranks(ranks: Dict[bytes, int]) -> List[Tuple[bytes, bytes]]:
    """The merge list equivalent to tiktoken byte ranks: for each multi-byte token, in rank
    order, the two parts that BPE with all lower ranks leaves."""
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = [bytes([b]) for b in tok]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


def hf_byte_level_bpe_json(
    ranks: Dict[bytes, int], special_tokens: Dict[str, int], dropout: Optional[float] = None
) -> str:
    """A Hugging Face tokenizer.json (byte-level BPE, GPT-2 style) for tiktoken ranks."""
    import json

    b2u = bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    vocab = {enc(t): i for t, i in ranks.items()}
    for s, i in special_tokens.items():
        vocab[s] = i
    merges = [[enc(a), enc(b)] for a, b in merges_from_ranks(ranks)]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for s, i in special_tokens.items()
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": dropout,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }
    return json.dumps(spec)
