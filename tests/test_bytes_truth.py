"""Ground-truth tests for exact byte-level probabilities (issue 7).

A finite-support Markov source over characters chosen to exercise pre-tokenizer look-ahead
(spaces before words, runs of spaces and newlines, digits, apostrophes, multi-byte
characters) induces an exact canonical token LM for each tokenizer. The byte-level
marginal must equal the source's true byte probabilities to 1e-10 for every prefix, while
naive prompting and one-token healing must not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import supertok
from supertok import _core
from supertok.bytelm import ByteLM

from bytes_truth import ByteTruth, CanonicalTokenLM, MarkovSource, healed_next_byte, naive_next_byte
from bytes_hf import hf_superbpe, hf_bytelevel, to_byte_tokenizer

TOL = 1e-10


def _walk(blm: ByteLM, truth: ByteTruth, max_bytes: int, deep: list[bytes]):
    """Every prefix of at most ``max_bytes`` bytes (DFS over the source's byte trie) and
    every prefix of the ``deep`` strings; streams are copied, not recomputed."""
    root = blm.stream(b"")
    stack = [(b"", root)]
    seen = set()
    while stack:
        x, s = stack.pop()
        seen.add(x)
        true = truth.next_byte(x)
        yield x, np.exp(s.logprobs()), true, s
        if len(x) >= max_bytes:
            continue
        for b in range(256):
            if true[b] > 0:
                c = s.copy()
                c.push(b)
                stack.append((x + bytes([b]), c))
    for d in deep:
        s = blm.stream(b"")
        for i in range(len(d) + 1):
            if d[:i] not in seen:
                seen.add(d[:i])
                yield d[:i], np.exp(s.logprobs()), truth.next_byte(d[:i]), s
            if i < len(d):
                s.push(d[i])


def _deep(strings: dict[str, float], n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    keys = sorted(strings)
    p = np.asarray([strings[k] for k in keys])
    long = [k for k in keys if len(k.encode()) >= 5]
    pick = list(rng.choice(keys, size=n // 2, p=p / p.sum())) + list(rng.choice(long, size=n // 2))
    return [k.encode() for k in pick]


def _check(blm: ByteLM, truth: ByteTruth, max_bytes: int, lm: CanonicalTokenLM, encode, token_bytes, deep):
    worst = 0.0
    n = 0
    naive_tv, heal_tv = [], []
    for x, ours, true, s in _walk(blm, truth, max_bytes, deep):
        n += 1
        err = float(np.max(np.abs(ours - true)))
        assert err < TOL, (x, err, np.nonzero(np.abs(ours - true) > TOL))
        assert abs(ours.sum() - 1.0) < 1e-12
        assert s.counters()["inconsistent"] == 0
        # prompt mode (the prompt pushed without evaluating; only the nodes alive at its
        # end evaluated) equals the truth and the eager stream
        lazy = blm.next_byte_logprobs(x)
        assert float(np.max(np.abs(np.exp(lazy) - true))) < TOL, x
        assert float(np.max(np.abs(np.exp(lazy) - ours))) < TOL, x
        worst = max(worst, err)
        nv = naive_next_byte(lm, encode, token_bytes, x)
        if nv is not None:
            naive_tv.append(0.5 * float(np.abs(nv - true).sum()))
        hv = healed_next_byte(lm, encode, token_bytes, x)
        if hv is not None:
            heal_tv.append(0.5 * float(np.abs(hv - true).sum()))
    # known-text scoring (pruned by the next byte): per-byte ratios equal the truth
    for d in deep[:30]:
        bl = blm.byte_logprobs(d, eos=True)
        for i in range(len(d)):
            want = math.log(truth.prefix[d[: i + 1]] / truth.prefix[d[:i]])
            assert abs(bl[i] - want) < 1e-9, (d, i, bl[i], want)
        assert abs(bl[-1] - math.log(truth.end[d] / truth.prefix[d])) < 1e-9
    # guards against a trivially exact setup: the baselines must be visibly wrong
    assert n > 200
    assert max(naive_tv) > 0.1 and float(np.mean(naive_tv)) > 0.01, (max(naive_tv), np.mean(naive_tv))
    assert max(heal_tv) > 0.05, max(heal_tv)
    return worst


def _setup(bt, encode, alphabet, seed, max_len, sparsity, eot, n_vocab):
    src = MarkovSource(alphabet, seed, max_len, sparsity=sparsity)
    strings = src.strings()
    lm = CanonicalTokenLM(strings, encode, n_vocab, eot)
    truth = ByteTruth(strings)
    return src, strings, lm, truth


_TB: dict[int, object] = {}


def _token_bytes(bt):
    f = _TB.get(id(bt))
    if f is None:
        f = _TB[id(bt)] = lambda t: bt.token_bytes(t) or b""
    return f


@pytest.fixture(scope="module")
def cl100k():
    return supertok.get_encoding("cl100k_base")


CL_ALPHA = ["a", "s", " ", "1", "'", "\n", "\u00e9", "T"]


@pytest.mark.parametrize("seed", [0, 1])
def test_truth_cl100k(cl100k, seed):
    bt = _core.ByteTokenizer.from_encoding(cl100k._core_bpe)
    encode = cl100k.encode_ordinary
    src, strings, lm, truth = _setup(bt, encode, CL_ALPHA, seed, 6, 0.5, bt.eot(), bt.n_ids())
    blm = ByteLM(cl100k, lm)
    _check(blm, truth, 4, lm, encode, _token_bytes(bt), _deep(strings, 60, seed))
    # string probabilities: one forward pass over the canonical encoding
    for s in list(strings)[:300]:
        assert abs(blm.logprob(s) - math.log(strings[s])) < 1e-9


def test_truth_o200k():
    enc = supertok.get_encoding("o200k_base")
    bt = _core.ByteTokenizer.from_encoding(enc._core_bpe)
    alpha = ["a", "D", "'", "t", " ", "1", "\n", "\u4e2d"]
    src, strings, lm, truth = _setup(bt, enc.encode_ordinary, alpha, 3, 6, 0.5, bt.eot(), bt.n_ids())
    blm = ByteLM(enc, lm)
    _check(blm, truth, 4, lm, enc.encode_ordinary, _token_bytes(bt), _deep(strings, 60, 3))


def test_truth_hf_bytelevel():
    tok, bt, pattern = hf_bytelevel()
    eot = bt.eot()
    encode = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    alpha = ["a", "b", " ", "1", "'", "\n", "\u00e9", "s"]
    src, strings, lm, truth = _setup(bt, encode, alpha, 5, 6, 0.45, eot, bt.n_ids())
    # our canonical encoding equals HF's on the whole support
    for s in strings:
        assert list(bt.encode(s)) == encode(s), s
    blm = ByteLM(bt, lm)
    _check(blm, truth, 4, lm, encode, _token_bytes(bt), _deep(strings, 60, 5))


def test_truth_superbpe():
    tok, bt, pattern = hf_superbpe()
    eot = bt.eot()
    encode = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    alpha = ["a", "b", " ", "1", "2", "\n", "\u00e9"]
    src, strings, lm, truth = _setup(bt, encode, alpha, 7, 7, 0.35, eot, bt.n_ids())
    for s in strings:
        assert list(bt.encode(s)) == encode(s), s
    blm = ByteLM(bt, lm)
    _check(blm, truth, 4, lm, encode, _token_bytes(bt), _deep(strings, 60, 7))


def test_chain_rule_and_one_pass(cl100k):
    bt = _core.ByteTokenizer.from_encoding(cl100k._core_bpe)
    src, strings, lm, truth = _setup(bt, cl100k.encode_ordinary, CL_ALPHA, 11, 6, 0.5, bt.eot(), bt.n_ids())
    blm = ByteLM(cl100k, lm)
    rng = np.random.default_rng(0)
    keys = sorted(strings, key=lambda s: -strings[s])[:40] + list(rng.choice(sorted(strings), 40))
    for s in keys:
        per = blm.byte_logprobs(s, eos=True)
        direct = blm.logprob(s)
        assert abs(per.sum() - direct) < 1e-9, (s, per.sum(), direct)
        assert abs(direct - math.log(strings[s])) < 1e-9
        # streaming = from scratch
        st = blm.stream(b"")
        data = s.encode()
        for i, b in enumerate(data):
            if i % 3 == 0:
                scratch = blm.next_byte_logprobs(data[:i])
                assert np.allclose(np.exp(st.logprobs()), np.exp(scratch), atol=1e-12, rtol=0)
            st.push(b)
