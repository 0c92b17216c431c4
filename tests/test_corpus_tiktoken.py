"""Every document of the shared corpora encodes to exactly tiktoken's ids (0 mismatches),
for all bundled encodings. Skips cleanly when the corpora are absent."""

from __future__ import annotations

import glob
import json
import os

import pytest

import supertok
from conftest import CORPUS_DIR, tiktoken_reference

NAMES = ["cl100k_base", "o200k_base", "r50k_base"]


def _documents() -> dict[str, list[str]]:
    if not os.path.isdir(CORPUS_DIR):
        pytest.skip(f"corpus directory {CORPUS_DIR} not present")
    docs: dict[str, list[str]] = {}
    for name in ("en.txt", "code.txt"):
        p = os.path.join(CORPUS_DIR, name)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                # documents are separated by blank lines (en) / are whole files (code);
                # paragraphs keep their trailing newlines so whitespace rules are exercised
                text = f.read()
            docs[name] = [d for d in text.split("\n\n") if d]
    ml = sorted(glob.glob(os.path.join(CORPUS_DIR, "multilingual", "*.txt")))
    for p in ml:
        with open(p, encoding="utf-8") as f:
            docs[os.path.relpath(p, CORPUS_DIR)] = f.read().splitlines(keepends=True)
    p = os.path.join(CORPUS_DIR, "parallel.jsonl")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            docs["parallel.jsonl"] = [v for line in f for v in json.loads(line).values()]
    if not docs:
        pytest.skip("no corpus files present")
    return docs


@pytest.fixture(scope="module")
def documents() -> dict[str, list[str]]:
    return _documents()


def _compare(name: str, documents: dict[str, list[str]], step: int) -> None:
    ours = supertok.get_encoding(name)
    ref = tiktoken_reference(name)
    mismatches = []
    for source, docs in documents.items():
        docs = docs[::step]
        got = ours.encode_ordinary_batch(docs, num_threads=2)
        expected = ref.encode_ordinary_batch(docs, num_threads=2)
        bad = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
        if bad:
            mismatches.append((source, len(bad), docs[bad[0]][:200]))
    assert not mismatches, mismatches


@pytest.mark.parametrize("name", NAMES)
def test_sampled_documents_match_tiktoken(name: str, documents: dict[str, list[str]]) -> None:
    """Every 20th document of every corpus file (fast; the full sweep is marked slow)."""
    _compare(name, documents, step=20)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_document_matches_tiktoken(name: str, documents: dict[str, list[str]]) -> None:
    _compare(name, documents, step=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_whole_files_match_tiktoken(name: str) -> None:
    """Whole corpus files as single strings (long documents, all boundary cases at once)."""
    ours = supertok.get_encoding(name)
    ref = tiktoken_reference(name)
    files = [os.path.join(CORPUS_DIR, "code.txt")] + sorted(glob.glob(os.path.join(CORPUS_DIR, "multilingual", "*.txt")))[:8]
    files = [f for f in files if os.path.exists(f)]
    if not files:
        pytest.skip("corpus not present")
    for f in files:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all"), f
