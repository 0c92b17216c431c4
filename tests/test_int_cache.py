"""The shared ``int`` objects behind id lists (``rust/python/src/intcache.rs``).

Every list-returning call fills its list with new references to one ``int`` per token id,
created on first use and kept by the encoding (a slot array of object pointers). These
tests check that the objects really are shared across calls and paths (so a silent
fall-back to fresh ints fails), that the counts of references stay exact, that ints made
concurrently by several Python threads are the same objects, and that an encoding gives
its references back when it is freed.
"""

from __future__ import annotations

import gc
import sys
import threading

import supertok
from supertok import _core

PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _small_core() -> _core.CoreEncoding:
    """A fresh encoding (its own int cache) with tokens above 256."""
    ranks = {bytes([i]): i for i in range(256)}
    for w in (b"ab", b"cd", b"abcd", b" ab", b" abcd", b"ef", b"efef", b" efef", b"gh"):
        ranks[w] = len(ranks)
    return _core.CoreEncoding(ranks, {}, PAT)


TEXT = "abcd ab efef abcdgh efef ab cd gh " * 50


def test_lists_share_one_int_per_id_across_calls_and_paths() -> None:
    enc = supertok.get_encoding("o200k_base")
    text = "Hello world, shared ints! " * 20 + "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0 " * 20
    a = enc.encode_ordinary(text)
    assert any(x > 256 for x in a)
    others = [
        enc.encode_ordinary(text),
        enc.encode(text),
        enc.encode_ordinary_batch([text, text], num_threads=1)[1],
        enc.encode_ordinary_batch([text, text], num_threads=2)[1],
        enc.encode_ordinary_parallel(text, num_threads=2),
    ]
    for b in others:
        assert b == a
        assert all(x is y for x, y in zip(a, b) if x > 256)


def test_reference_counts_are_exact_and_released_with_the_encoding() -> None:
    core = _small_core()
    ids = core.encode_ordinary(TEXT)
    x = max(ids)
    assert x > 256
    del ids
    gc.collect()
    held = sys.getrefcount(x)  # ours, the argument's, and the cache's
    rows = [core.encode_ordinary(TEXT) for _ in range(3)]
    k = sum(1 for r in rows for v in r if v is x)
    assert k > 0 and sys.getrefcount(x) == held + k
    del rows
    assert sys.getrefcount(x) == held
    del core
    gc.collect()
    assert sys.getrefcount(x) == held - 1  # the freed encoding gave its reference back


def test_ints_created_by_concurrent_threads_are_shared() -> None:
    core = _small_core()
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        results.append(core.encode_ordinary(TEXT))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    first = results[0]
    for r in results[1:]:
        assert r == first
        assert all(x is y for x, y in zip(first, r))

