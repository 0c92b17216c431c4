"""The trainer contract: ``Tokenizer.from_bpe(vocab, merges, ...)`` builds a tokenizer whose
``save()`` output HF ``tokenizers`` and ``transformers.PreTrainedTokenizerFast`` load with
identical ids, and whose ``to_tiktoken()`` is equivalent."""

from __future__ import annotations

import json
import os

import pytest

import hf_util as u
import supertok
from supertok import Tokenizer

tokenizers = pytest.importorskip("tokenizers")


def _byte_decoder() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def trained_bpe(config: str) -> tuple[list[bytes], list[tuple[int, int]]]:
    """vocab (bytes, index = id) and merges (id pairs) of an HF-trained tokenizer."""
    j = u.json_obj(config)
    dec = _byte_decoder()
    voc = j["model"]["vocab"]
    vocab: list[bytes] = [b""] * len(voc)
    for s, i in voc.items():
        vocab[i] = bytes(dec[ch] for ch in s)
    merges = [(voc[a], voc[b]) for a, b in j["model"]["merges"]]
    return vocab, merges


def sample_text() -> str:
    docs = u.documents("en.txt", 30, seed=1) + u.documents("code.txt", 20, seed=2)
    for lang in ["ja", "ru", "de"]:
        p = os.path.join(u.CORPUS_DIR, "multilingual", f"{lang}.txt")
        if os.path.exists(p):
            docs += u.documents(f"multilingual/{lang}.txt", 10, seed=3)
    docs.append("1234567 dollars and 89 cents, 3.14159, 100000000000000000 <|endoftext|>")
    return "\n".join(docs)


def _check_against_hf(tok: Tokenizer, tmp_path, text: str) -> None:
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    h = tokenizers.Tokenizer.from_file(str(path))
    ours = tok.encode(text)
    assert h.encode(text).ids == ours
    assert Tokenizer.from_file(path).encode(text) == ours
    transformers = pytest.importorskip("transformers")
    f = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    assert f(text)["input_ids"] == ours
    assert f.decode(ours) == tok.decode(ours)


def test_from_bpe_default_pattern_matches_hf_transformers_tiktoken(tmp_path):
    vocab, merges = trained_bpe("gpt4")
    specials = {"<|endoftext|>": len(vocab), "<|pad|>": len(vocab) + 1}
    tok = Tokenizer.from_bpe(vocab, merges, special_tokens=specials)
    text = sample_text()
    _check_against_hf(tok, tmp_path, text)
    # specials are added tokens with special=True, kept ids, ByteLevel decoder
    j = json.loads(tok.to_json())
    assert [(t["content"], t["id"], t["special"]) for t in j["added_tokens"]] == [
        ("<|endoftext|>", len(vocab), True),
        ("<|pad|>", len(vocab) + 1, True),
    ]
    assert j["decoder"]["type"] == "ByteLevel"
    assert tok.encode("a<|endoftext|>b")[1] == len(vocab)
    # the equivalent tiktoken-style Encoding (cl100k semantics: digits grouped by 3)
    enc = tok.to_tiktoken("trained")
    assert enc.encode(text, allowed_special="all") == tok.encode(text)
    assert tok.encode("1234567") == enc.encode_ordinary("1234567")
    assert len(tok.encode("1234567")) >= 3
    tiktoken = pytest.importorskip("tiktoken")
    ref = tiktoken.Encoding(
        "ref",
        pat_str=enc._pat_str,
        mergeable_ranks={b: i for i, b in enumerate(vocab)},
        special_tokens=specials,
    )
    assert ref.encode(text, allowed_special="all") == tok.encode(text)


def test_from_bpe_pattern_and_superbpe_pre_tokenizer(tmp_path):
    vocab, merges = trained_bpe("superbpe")
    pre = [
        {"type": "Digits", "individual_digits": False},
        {
            "type": "Split",
            "pattern": {"Regex": r"(?=(\d{3})+(?!\d))"},
            "behavior": "Isolated",
            "invert": False,
        },
    ]
    tok = Tokenizer.from_bpe(vocab, merges, pre_tokenizer=pre)
    text = sample_text()
    _check_against_hf(tok, tmp_path, text)
    # same as the HF-trained original
    assert tok.encode(text) == u.hf("superbpe").encode(text).ids
    with pytest.raises(ValueError, match="cannot convert to tiktoken"):
        tok.to_tiktoken()

    vocab, merges = trained_bpe("llama3")
    tok = Tokenizer.from_bpe(vocab, merges, pattern=r"\p{L}+|\p{N}{1,3}+|\s+|[^\s\p{L}\p{N}]+")
    _check_against_hf(tok, tmp_path, text)
    assert tok.to_tiktoken().encode_ordinary(text) == tok.encode(text)


def test_from_bpe_errors():
    vocab = [bytes([b]) for b in range(256)] + [b"ab"]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        Tokenizer.from_bpe(vocab, [(97, 999)])
    with pytest.raises(ValueError, match="merge result"):
        Tokenizer.from_bpe(vocab, [(98, 97)])
    with pytest.raises(ValueError, match="belongs to a regular token"):
        Tokenizer.from_bpe(vocab, [(97, 98)], special_tokens={"<s>": 5})
    with pytest.raises(ValueError, match="either pre_tokenizer or pattern"):
        Tokenizer.from_bpe(vocab, [(97, 98)], pattern="a", pre_tokenizer=[])
    with pytest.raises(ValueError, match=r"pre_tokenizer\[0\].*Metaspace"):
        Tokenizer.from_bpe(vocab, [(97, 98)], pre_tokenizer=[{"type": "Metaspace"}])
    with pytest.raises(TypeError, match=r"vocab\[0\]"):
        Tokenizer.from_bpe(["a"], [])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"merges\[0\]"):
        Tokenizer.from_bpe(vocab, [(1,)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="appears twice"):
        Tokenizer.from_bpe(vocab + [b"ab"], [(97, 98)])
    with pytest.raises(ValueError, match="appears twice"):
        Tokenizer.from_bpe(vocab, [(97, 98)], special_tokens={"ab": 300})
    tok = Tokenizer.from_bpe(vocab, [(97, 98)])
    assert tok.encode("abc ab") == [256, 99, 32, 256]
    assert tok.decode([256, 99]) == "abc"
    assert supertok.Tokenizer is Tokenizer
