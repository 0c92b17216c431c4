"""Shared fixtures: corpus location, reference tiktoken encodings built from the bundled files."""

from __future__ import annotations

import functools
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS_DIR = os.environ.get("SUPERTOK_CORPUS", os.path.join(ROOT, "..", "shared", "corpus"))
VOCAB_DIR = os.environ.get("SUPERTOK_VOCAB", os.path.join(ROOT, "..", "shared", "vocab"))

BUNDLED = ["cl100k_base", "o200k_base", "r50k_base", "gpt2"]


def corpus_path(name: str) -> str:
    return os.path.join(CORPUS_DIR, name)


def require_corpus(name: str) -> str:
    """Path of a shared corpus file; skips the test when it is absent."""
    p = corpus_path(name)
    if not os.path.exists(p):
        pytest.skip(f"corpus {p} not present")
    return p


@functools.lru_cache(maxsize=None)
def tiktoken_reference(name: str):
    """The real tiktoken Encoding for a bundled name, built from supertok's bundled
    .tiktoken file (so nothing is downloaded)."""
    tiktoken = pytest.importorskip("tiktoken")
    import tiktoken.load  # noqa: F401  (submodule, not imported by tiktoken itself)
    import supertok

    ours = supertok.get_encoding(name)
    from supertok.registry import DATA_DIR

    file = "r50k_base.tiktoken" if name in ("gpt2", "r50k_base") else f"{name}.tiktoken"
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(DATA_DIR, file))
    return tiktoken.Encoding(
        name,
        pat_str=ours._pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(ours._special_tokens),
    )
