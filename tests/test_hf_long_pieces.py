"""Long single pieces through HF merge-list semantics (issue 4, "superbpe" configuration:
Digits + Split(digit groups) + ByteLevel(use_regex=false), so a run of text without digits
is one piece): supertok against HF ``tokenizers`` on runs of CJK, emoji ZWJ sequences,
Cyrillic, Greek, Georgian, Tamil, letters and base64, and on mixtures of them with spaces
and newlines. These exercise the cut-at-safe-pairs path, the atomic characters of
``merge_chars`` and the heap merge of pieces too long for the linear scan.

The tokenizers are built from the bundled cl100k ranks (``Tokenizer.from_tiktoken``, merges
recovered from the ranks), so no corpus is needed.
"""

from __future__ import annotations

import functools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok

tokenizers = pytest.importorskip("tokenizers")

DIGIT_GROUPS = r"(?=(\d{3})+(?!\d))"

_ALPHABETS = [
    "".join(chr(c) for c in range(0x4E00, 0x4E00 + 3000)),  # CJK
    "".join(chr(c) for c in range(0x3041, 0x3097)) + "。、",  # hiragana
    "\U0001f468\u200d\U0001f469\U0001f467\U0001f466\ufe0f\U0001f3fd\U0001f600",  # emoji, ZWJ
    "приветмирабвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ",
    "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
    "கஙசஞடணதநபமயரலவழளறன்ாிீுூெேைொோௌ",
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/",
    "中文 日本語 한국어 Ελληνικά русский \n",
    "e\u0301\u00e9\u3000\u00a0 x",
]


def _json(config: str) -> str:
    j = json.loads(supertok.Tokenizer.from_tiktoken(supertok.get_encoding("cl100k_base")).to_json())
    if config == "superbpe":
        j["pre_tokenizer"] = {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": False},
                {"type": "Split", "pattern": {"Regex": DIGIT_GROUPS}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        }
        j["model"]["ignore_merges"] = False
    elif config == "whole":
        # no pre-tokenizer split at all: every input is one piece
        j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
        j["model"]["ignore_merges"] = False
    else:
        raise ValueError(config)
    return json.dumps(j)


@functools.lru_cache(maxsize=None)
def _pair(config: str):
    js = _json(config)
    return supertok.Tokenizer.from_str(js), tokenizers.Tokenizer.from_str(js)


def _check(config: str, text: str) -> None:
    ours, hf = _pair(config)
    e = hf.encode(text, add_special_tokens=False)
    assert ours.encode(text, add_special_tokens=False) == e.ids, (config, text[:120])


@pytest.mark.parametrize("config", ["superbpe", "whole"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alphabet=st.sampled_from(_ALPHABETS), n=st.integers(1, 1500), seed=st.integers(0, 2**32))
def test_long_single_pieces_match_hf(config: str, alphabet: str, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    _check(config, "".join(rnd.choices(alphabet, k=n)))


@pytest.mark.parametrize("config", ["superbpe", "whole"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(st.sampled_from(_ALPHABETS), st.integers(1, 200)), min_size=1, max_size=12),
       seed=st.integers(0, 2**32))
def test_mixed_long_pieces_match_hf(config: str, parts: list[tuple[str, int]], seed: int) -> None:
    rnd = random.Random(seed)
    _check(config, "".join("".join(rnd.choices(a, k=k)) for a, k in parts))


@pytest.mark.parametrize("config", ["superbpe", "whole"])
def test_fixed_long_pieces_match_hf(config: str) -> None:
    rnd = random.Random(5)
    zwj = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    for text in [
        "".join(map(chr, rnd.choices(range(0x4E00, 0x9FA6), k=5000))),
        zwj * 400,
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=20000)),
        "й" * 3000,
        "中" * 3000,
        "\U0001f600" * 2000,
    ]:
        _check(config, text)
