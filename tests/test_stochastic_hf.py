"""StochasTok and BPE-dropout on supertok.Tokenizer (HF tokenizer.json), on the tokenizers HF
itself trains in tests/hf_util.py (GPT-2, GPT-4 and Llama-3 style, SuperBPE-style, added and
special tokens with a normalizer and a template post-processor, prefix space)."""

from __future__ import annotations

import json
import random
from collections import Counter

import hf_util as u
import pytest
import supertok
from stoch_helpers import (
    Xoshiro,
    bytes_to_unicode,
    chi2_two_sample,
    lazy_dropout_parts,
    ref_split_table,
    ref_stochastok,
)
from supertok.stochastic import split_table, stochastok, stochastok_batch
from test_stochastic import NASTY

tokenizers = pytest.importorskip("tokenizers")

U2B = {c: b for b, c in bytes_to_unicode().items()}


def token_bytes(s: str) -> bytes | None:
    try:
        return bytes(U2B[c] for c in s)
    except KeyError:
        return None


def reference_table(config: str):
    """The split table computed from the vocabulary in Python: added tokens excluded."""
    j = u.json_obj(config)
    added = {t["id"] for t in j["added_tokens"]}
    ranks = {}
    for s, i in j["model"]["vocab"].items():
        b = token_bytes(s)
        if b is not None and i not in added:
            ranks[b] = i
    return ref_split_table(ranks), added


def texts() -> list[str]:
    docs = u.documents("en.txt", 20, seed=3, max_bytes=1500)
    return NASTY + docs


@pytest.mark.parametrize("config", u.CONFIGS)
def test_split_table_matches_reference(config):
    ours = u.ours(config)
    table = split_table(ours)
    ref, added = reference_table(config)
    got = {i: table.splits(i) for i in range(table.n_slots) if table.splits(i)}
    assert got == ref
    assert all(table.is_known(i) and not table.splits(i) for i in added)


@pytest.mark.parametrize("config", u.CONFIGS)
def test_stochastok_round_trip(config):
    o, h = u.ours(config), u.hf(config)
    added = {t["id"] for t in u.json_obj(config)["added_tokens"]}
    for i, text in enumerate(texts()):
        ids = o.encode(text)
        for p in (0.1, 1.0):
            out = stochastok(ids, o, p=p, seed=i)
            assert 0 <= len(out) - len(ids) <= int(len(ids) * p)
            assert [t for t in out if t in added] == [t for t in ids if t in added]
            for skip in (False, True):
                assert o.decode(out, skip_special_tokens=skip) == o.decode(ids, skip_special_tokens=skip)
                assert h.decode(out, skip_special_tokens=skip) == h.decode(ids, skip_special_tokens=skip)
            assert all(o.id_to_token(t) is not None for t in out)


def test_stochastok_distribution_on_hf_tokenizer():
    # success counts against the Python reference on the SuperBPE-style tokenizer
    o = u.ours("superbpe")
    ref, _ = reference_table("superbpe")
    ids = o.encode("Superword tokens span spaces: of the, in the, it is. Splitting them yields subwords 12345.")
    n = 3000
    rng = random.Random(5)
    theirs = Counter(len(ref_stochastok(ids, ref, 0.5, rng)) - len(ids) for _ in range(n))
    ours = Counter(len(x) - len(ids) for x in stochastok_batch([ids] * n, o, p=0.5, seed=8))
    assert chi2_two_sample(ours, theirs) > 1e-4


