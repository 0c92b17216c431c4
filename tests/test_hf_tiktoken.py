"""Tokenizer.from_tiktoken / to_tiktoken: an HF tokenizer built from a tiktoken encoding gives
tiktoken's ids on ordinary text, in supertok and in HF tokenizers (loading the saved file),
and converts back."""

from __future__ import annotations

import pytest

import hf_util as u
import supertok
from supertok import Tokenizer
from test_hf_tokenizer import NASTY

tokenizers = pytest.importorskip("tokenizers")

SPECIAL_LITERALS = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>", "<|im_start|>"}


def _texts(n: int) -> list[str]:
    texts = [t for t in NASTY if not any(s in t for s in SPECIAL_LITERALS)]
    texts += [
        "1234567890 12 1 123456",
        "  \n\n  trailing   \n",
        "WHAT'S THIS? don't I'd we'LL",
        "ſ ʼs 'ſ",
    ]
    for name in ["en.txt", "code.txt", "multilingual/ja.txt", "multilingual/ru.txt", "multilingual/ta.txt"]:
        try:
            texts += u.documents(name, n, seed=9)
        except pytest.skip.Exception:
            pass
    return texts


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "r50k_base"])
def test_from_tiktoken_equals_tiktoken(name, tmp_path):
    enc = supertok.get_encoding(name)
    tok = Tokenizer.from_tiktoken(enc)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    hf = tokenizers.Tokenizer.from_file(str(path))
    for t in _texts(12):
        want = enc.encode_ordinary(t)
        assert tok.encode(t) == want, t[:200]
        assert hf.encode(t).ids == want, t[:200]
        assert tok.decode(want) == enc.decode(want)
    # special tokens: always matched by HF-style tokenizers
    eot = enc.eot_token
    assert tok.encode("a<|endoftext|>b") == enc.encode("a<|endoftext|>b", allowed_special="all")
    assert tok.special_tokens["<|endoftext|>"] == eot
    # and back
    back = tok.to_tiktoken(name)
    for t in _texts(4):
        assert back.encode_ordinary(t) == enc.encode_ordinary(t)
    assert back.encode("<|endoftext|>", allowed_special="all") == [eot]


def test_to_tiktoken_refuses_what_it_cannot_express():
    with pytest.raises(ValueError, match="normalizer"):
        u.ours("special").to_tiktoken()
    with pytest.raises(ValueError, match="pre-tokenizer must be"):
        u.ours("superbpe").to_tiktoken()
    # an HF-trained GPT-2 style tokenizer converts and agrees
    enc = u.ours("gpt2").to_tiktoken("gpt2ish")
    for t in _texts(6):
        assert enc.encode_ordinary(t) == u.hf("gpt2").encode(t).ids
