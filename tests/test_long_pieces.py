"""Long single pieces against tiktoken: the chunk cache and the split atomic characters.

* periodic pieces (a random unit repeated, with random edits) make the chunked encoder's
  per-thread chunk cache hit, miss and collide; encodings alternate on one thread so the
  cache's owner keys are exercised;
* CJK runs over the whole unified-ideograph block (most characters are not tokens, so they
  start as the two parts of their isolated merge) mixed with other scripts, Hangul, kana,
  emoji ZWJ sequences, combining marks and invalid UTF-8 via ``encode_bytes`` paths.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok

from conftest import tiktoken_reference

NAMES = ["o200k_base", "cl100k_base", "r50k_base"]

_UNITS = [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",
    "-=",
    "=-=-*",
    "abc",
    "QUJD",
    "\u4e2d\u6587",
    "\u3042\u3044",
    "\ud55c\uad6d\uc5b4",
    "\u0915\u094d\u0937\u093f",
    "e\u0301",
    "\u00e9\u00e8",
]

# characters that keep a long run in one piece under the three patterns' letter or
# symbol classes (mixing the two classes splits pieces, which is fine too)
_CJK = [chr(c) for c in range(0x4E00, 0x9FA6)]
_MIX = [chr(c) for c in range(0x3040, 0x30FF)] + [chr(c) for c in range(0xAC00, 0xAC00 + 400)]


def _periodic(rnd: random.Random, n: int) -> str:
    """A random unit (from the list or random CJK/letters) repeated to ``n`` chars, with a
    few random characters spliced in."""
    if rnd.random() < 0.5:
        unit = rnd.choice(_UNITS)
    else:
        pool = _CJK if rnd.random() < 0.5 else list("abcdefghijklmnopqrstuvwxyz")
        unit = "".join(rnd.choices(pool, k=rnd.randint(1, 60)))
    text = list((unit * (n // len(unit) + 1))[:n])
    for _ in range(rnd.randint(0, 4)):
        text.insert(rnd.randrange(len(text) + 1), rnd.choice(_CJK + list("xyz") + _UNITS))
    return "".join(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(100, 6000), seed=st.integers(0, 2**32))
def test_periodic_long_pieces_match_tiktoken(n: int, seed: int) -> None:
    rnd = random.Random(seed)
    text = _periodic(rnd, n)
    # alternate the encodings on the same text: the chunk cache is shared by the thread
    for _ in range(2):
        for name in NAMES:
            got = supertok.get_encoding(name).encode_ordinary(text)
            assert got == tiktoken_reference(name).encode_ordinary(text), name


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 4000), seed=st.integers(0, 2**32), mix=st.floats(0, 0.3))
def test_cjk_runs_match_tiktoken(name: str, n: int, seed: int, mix: float) -> None:
    rnd = random.Random(seed)
    text = "".join(rnd.choice(_MIX) if rnd.random() < mix else rnd.choice(_CJK) for _ in range(n))
    ours, ref = supertok.get_encoding(name), tiktoken_reference(name)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
    # short pieces take the same atomic-character path
    words = " ".join(text[i : i + rnd.randint(1, 9)] for i in range(0, min(n, 400), 9))
    assert ours.encode_ordinary(words) == ref.encode_ordinary(words)


@pytest.mark.parametrize("name", NAMES)
def test_cjk_bytes_with_invalid_tail_match_tiktoken(name: str) -> None:
    rnd = random.Random(5)
    ours, ref = supertok.get_encoding(name), tiktoken_reference(name)
    for k in range(20):
        text = "".join(rnd.choices(_CJK, k=rnd.randint(1, 300))).encode()
        data = text + bytes([0xE4, 0xB8][: k % 3])
        assert ours._encode_bytes(data) == ref._encode_bytes(data)


_SCRIPTS = [_CJK, _MIX, list("abcdefghijklmnopqrstuvwxyz"), [chr(c) for c in range(0x0430, 0x0450)]]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(64, 3000),
    seed=st.integers(0, 2**32),
    weights=st.lists(st.integers(0, 10), min_size=4, max_size=4),
    garbage=st.integers(0, 8),
)
def test_segmented_long_pieces_match_tiktoken(name: str, n: int, seed: int, weights: list[int], garbage: int) -> None:
    """Long pieces of mixed scripts at every density of safe cuts (the segment-by-segment
    encoder and its thresholds), as text and as bytes with invalid UTF-8 spliced in."""
    rnd = random.Random(seed)
    w = [x + 1e-9 for x in weights]
    text = "".join(rnd.choice(rnd.choices(_SCRIPTS, weights=w)[0]) for _ in range(n))
    ours, ref = supertok.get_encoding(name), tiktoken_reference(name)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
    data = bytearray(text.encode())
    for _ in range(garbage):
        data.insert(rnd.randrange(len(data) + 1), rnd.choice([0xE4, 0xB8, 0x80, 0xF0, 0x9F, 0xFF]))
    assert ours._encode_bytes(bytes(data)) == ref._encode_bytes(bytes(data))


def test_every_cjk_character_alone_and_between_others() -> None:
    # each ideograph once, in a context of random neighbours (one long piece)
    rnd = random.Random(11)
    chars = _CJK[:]
    rnd.shuffle(chars)
    text = "".join(chars)
    for name in ["o200k_base", "cl100k_base"]:
        assert supertok.get_encoding(name).encode_ordinary(text) == tiktoken_reference(
            name
        ).encode_ordinary(text)


@pytest.mark.parametrize("kind", ["cjk", "letters"])
def test_pieces_longer_than_64k(kind: str) -> None:
    # one random piece of ~100 KB: long enough that the encoder loads tables in bulk first
    # (backtrack::SWEEP_MIN; the segmented CJK path and the chunked ASCII path)
    rnd = random.Random(12)
    if kind == "cjk":
        text = "".join(rnd.choices(_CJK, k=34_000))
    else:
        text = "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=100_000))
    assert len(text.encode()) >= 1 << 16
    for name in NAMES:
        assert supertok.get_encoding(name).encode_ordinary(text) == tiktoken_reference(
            name
        ).encode_ordinary(text)


# four-byte characters: emoji blocks (symbols: a run with ZWJ, VS16 and skin tones stays
# one piece), supplementary CJK and mathematical letters (letters: one piece per run)
_EMOJI = [chr(c) for c in list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F700))]
_EMOJI += [chr(c) for c in range(0x1F900, 0x1FA00)]
_JOINERS = ["\u200d", "\u200d", "\ufe0f", "\U0001f3fb", "\U0001f3fd", "\U0001f3ff", "\u2764"]
_LETTERS4 = [chr(c) for c in list(range(0x20000, 0x20400)) + list(range(0x1D400, 0x1D500))]


def _random_zwj(rnd: random.Random, n: int) -> str:
    """Random (non-periodic) emoji ZWJ sequences, skin tones and presentation selectors,
    with a few ASCII symbols, CJK and supplementary letters spliced in."""
    out: list[str] = []
    while len(out) < n:
        r = rnd.random()
        if r < 0.6:
            out.append(rnd.choice(_EMOJI))
        elif r < 0.9:
            out.append(rnd.choice(_JOINERS))
        elif r < 0.95:
            out.append(rnd.choice(_LETTERS4 + _CJK))
        else:
            out.append(rnd.choice("-=*#!?"))
    return "".join(out)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**32))
def test_random_emoji_zwj_runs_match_tiktoken(name: str, n: int, seed: int) -> None:
    text = _random_zwj(random.Random(seed), n)
    ours = supertok.get_encoding(name)
    assert ours.encode_ordinary(text) == tiktoken_reference(name).encode_ordinary(text)


def test_every_emoji_and_supplementary_letter_in_one_run() -> None:
    # each four-byte character of the lists once, joined by ZWJ or not, in random order
    rnd = random.Random(12)
    for pool in (_EMOJI, _LETTERS4):
        chars = pool[:]
        rnd.shuffle(chars)
        text = "".join(c + ("\u200d" if pool is _EMOJI and rnd.random() < 0.4 else "") for c in chars)
        for name in NAMES:
            assert supertok.get_encoding(name).encode_ordinary(text) == tiktoken_reference(
                name
            ).encode_ordinary(text), name