def test_superbpe_superwords_split_into_subwords():
    o = u.ours("superbpe")
    table = split_table(o)
    vocab = o.get_vocab()
    superwords = [i for s, i in vocab.items() if (b := token_bytes(s)) and b" " in b.strip(b" ") and table.splits(i)]
    assert len(superwords) > 20  # the trained SuperBPE-style vocabulary has superwords
    for i in superwords[:50]:
        whole = token_bytes(o.id_to_token(i))
        for l, r in table.splits(i):
            assert token_bytes(o.id_to_token(l)) + token_bytes(o.id_to_token(r)) == whole
    # a superword split once yields its halves, each a shorter token
    i = max(superwords, key=lambda t: len(table.splits(t)))
    halves = Counter(tuple(x) for x in stochastok_batch([[i]] * 300, o, p=1.0, seed=1))
    assert set(halves) == set(table.splits(i))


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("config", u.CONFIGS)
def test_dropout_identities(config):
    o = u.ours(config)
    added = {t["id"] for t in u.json_obj(config)["added_tokens"]}
    for i, text in enumerate(texts()):
        for add in (True, False):
            plain = o.encode(text, add)
            assert o.encode(text, add, dropout=0.0, seed=i) == plain
            assert o.encode(text, add, dropout=1e-300, seed=i) == plain
            b = o.encode(text, add, dropout=1.0, seed=i)
            assert o.decode(b) == o.decode(plain)
            assert all(t in added or len(token_bytes(o.id_to_token(t)) or b"xx") == 1 for t in b)
            d = o.encode(text, add, dropout=0.2, seed=i)
            assert o.decode(d) == o.decode(plain)
            assert d == o.encode(text, add, dropout=0.2, seed=i)


@pytest.mark.parametrize("config", u.CONFIGS)
def test_dropout_p1_equals_hf(config):
    # HF's BPE(dropout=1.0) skips every merge too: ids must agree exactly, through HF's whole
    # pipeline (added tokens, normalizers, pre-tokenizers, templates, unknown bytes).
    j = u.json_obj(config)
    j["model"]["dropout"] = 1.0
    h1 = tokenizers.Tokenizer.from_str(json.dumps(j))
    o = u.ours(config)
    for text in texts():
        for add in (True, False):
            assert o.encode(text, add, dropout=1.0, seed=0) == h1.encode(text, add_special_tokens=add).ids


def ref_hf_dropout_piece(vocab, merge_rank, piece: str, ignore_merges: bool, drop) -> list[int]:
    """The documented algorithm over an HF merge list (pairs of byte-level strings); a piece
    in which nothing was dropped gets its plain encoding."""
    parts, dropped = lazy_dropout_parts(list(piece), lambda a, b: merge_rank.get((a, b)), drop)
    if ignore_merges and not dropped and piece in vocab:
        return [vocab[piece]]
    return [vocab[x] for x in parts]


@pytest.mark.parametrize("config", ["gpt2", "llama3", "superbpe"])
def test_dropout_draw_for_draw(config):
    # HF's own pre-tokenizer gives the pieces; the reference merges them with the documented
    # generator; supertok must produce the same ids.
    j = u.json_obj(config)
    h = u.hf(config)
    o = u.ours(config)
    vocab = j["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in j["model"]["merges"]]
    merge_rank = {}
    for r, m in enumerate(merges):
        merge_rank[m] = r  # HF: the last occurrence of a pair wins
    ignore = bool(j["model"].get("ignore_merges"))
    for text in texts()[:40]:
        if not text or h.normalizer is not None:
            continue
        pieces = [p for p, _ in h.pre_tokenizer.pre_tokenize_str(text)]
        for p, seed in ((0.1, 1), (0.5, 2), (0.9, 3)):
            rng = Xoshiro(seed, 0)
            ref = []
            for piece in pieces:
                ref += ref_hf_dropout_piece(vocab, merge_rank, piece, ignore, lambda rng=rng, p=p: rng.bernoulli(p))
            assert o.encode(text, dropout=p, seed=seed) == ref, (config, text[:80], p)


def test_dropout_errors():
    o = u.ours("gpt2")
    with pytest.raises(ValueError, match="dropout"):
        o.encode("x", dropout=1.5)
    with pytest.raises(TypeError, match="dropout"):
        o.encode("x", dropout="0.1")
    with pytest.raises(ValueError, match="seed"):
        o.encode("x", dropout=0.1, seed=-3)
    with pytest.raises(TypeError, match="surrogate"):
        o.encode("a\ud800", dropout=0.1, seed=0)


def test_supertok_tokenizer_from_tiktoken_matches_encoding():
    e = supertok.get_encoding("gpt2")
    t = supertok.Tokenizer.from_tiktoken(e)
    a, b = split_table(e), split_table(t)
    assert all(a.splits(i) == b.splits(i) for i in range(e.n_vocab))
    ids = e.encode("Both views of GPT-2 split the same way <|endoftext|>", allowed_special="all")
    assert stochastok(ids, t, p=1.0, seed=4) == stochastok(ids, e, p=1.0, seed=4)
