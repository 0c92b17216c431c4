"""Two-level encoding of superword vocabularies (``rust/core/src/hf/two_level.rs``):
differential tests against HF ``tokenizers`` (ids, offsets, decode) on SuperBPE tokenizers
trained by ``supertok.train_superbpe`` (both presets) and on one whose stage 1 was trained
by HF's own ``BpeTrainer``; the load-time check falls back to the one-level path when the
split would not be exact. The same tests cover the hand-written splitter of the paper
stage-1 pre-tokenizer on the encode path (kind ``bpe_paper``: ``transition=1.0``)."""

from __future__ import annotations

import functools
import glob
import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok
from conftest import CORPUS_DIR
from strategies import long_runs, nasty_text

tokenizers = pytest.importorskip("tokenizers")

PAPER_1 = r"(?=(\d{3})+(?!\d))| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


@functools.lru_cache(maxsize=None)
def _training_text() -> str:
    """~700 KB of training text: the shared corpus when present, else the Python standard
    library's own sources (present on every machine)."""
    parts = []
    for name, n in (("en.txt", 500_000), ("code.txt", 200_000)):
        p = os.path.join(CORPUS_DIR, name)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                parts.append(f.read(n))
    if not parts:
        size = 0
        for p in sorted(glob.glob(os.path.join(os.path.dirname(json.__file__), "*.py"))):
            with open(p, encoding="utf-8") as f:
                t = f.read()
            parts.append(t)
            size += len(t)
            if size > 700_000:
                break
    return "".join(parts)


