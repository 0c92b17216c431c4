"""Every supported component against HF ``tokenizers``: the vocabulary of an HF-trained
tokenizer with each pre-tokenizer / normalizer / behavior variant swapped in, compared on
nasty strings and hypothesis text (ids, char and byte offsets, decode)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

import hf_util as u
from supertok import Tokenizer
from test_hf_tokenizer import NASTY, _text

tokenizers = pytest.importorskip("tokenizers")

BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
BL_PREFIX = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def split(pattern, behavior="Isolated", invert=False, kind="Regex"):
    return {"type": "Split", "pattern": {kind: pattern}, "behavior": behavior, "invert": invert}


PRE = {
    "whitespace": [{"type": "Whitespace"}, BL],
    "whitespace_split": [{"type": "WhitespaceSplit"}, BL],
    "punctuation": [{"type": "Punctuation", "behavior": "Isolated"}, BL],
    "punct_merged_next": [{"type": "Punctuation", "behavior": "MergedWithNext"}, BL],
    "digits_individual": [{"type": "Digits", "individual_digits": True}, BL_PREFIX],
    "removed": [split(r"\s+", "Removed"), BL],
    "merged_prev": [split(r"[,.!?]", "MergedWithPrevious"), BL],
    "merged_next": [split(r"\s", "MergedWithNext"), BL],
    "contiguous": [split(r"\p{P}", "Contiguous"), BL],
    "invert": [split(r"\p{L}+", "Isolated", invert=True), BL],
    "invert_removed": [split(r"\p{L}+|\p{N}+", "Removed", invert=True), BL],
    "string_pattern": [split(" ", "MergedWithNext", kind="String"), BL],
    "empty_matches": [split(r"(?=\p{Lu})", "MergedWithNext"), BL],
    "lookbehind": [split(r"(?<=\s)\p{L}+"), BL],
    "onig_interval": [split(r"\p{L}{1,2}+|\s"), BL],
    "word_class": [split(r"\w+|[^\w\s]+"), BL],
    "qwen2": [split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), BL],
    "bytelevel_prefix_only": [BL_PREFIX],
    "bytelevel_prefix_noregex": [{"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}],
    "nested": [{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": False}, {"type": "Sequence", "pretokenizers": [split(r"\s+", "Removed")]}]}, BL],
}

NORM = {
    "nfd": {"type": "NFD"},
    "nfkd": {"type": "NFKD"},
    "nfc": {"type": "NFC"},
    "lower": {"type": "Lowercase"},
    "prepend": {"type": "Prepend", "prepend": "▁"},
    "replace": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    "replace_regex": {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
    "replace_delete": {"type": "Replace", "pattern": {"Regex": r"[aeiou]"}, "content": ""},
    "strip": {"type": "Strip", "strip_left": True, "strip_right": True},
    "seq": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"String": "ß"}, "content": "ss"}]},
}


def variant(pre=None, norm=None, post="keep") -> str:
    j = u.json_obj("gpt2")
    if pre is not None:
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": pre}
    if norm is not None:
        j["normalizer"] = norm
    if post != "keep":
        j["post_processor"] = post
    j["added_tokens"] = [
        {"id": 0, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        {"id": 0, "content": "Mask", "single_word": True, "lstrip": True, "rstrip": False, "normalized": True, "special": False},
        {"id": 0, "content": "  tab", "single_word": False, "lstrip": False, "rstrip": True, "normalized": True, "special": True},
    ]
    return json.dumps(j)


def compare_json(js: str, texts) -> None:
    h = tokenizers.Tokenizer.from_str(js)
    o = Tokenizer.from_str(js)
    for t in texts:
        e = h.encode(t)
        assert o.encode(t) == e.ids, t[:200]
        ids, offs = o.encode_with_offsets(t, char_offsets=True)
        assert offs == [tuple(x) for x in e.offsets], t[:200]
        assert o.encode_with_offsets(t)[1] == u.char_to_byte_offsets(t, e.offsets)
        for skip in (False, True):
            assert o.decode(e.ids, skip_special_tokens=skip) == h.decode(e.ids, skip_special_tokens=skip)


EXTRA = ["Mask the Mask, aMask Mask.", "x  tab  y\ttab", "  leading and trailing  ", "ÀB ß ǅ İ", "AbcDef GhiJ"]


@pytest.mark.parametrize("name", sorted(PRE))
def test_pre_tokenizers(name):
    compare_json(variant(pre=PRE[name]), NASTY + EXTRA)


@pytest.mark.parametrize("name", sorted(NORM))
def test_normalizers(name):
    compare_json(variant(norm=NORM[name]), NASTY + EXTRA)


@pytest.mark.parametrize(
    "post",
    [
        None,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
)
def test_post_processors(post):
    compare_json(variant(pre=PRE["bytelevel_prefix_only"], post=post), NASTY + EXTRA)


_combos = [("whitespace", "nfd"), ("merged_next", "lower"), ("invert", "prepend"), ("digits_individual", "seq"), ("empty_matches", "strip"), ("string_pattern", "replace")]


@pytest.mark.parametrize("pre, norm", _combos)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=_text)
def test_hypothesis_components(pre, norm, text):
    compare_json(variant(pre=PRE[pre], norm=NORM[norm]), [text])


@pytest.mark.slow
@pytest.mark.parametrize("pre", sorted(PRE))
@pytest.mark.parametrize("norm", [None, "nfd", "seq", "replace_delete", "prepend"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=_text)
def test_hypothesis_components_long(pre, norm, text):
    compare_json(variant(pre=PRE[pre], norm=NORM[norm] if norm else None), [text])
