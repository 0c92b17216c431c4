"""Prompt mode of the covering tree: a known prompt is pushed without evaluating nodes in
between, and only the nodes still alive at its end (or at a segment end) are evaluated.
It must equal the eager stream (every node evaluated as it appears) to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest

import supertok
from supertok import _core, bytelm
from supertok.bytelm import ByteLM, ByteStats, ByteStream
from supertok.models import NGramLM

from bytes_hf import hf_superbpe

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 12:45 and we're done.\n",
    "Tokenizers split text into pieces; BPE merges bytes.  Spaces   and\ttabs.\n",
    "def f(x):\n    return x * 2  # double\n",
    "Numbers: 1234567, 3.14159, 2026-11-28. Unicode: caf\u00e9, \u4e2d\u6587, \U0001F600!\n",
] * 5

PROMPTS = [
    "The quick bro",
    "The quick brown fox jumps over the lazy dog. It's 12:4",
    "Spaces   ",
    "Spaces   and\t",
    "Numbers: 12345",
    "Unicode: caf\u00e9, \u4e2d",
    "def f(x):\n    return x * 2  # dou",
    "a",
    " ",
    "\n\n",
]


@pytest.fixture(scope="module")
def enc():
    return supertok.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def blm(enc):
    return ByteLM(enc, NGramLM.train(enc, TEXTS, order=3))


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) < 1e-10


def _eager(blm: ByteLM, prompt: bytes) -> ByteStream:
    s = ByteStream(blm, prompt)
    for b in prompt:
        s._push_byte(b)
    return s


def _lazy(blm: ByteLM, prompt: bytes) -> ByteStream:
    s = ByteStream(blm, prompt, prompt=True)
    s.push(prompt)
    return s


@pytest.mark.parametrize("text", PROMPTS)
def test_prompt_equals_eager(blm, text):
    data = text.encode()
    # also cut inside a multi-byte character
    for p in {data, data[:-1]}:
        if not p:
            continue
        eager, lazy = _eager(blm, p), _lazy(blm, p)
        assert not lazy._tree.in_prompt()
        assert np.max(np.abs(np.exp(eager.logprobs()) - np.exp(lazy.logprobs()))) < 1e-10
        assert np.allclose(eager.logprobs(), lazy.logprobs(), atol=1e-10, rtol=0)
        assert lazy.evaluated <= eager.evaluated
        assert lazy.counters()["inconsistent"] == 0
        # continuing after the prompt: same per-byte scores and distributions
        for b in b" the 123":
            if not np.isfinite(eager.logprobs()[b]):
                break
            assert _close(eager.logprob_next(b), lazy.logprob_next(b))
            eager._push_byte(b)
            lazy.push(b)
            assert np.allclose(eager.logprobs(), lazy.logprobs(), atol=1e-10, rtol=0)
        assert _close(eager.logprob_next(None), lazy.logprob_next(None))


def test_prompt_evaluates_only_live_nodes(blm, enc):
    """On a longer English prompt the prompt mode evaluates about one position per
    canonical token (the eager stream evaluates every head that ever lived)."""
    text = (TEXTS[0] + TEXTS[1] + TEXTS[3]) * 2
    data = text.encode()
    eager, lazy = _eager(blm, data), _lazy(blm, data)
    assert np.allclose(eager.logprobs(), lazy.logprobs(), atol=1e-10, rtol=0)
    n_tok = len(enc.encode_ordinary(text))
    assert lazy.evaluated <= n_tok + 8, (lazy.evaluated, n_tok)
    assert eager.evaluated > lazy.evaluated
    st = ByteStats()
    blm.next_byte_logprobs(data, stats=st)
    assert st.positions == lazy.evaluated


def test_prompt_segments(blm, monkeypatch):
    """Long prompts are pushed in segments (nodes alive at a segment end are evaluated);
    the result does not depend on the segment length."""
    data = (TEXTS[0] + TEXTS[3]).encode()
    want = _eager(blm, data).logprobs()
    for seg in [1, 2, 7, 64]:
        monkeypatch.setattr(bytelm, "_PROMPT_SEGMENT", seg)
        got = _lazy(blm, data).logprobs()
        assert np.allclose(want, got, atol=1e-10, rtol=0), seg


def test_prompt_small_batches(blm, monkeypatch):
    """Pending nodes are sent to a prefix model in bounded batches."""
    data = (TEXTS[0] * 3).encode()
    want = _lazy(blm, data).logprobs()
    monkeypatch.setattr(bytelm, "_MAX_BATCH", 3)
    assert np.allclose(want, _lazy(blm, data).logprobs(), atol=1e-12, rtol=0)


class _TreeModel:
    """A prefix model that also offers the tree method (rows recomputed per prefix)."""

    def __init__(self, lm):
        self.lm = lm
        self.calls: list[tuple[list[int], list[int], list[int]]] = []

    def logprobs(self, prefixes):
        return self.lm.logprobs(prefixes)

    def logprobs_tree(self, prefix, tokens, parents):
        self.calls.append((list(prefix), list(tokens), list(parents)))
        paths: list[list[int]] = []
        for t, p in zip(tokens, parents):
            assert -1 <= p < len(paths)
            paths.append((paths[p] if p >= 0 else []) + [t])
        return self.lm.logprobs([list(prefix)] + [list(prefix) + q for q in paths])


def test_prompt_tree_model(blm, enc):
    tm = _TreeModel(blm.model)
    tblm = ByteLM(enc, tm)
    for text in PROMPTS[:5]:
        data = text.encode()
        assert np.allclose(blm.next_byte_logprobs(data), tblm.next_byte_logprobs(data), atol=1e-12, rtol=0)
    # the tree holds each node once
    for _, tokens, parents in tm.calls:
        keys = set()
        for k, (t, p) in enumerate(zip(tokens, parents)):
            assert p < k
            keys.add((p, t))
        assert len(keys) == len(tokens)


def test_pending_tree_matches_paths(blm):
    data = b"The quick brown fox"
    t = _core.ByteTree(blm._bt, data, prompt=True)
    for b in data:
        t.push(b)
    ids, paths = t.pending()
    ids2, tokens, parents, rows = t.pending_tree()
    assert ids == ids2 and len(rows) == len(ids)
    tree_paths: list[list[int]] = []
    for tok, p in zip(tokens, parents):
        tree_paths.append((tree_paths[p] if p >= 0 else []) + [tok])
    for path, r in zip(paths, rows):
        assert path == (tree_paths[r] if r >= 0 else [])


def test_prompt_superbpe():
    tok, bt, _ = hf_superbpe()
    texts = ["aa b 12 a\u00e9b\n", "b ab aab 1 22\n", "aab b a 21 \u00e9\n"] * 5
    lm = NGramLM.train(bt, texts, order=3)
    blm = ByteLM(bt, lm)
    for text in ["aa b 1", "b ab aa", "aab b a 21 \u00e9\n", "a"]:
        data = text.encode()
        assert np.allclose(_eager(blm, data).logprobs(), blm.next_byte_logprobs(data), atol=1e-10, rtol=0)


def test_prompt_bad_input(blm):
    with pytest.raises(ValueError):
        _core.ByteTree(blm._bt, b"abc", scoring=True, prompt=True)
    with pytest.raises(ValueError):
        _core.ByteTree(blm._bt, None, prompt=True)
    t = _core.ByteTree(blm._bt, b"abc", prompt=True)
    with pytest.raises(ValueError):
        t.push(ord("x"))  # not the prompt's byte
    t.push_prompt(b"ab")
    with pytest.raises(ValueError):
        t.masses()  # inside the prompt (and nodes pending)
    with pytest.raises(ValueError):
        t.target_logprob(ord("c"))
    with pytest.raises(ValueError):
        t.push_prompt(b"cd")  # past the prompt's end
    assert t.text() == b"abc" and not t.in_prompt()
    s = ByteStream(blm, b"abc", prompt=True)
    with pytest.raises(ValueError):
        s.push(b"abd")
    s2 = ByteStream(blm, b"abc", prompt=True)
    s2.push(b"abcd")  # the prompt, then one ordinary byte
    assert s2.text == b"abcd" and np.isfinite(s2.logprobs()).any()
