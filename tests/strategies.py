"""Hypothesis strategies biased toward text that breaks tokenizers.

Shared by the test modules: ``from strategies import nasty_text, nasty_bytes``.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

# Fragments that exercise every branch of the known split patterns: Unicode whitespace
# (U+3000, NBSP, NEL, line/paragraph separators), combining marks, case classes (Lt, Lm,
# Lo), CJK, emoji ZWJ sequences, flags, digits of several scripts, contractions in several
# cases, `\r\n`, `\n/`, special-token literals, lone surrogates, control characters.
FRAGMENTS = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r", "\r\n", "\r\n\r\n", " \n", "\n ", "\x0b", "\x0c",
    "\x85", "\xa0", "\u1680", "\u2000", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f",
    "\u205f", "\u3000", "\u3000\u3000", "\u200b", "\u200d", "\ufeff", "\u180e",
    "'s", "'S", "'t", "'T", "'re", "'RE", "'ve", "'Ve", "'m", "'M", "'ll", "'LL", "'d", "'D",
    "n't", "N'T", "\u2019s", "'", "''", "'x",
    "e\u0301", "\u0301", "a\u0308\u0323", "\u0915\u094d\u0937", "\u0e01\u0e34", "\u05e9\u05c1",
    "Hello", "hello", "HELLO", "HelloWORLD", "hELLO", "\u01c5", "\u01c5a", "\u02b0", "\u02b0a",
    "\u00aa", "\u1e9e", "\u0130", "\u03a3\u03c3\u03c2", "\u0401\u0451",
    "\u6f22\u5b57", "\u30c6\u30b9\u30c8", "\u4e2d\u6587\u6d4b\u8bd5", "\ud55c\uad6d\uc5b4",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f1fa\U0001f1f8", "\U0001f600", "\U0001f44d\U0001f3fd", "\u2764\ufe0f",
    "0", "1", "12", "123", "1234", "1234567", "3.14", "1,000,000", "\u0663\u0664\u0665",
    "\u00bd", "\u216b", "\u2460", "\uff11\uff12",
    "!", "?", ".", "...", "!!!???", ",", ";", ":", ": ", "/", "//", "\n/", "/\n", "->", "=>",
    "()", "{}", "[]", "#", "@", "$", "%", "&", "*", "-", "--", "\u2014", "\u2026", "`", "```",
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>",
    "<|", "|>", "<|endoftext", "endoftext|>",
    "\ud800", "\udfff", "\ud83d\ude00", "\ud83d", "\x00", "\x01", "\x7f", "\ufffd",
    "def f(x):\n    return x\n", "    ", "\t\t", "if a and b:\n\tpass",
]

_fragment = st.sampled_from(FRAGMENTS)
_char = st.characters(codec=None, exclude_categories=())
_word = st.text(alphabet=st.characters(categories=["L", "M", "N"]), min_size=1, max_size=8)


@st.composite
def _run(draw: st.DrawFn) -> str:
    c = draw(st.sampled_from([" ", "x", "a", "0", "9", "\n", "\r\n", "\t", "\u3000", "\xa0", "e\u0301",
                              "\u6f22", "\U0001f600", "'s", "!", "-", "ab", " a", "\n "]))
    n = draw(st.integers(1, 400))
    return c * n


nasty_text = st.one_of(
    st.text(),
    st.lists(st.one_of(_fragment, _fragment, _word, _char, _run()), max_size=30).map("".join),
)
"""Mostly short strings built from nasty fragments, plus plain ``st.text()``."""

long_runs = _run()


@st.composite
def nasty_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or UTF-8 of nasty text with bytes cut or spliced in."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    b = draw(nasty_text).encode("utf-8", "surrogatepass")
    if b and draw(st.booleans()):
        i = draw(st.integers(0, len(b)))
        j = draw(st.integers(i, min(len(b), i + 3)))
        b = b[:i] + draw(st.binary(max_size=3)) + b[j:]
    return b


def mixed_text(n: int, seed: int, frags: list[str]) -> str:
    """About ``n`` characters made of ``frags`` drawn at random (seeded, deterministic)."""
    rnd = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n:
        f = rnd.choice(frags)
        parts.append(f)
        size += len(f)
    return "".join(parts)
