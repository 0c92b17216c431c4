"""Bundled encodings: cl100k_base, o200k_base, r50k_base (alias gpt2).

The vocabularies ship inside the package (``supertok/data``); nothing is downloaded.
Split patterns and special tokens are exactly tiktoken's (``tiktoken_ext/openai_public.py``).
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from supertok.core import Encoding

__all__ = ["get_encoding", "list_encoding_names", "register_encoding", "DATA_DIR"]

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

R50K_PAT_STR = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
CL100K_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


def _path(file: str) -> str:
    return os.path.join(DATA_DIR, file)


def _r50k(name: str) -> Encoding:
    return Encoding._from_tiktoken_file(
        name,
        _path("r50k_base.tiktoken"),
        pat_str=R50K_PAT_STR,
        special_tokens={ENDOFTEXT: 50256},
        explicit_n_vocab=50257,
    )


def _cl100k() -> Encoding:
    return Encoding._from_tiktoken_file(
        "cl100k_base",
        _path("cl100k_base.tiktoken"),
        pat_str=CL100K_PAT_STR,
        special_tokens={
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    )


def _o200k() -> Encoding:
    return Encoding._from_tiktoken_file(
        "o200k_base",
        _path("o200k_base.tiktoken"),
        pat_str=O200K_PAT_STR,
        special_tokens={ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    )


ENCODING_CONSTRUCTORS: dict[str, Callable[[], Encoding]] = {
    "gpt2": lambda: _r50k("gpt2"),
    "r50k_base": lambda: _r50k("r50k_base"),
    "cl100k_base": _cl100k,
    "o200k_base": _o200k,
}

_ENCODINGS: dict[str, Encoding] = {}
_LOCK = threading.RLock()


def get_encoding(encoding_name: str) -> Encoding:
    """Return the bundled encoding ``encoding_name`` (cached; loading is thread-safe).

    Raises:
        ValueError: the name is not a bundled encoding (the message lists the available ones).
    """
    if not isinstance(encoding_name, str):
        raise TypeError(f"encoding_name must be str, not {type(encoding_name).__name__}")
    enc = _ENCODINGS.get(encoding_name)
    if enc is not None:
        return enc
    with _LOCK:
        enc = _ENCODINGS.get(encoding_name)
        if enc is not None:
            return enc
        ctor = ENCODING_CONSTRUCTORS.get(encoding_name)
        if ctor is None:
            raise ValueError(
                f"Unknown encoding {encoding_name!r}. "
                f"Available encodings: {', '.join(list_encoding_names())}. "
                "Build other encodings with supertok.Encoding(...) and supertok.load_tiktoken_bpe(path)."
            )
        enc = ctor()
        _ENCODINGS[encoding_name] = enc
        return enc


def list_encoding_names() -> list[str]:
    """Names accepted by :func:`get_encoding`."""
    return list(ENCODING_CONSTRUCTORS)


def register_encoding(name: str, constructor: Callable[[], Encoding]) -> None:
    """Make ``get_encoding(name)`` build (lazily) and cache ``constructor()``."""
    with _LOCK:
        if name in ENCODING_CONSTRUCTORS:
            raise ValueError(f"encoding {name!r} is already registered")
        ENCODING_CONSTRUCTORS[name] = constructor