def _hf_stage1(vocab: int) -> supertok.Tokenizer:
    """A stage-1 BPE trained by HF's BpeTrainer with the paper stage-1 pre-tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, trainers
    from tokenizers import pre_tokenizers as pt

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pt.Sequence(
        [
            pt.Digits(individual_digits=False),
            pt.Split(Regex(PAPER_1), "isolated"),
            pt.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_training_text().splitlines(keepends=True), trainer=trainer)
    return supertok.Tokenizer.from_str(tok.to_str())


@functools.lru_cache(maxsize=None)
def _pair(kind: str) -> tuple[supertok.Tokenizer, object]:
    text = _training_text()
    if kind == "paper":
        tok = supertok.train_superbpe_from_iterator([text], 3000, 0.8, show_progress=False)
    elif kind == "recommended":
        tok = supertok.train_superbpe_from_iterator(
            [text], 3000, 0.7, pattern="recommended", show_progress=False
        )
    elif kind == "hf_stage1":
        # transition=None inherits every merge HF made (fewer than 2400 - 256 when the
        # fallback text is small, as on a clone without the shared corpus)
        tok = supertok.train_superbpe_from_iterator(
            [text], 3000, None, inherit=_hf_stage1(2400), show_progress=False
        )
    elif kind == "t0":
        tok = supertok.train_superbpe_from_iterator([text], 3000, 0, show_progress=False)
    elif kind == "bpe_paper":
        tok = supertok.train_superbpe_from_iterator([text], 3000, 1.0, show_progress=False)
    elif kind == "broken_split":
        tok = _broken_split()
    else:
        raise ValueError(kind)
    js = tok.to_json()
    return supertok.Tokenizer.from_str(js), tokenizers.Tokenizer.from_str(js)


def _broken_split() -> supertok.Tokenizer:
    """The paper tokenizer with one merge appended that makes the superword split invalid:
    it re-creates (from a different pair) a token that a low merge takes as input."""
    ours, _ = _pair("paper")
    r = ours.two_level_split
    assert r is not None
    j = json.loads(ours.to_json())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in j["model"]["merges"]]
    vocab = j["model"]["vocab"]
    have = set(merges)
    for left, right in merges[:r]:
        for t in (left, right):
            for k in range(1, len(t)):
                a, b = t[:k], t[k:]
                if a in vocab and b in vocab and (a, b) not in have:
                    j["model"]["merges"] = [list(m) for m in merges] + [[a, b]]
                    return supertok.Tokenizer.from_str(json.dumps(j))
    raise AssertionError("no merge to append")


KINDS = ["paper", "recommended", "hf_stage1", "t0", "broken_split", "bpe_paper"]


def test_split_is_chosen_and_checked() -> None:
    for kind in ("paper", "recommended", "hf_stage1"):
        ours, _ = _pair(kind)
        r = ours.two_level_split
        assert r is not None, kind
        j = json.loads(ours.to_json())
        assert 0 < r < len(j["model"]["merges"])
    # t = 0: superwords come with the first merges, the ordinary path is kept
    assert _pair("t0")[0].two_level_split is None
    # the load-time check rejects a merge list where the split would not be exact
    assert _pair("broken_split")[0].two_level_split is None
    # ordinary BPE vocabularies have no superwords
    assert _pair("bpe_paper")[0].two_level_split is None
    for name in ("gpt2", "cl100k_base"):  # (cl100k has " \xa0 \xa0": NBSP is whitespace)
        plain = supertok.Tokenizer.from_tiktoken(supertok.get_encoding(name))
        assert plain.two_level_split is None, name


def _check(kind: str, text: str) -> None:
    ours, hf = _pair(kind)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: both reject the text
        with pytest.raises(TypeError, match="surrogate"):
            ours.encode(text)
        return
    e = hf.encode(text)
    ids, offs = ours.encode_with_offsets(text, char_offsets=True)
    assert ids == e.ids, (kind, text[:200])
    assert offs == [tuple(x) for x in e.offsets], (kind, text[:200])
    assert ours.encode(text) == ids
    assert ours.decode(ids) == hf.decode(ids)


_words = st.lists(
    st.sampled_from(
        ["the", "of", "and", "a", "to", "in", "is", "that", "it", "for", "on", "with", "as",
         "The", "option", "file", "by", "be", "this", "are", "not", "I", "am", "way", ",", ".",
         ":", "(", ")", "=", "{", "}", "x", "0", "12", "1234567", "\u00e9t\u00e9", "\u6f22\u5b57",
         "\u3000", "\xa0", "\t", "-", "--", "\U0001f600", "'s", "n't"]
    ),
    min_size=1,
    max_size=600,
)
_long_line = st.tuples(_words, st.sampled_from([" ", "  ", "", " \n", "\n"])).map(lambda t: t[1].join(t[0]))
_digits = st.tuples(st.integers(1, 3000), st.sampled_from("0123456789"), st.sampled_from(["", " x", "a", "\n"])).map(
    lambda t: t[1] * t[0] + t[2]
)
_surrogate = st.tuples(_long_line, st.sampled_from(["\ud800", "\udfff", "\ud83d"])).map(lambda t: t[0] + t[1])
TEXT = st.one_of(_long_line, _long_line, _digits, _surrogate, nasty_text, long_runs)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXT)
def test_differential_hypothesis(kind: str, text: str) -> None:
    _check(kind, text)


def _documents(n: int, seed: int, max_bytes: int) -> list[str]:
    out = []
    rng = random.Random(seed)
    for name in ("en.txt", "code.txt", "multilingual/de.txt", "multilingual/ja.txt"):
        p = os.path.join(CORPUS_DIR, name)
        if not os.path.exists(p):
            continue
        with open(p, encoding="utf-8") as f:
            text = f.read()
        # the held-out end of the file (training used the beginning)
        text = text[len(text) // 2 :]
        for _ in range(n):
            a = rng.randrange(0, max(1, len(text) - max_bytes))
            out.append(text[a : a + rng.randint(100, max_bytes)])
    if not out:
        pytest.skip("shared corpus not present")
    return out


@pytest.mark.parametrize("kind", ["paper", "recommended", "hf_stage1", "broken_split", "bpe_paper"])
def test_differential_corpus(kind: str) -> None:
    for doc in _documents(3, seed=1, max_bytes=12_000):
        _check(kind, doc)
        _check(kind, doc.replace("\n", " "))  # one paragraph-long piece


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXT)
def test_differential_hypothesis_big(kind: str, text: str) -> None:
    _check(kind, text)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_differential_corpus_big(kind: str) -> None:
    for doc in _documents(40, seed=2, max_bytes=60_000):
        _check(kind, doc)
        _check(kind, doc.replace("\n", " "))
