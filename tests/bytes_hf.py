"""Small HF byte-level BPE and SuperBPE tokenizers for the byte-probability tests, trained
with HF `tokenizers` on text from the test alphabets, and their conversion to
`supertok._core.ByteTokenizer` (vocab bytes, merges, split regex)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from supertok import _core

GPT2_HF_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
SUPERBPE_PATTERN = r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))|\P{N}+"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(
        range(ord("\u00ae"), ord("\u00ff") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_U2B = {v: k for k, v in bytes_to_unicode().items()}


def _tok_bytes(s: str) -> bytes:
    return bytes(_U2B[c] for c in s)


def to_byte_tokenizer(tok, pattern: str, eot_str: str = "<|endoftext|>", ignore_merges: bool = False):
    """Convert a trained HF byte-level BPE tokenizer to a `_core.ByteTokenizer`."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    specials = {a["content"]: a["id"] for a in data["added_tokens"]}
    tokens = {_tok_bytes(s): i for s, i in vocab.items() if s not in specials}
    merges = []
    for m in data["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        merges.append((vocab[a], vocab[b]))
    return _core.ByteTokenizer.from_bpe(
        tokens, merges, pattern, specials, eot=specials.get(eot_str), ignore_merges=ignore_merges
    )


def _corpus(alphabet: list[str], seed: int, n: int = 3000) -> list[str]:
    rng = np.random.default_rng(seed)
    k = len(alphabet)
    trans = rng.random((k, k)) ** 3
    trans /= trans.sum(axis=1, keepdims=True)
    out = []
    for _ in range(n):
        i = rng.integers(k)
        s = [alphabet[i]]
        for _ in range(rng.integers(3, 30)):
            i = rng.choice(k, p=trans[i])
            s.append(alphabet[i])
        out.append("".join(s))
    return out


@functools.lru_cache(maxsize=None)
def hf_bytelevel(vocab_size: int = 420):
    """HF ByteLevel BPE (GPT-2 regex) trained on the test alphabet."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(["a", "b", " ", "1", "'", "\n", "\u00e9", "s", "  "], 1), trainer)
    tok.encode_special_tokens = True  # specials never come from text (canonical = ordinary)
    return tok, to_byte_tokenizer(tok, GPT2_HF_PATTERN), GPT2_HF_PATTERN


@functools.lru_cache(maxsize=None)
def hf_superbpe(vocab_size: int = 480):
    """SuperBPE-style tokenizer (t = 0 variant): digits split into right-aligned groups of
    three, nothing else split, byte-level BPE across words."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Regex, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Split(Regex(r"(?=(\d{3})+(?!\d))"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(["a", "b", " ", "1", "2", "\n", "\u00e9", "ab "], 2), trainer)
    tok.encode_special_tokens = True
    return tok, to_byte_tokenizer(tok, SUPERBPE_PATTERN), SUPERBPE_PATTERN
