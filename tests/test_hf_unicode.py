"""Character classes of HF's regex engine (Oniguruma) against supertok's (fancy-regex in
Oniguruma mode, with Oniguruma's ``\\w``), over the whole Unicode range: a Split(class,
Removed) tokenizer must keep exactly the same characters."""

from __future__ import annotations

import json

import pytest

from supertok import Tokenizer

tokenizers = pytest.importorskip("tokenizers")


def _byte_vocab() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def split_tokenizer(pattern: str, behavior: str = "Removed") -> str:
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return json.dumps(
        {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [],
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": pattern}, "behavior": behavior, "invert": False},
                    bl,
                ],
            },
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": _byte_vocab(),
                "merges": [],
            },
        }
    )


PATTERNS = [r"\p{L}", r"\p{N}", r"\s", r"\d", r"\w", r"\W", r"[^\w\s]", r"[\W]", r"[^\W\d]", r"\p{P}", r"\p{M}", r"(?i)s", r"[^\s\p{L}\p{N}]", r"\p{Han}"]


def _check(pattern: str, stride: int) -> None:
    text = "".join(chr(c) for c in range(0, 0x110000, stride) if not 0xD800 <= c < 0xE000)
    j = split_tokenizer(pattern)
    h = tokenizers.Tokenizer.from_str(j)
    o = Tokenizer.from_str(j)
    e = h.encode(text)
    ids, offs = o.encode_with_offsets(text, char_offsets=True)
    assert ids == e.ids
    assert offs == [tuple(x) for x in e.offsets]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_classes_sampled(pattern):
    _check(pattern, 97)


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_classes_all_code_points(pattern):
    _check(pattern, 1)


def test_posix_brackets_rejected():
    with pytest.raises(ValueError, match=r"at pre_tokenizer.pretokenizers\[0\].pattern.*POSIX bracket"):
        Tokenizer.from_str(split_tokenizer("[[:alpha:]]+"))
