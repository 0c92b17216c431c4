"""The parallel list-returning paths (issue 3, targets 3 and 5).

``encode_batch`` / ``encode_ordinary_batch`` on several threads hand finished rows to the
calling thread, which turns them into lists in order while the pool keeps encoding (rows
untracked from the cyclic GC until the batch is complete); ``encode_ordinary_parallel``
cuts one long text into blocks of ~128 KB whose ids the calling thread appends to one
list's item array as they finish. These tests check the results against the sequential
calls (order, empty and huge documents, fewer documents than threads, errors in the
middle of a batch), that the returned lists are ordinary, GC-tracked lists that own their
items, and that the GIL is released.
"""

from __future__ import annotations

import gc
import random
import sys
import threading
import time
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok

from conftest import require_corpus, tiktoken_reference
from strategies import mixed_text, nasty_text

THREADS = (1, 2, 3, 8)


def _text(n: int, seed: int) -> str:
    """About ``n`` characters of mixed prose, code, CJK, emoji and whitespace runs."""
    return mixed_text(n, seed, ["Hello world. ", "don't ", "\n", "\n\n", "  indented\n", "x = f(y)\n", "\n/p", "\u65e5\u672c\u8a9e",
                                "\u3000", "123456 ", "e\u0301", "\r\n", "\U0001f468\u200d\U0001f469 ", "a" * 200, " " * 40, "ABC def "])


def _mixed_batch() -> list[str]:
    """Huge documents among tiny and empty ones."""
    rnd = random.Random(7)
    docs = []
    for i in range(60):
        kind = rnd.random()
        if kind < 0.15:
            docs.append("")
        elif kind < 0.5:
            docs.append(_text(rnd.randint(1, 40), i))
        elif kind < 0.9:
            docs.append(_text(rnd.randint(500, 9000), i))
        else:
            docs.append(_text(rnd.randint(200_000, 400_000), i))
    return docs


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_batches_keep_order_with_huge_tiny_and_empty_documents(name: str) -> None:
    enc = supertok.get_encoding(name)
    docs = _mixed_batch()
    want = [enc.encode_ordinary(d) for d in docs]
    for n in THREADS:
        assert enc.encode_ordinary_batch(docs, num_threads=n) == want
        assert enc.encode_batch(docs, num_threads=n) == want
        assert enc.encode_batch(docs, num_threads=n, disallowed_special=()) == want


def test_batches_smaller_than_the_thread_count() -> None:
    enc = supertok.get_encoding("o200k_base")
    for docs in ([], [""], ["x"], ["", ""], ["a b", _text(300_000, 1)], [_text(300_000, 2), ""]):
        want = [enc.encode_ordinary(d) for d in docs]
        for n in THREADS:
            assert enc.encode_ordinary_batch(docs, num_threads=n) == want
            assert enc.encode_batch(docs, num_threads=n) == want


def test_batch_raises_the_first_failing_documents_error() -> None:
    """Two documents with different disallowed special tokens: whichever thread encodes
    which, the error raised is the earlier document's, and the pool keeps working."""
    enc = supertok.get_encoding("cl100k_base")
    docs = _mixed_batch()[:40]
    for first, second in ((0, 1), (3, 30), (17, 18), (38, 39)):
        batch = list(docs)
        batch[first] += "<|fim_prefix|>"
        batch[second] += "<|endoftext|>"
        for n in THREADS:
            with pytest.raises(ValueError, match="fim_prefix"):
                enc.encode_batch(batch, num_threads=n)
    want = [enc.encode_ordinary(d) for d in docs]
    for n in THREADS:
        assert enc.encode_batch(docs, num_threads=n) == want


def test_batch_rows_are_tracked_lists_and_cycles_through_them_are_collected() -> None:
    enc = supertok.get_encoding("o200k_base")
    docs = [_text(2000, s) for s in range(1500)]  # more rows than generation 0's threshold
    for n in (1, 2):
        rows = enc.encode_ordinary_batch(docs, num_threads=n)
        assert all(type(r) is list and gc.is_tracked(r) for r in rows)

        class Node:
            pass

        node = Node()
        row = rows[700]
        row.append(node)
        node.row = row  # type: ignore[attr-defined]
        alive = weakref.ref(node)
        del rows, row, node
        gc.collect()
        assert alive() is None


def _ref_counts(enc: supertok.Encoding, text: str, make) -> None:
    """Building a result takes exactly one reference per item, and freeing it gives
    them all back."""
    probe = enc.encode_ordinary(text)
    x = max(probe[: 1000])  # an id above 256: a shared int object, not a small int
    assert x > 256
    base = sys.getrefcount(x)
    res = make()
    k = sum(1 for v in res if v is x)
    assert k > 0 and sys.getrefcount(x) == base + k
    del res
    assert sys.getrefcount(x) == base


def _big_batch() -> list[str]:
    """~6.9 MB in 862 documents of ~8 KB, like the benchmark's en.txt batch."""
    base = _text(300_000, 11)
    return [base[(k * 7919) % 290_000 :][:8000] for k in range(862)]


def test_large_batches_use_few_caller_slices() -> None:
    """On two threads the calling thread encodes slices of a quarter of what is left
    (half its share; 64 KB to 2 MB): 15 slices at most for this batch even if the pool
    thread encoded nothing, where fixed 128 KB slices took ~27 when the caller encoded
    half of it. Zero slices would mean the batch did not take the multi-threaded path."""
    from supertok import _core

    enc = supertok.get_encoding("o200k_base")
    docs = _big_batch()
    want = enc.encode_ordinary_batch(docs, num_threads=1)
    assert _core._last_caller_slices() == 0
    for _ in range(3):
        assert enc.encode_ordinary_batch(docs, num_threads=2) == want
        assert 1 <= _core._last_caller_slices() <= 16
        assert enc.encode_batch(docs, num_threads=2) == want
        assert 1 <= _core._last_caller_slices() <= 16
    text = "".join(docs[:500])
    assert enc.encode_ordinary_parallel(text, num_threads=2) == enc.encode_ordinary(text)
    assert _core._last_caller_slices() >= 1


def test_large_batch_raises_the_first_failing_documents_error() -> None:
    """Errors inside the caller's first (large) slice, in the middle and near the end."""
    enc = supertok.get_encoding("cl100k_base")
    docs = _big_batch()
    for first, second in ((3, 4), (2, 700), (430, 431), (850, 860)):
        batch = list(docs)
        batch[first] += "<|fim_prefix|>"
        batch[second] += "<|endoftext|>"
        for n in (2, 3):
            with pytest.raises(ValueError, match="fim_prefix"):
                enc.encode_batch(batch, num_threads=n)
    assert enc.encode_batch(docs[:50], num_threads=2) == [enc.encode_ordinary(d) for d in docs[:50]]


@pytest.mark.parametrize("text", ["", "a", "hello world " * 3000, _text(50_000, 9)])
def test_encoder_lists_are_ordinary_lists(text: str) -> None:
    """Id lists get their item array from PyMem_Malloc (not PyList_New's calloc): they
    must behave like any list, whatever their size."""
    enc = supertok.get_encoding("o200k_base")
    want = list(enc.encode_ordinary(text))
    for got in (enc.encode_ordinary(text), enc.encode_ordinary_batch([text, text], num_threads=2)[1],
                enc.encode_batch([text] * 3, num_threads=1)[2]):
        assert type(got) is list and got == want and len(got) == len(want)
        assert sys.getsizeof(got) >= sys.getsizeof([]) + 8 * len(got)
        got.append(-1)
        got.extend(range(1000))
        assert got[len(want)] == -1
        del got[len(want):]
        assert got == want
        got.insert(0, -2)
        assert got.pop(0) == -2
        got.sort()
        assert got == sorted(want)
        got.clear()
        assert got == []
    if len(want) > 0 and max(want) > 256:
        _ref_counts(enc, text, lambda: enc.encode_ordinary(text))


def test_parallel_result_is_an_ordinary_list() -> None:
    enc = supertok.get_encoding("o200k_base")
    text = _text(700_000, 3)
    want = enc.encode_ordinary(text)
    got = enc.encode_ordinary_parallel(text, num_threads=2)
    assert type(got) is list and gc.is_tracked(got) and got == want
    # the list's item array came from the blocks: it must behave like any list's
    got.extend(range(100_000))
    del got[-100_000:]
    got[10:20] = []
    got.insert(0, -1)
    assert got[0] == -1 and got[1:11] == want[:10] and got[11:] == want[20:]
    got.sort()
    assert sys.getsizeof(got) > 8 * len(got)
    _ref_counts(enc, text, lambda: enc.encode_ordinary_parallel(text, num_threads=3))
    _ref_counts(enc, text[:20_000], lambda: enc.encode_ordinary_batch([text[:20_000]] * 30, num_threads=2)[7])


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base", "r50k_base"])
def test_parallel_blocks_at_every_size(name: str) -> None:
    """Texts of one to many blocks, blocks ending in every kind of safe boundary, and
    texts with no safe boundary at all (one range: the sequential path)."""
    enc = supertok.get_encoding(name)
    texts = [_text(n, n) for n in (100_000, 140_000, 270_000, 1_000_000)]
    texts.append("\u6f22\u5b57\u30c6\u30b9\u30c8" * 60_000)  # no ASCII at all
    texts.append("x" * 600_000)  # no cut position
    texts.append(("word. " * 30_000 + "\n") * 4)
    for text in texts:
        want = enc.encode_ordinary(text)
        for n in THREADS:
            assert enc.encode_ordinary_parallel(text, num_threads=n) == want


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_parallel_defers_rare_words_across_blocks(name: str) -> None:
    """Rare words (non-token pieces the piece loop defers, up to 256 per batch) are
    thousands per ~128 KB block, so every block holds several deferral batches and every
    block boundary cuts the queue of the pieces before it; new words (merged) and repeated
    ones (piece-cache hits), Latin and Cyrillic, next to tokens and punctuation."""
    enc = supertok.get_encoding(name)
    rnd = random.Random(11)
    letters = "qxzjkvwy\u0436\u0449\u044a\u0444"
    pool = ["".join(rnd.choice(letters) for _ in range(rnd.randint(3, 9))) for _ in range(3000)]
    parts = []
    while sum(map(len, parts)) < 600_000:
        w = rnd.choice(pool) if rnd.random() < 0.6 else "".join(rnd.choice(letters) for _ in range(rnd.randint(3, 12)))
        parts.append(rnd.choice([" ", " the ", ", ", ".\n", " of "]) + w)
    text = "".join(parts)
    want = enc.encode_ordinary(text)
    assert want == tiktoken_reference(name).encode_ordinary(text)
    for n in (2, 3):
        assert enc.encode_ordinary_parallel(text, num_threads=n) == want


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nasty_text, min_size=1, max_size=8), st.integers(2, 4))
def test_parallel_on_nasty_text(frags: list[str], threads: int) -> None:
    """Nasty fragments repeated into a text of several blocks, with a separator after
    each copy that may or may not make a safe cut."""
    enc = supertok.get_encoding("o200k_base")
    unit = "\n".join(frags) + " end.\n"
    text = unit * (300_000 // max(1, len(unit)) + 1)
    try:
        want = enc.encode_ordinary(text)
    except ValueError:
        return
    assert enc.encode_ordinary_parallel(text, num_threads=threads) == want


def test_parallel_and_batches_match_tiktoken_on_corpus() -> None:
    path = require_corpus("en.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()[:1_500_000]
    enc = supertok.get_encoding("o200k_base")
    ref = tiktoken_reference("o200k_base")
    assert enc.encode_ordinary_parallel(text, num_threads=2) == ref.encode_ordinary(text)
    docs = [text[i : i + 8000] for i in range(0, len(text), 8000)]
    assert enc.encode_ordinary_batch(docs, num_threads=2) == ref.encode_ordinary_batch(docs, num_threads=1)


def test_gil_is_released_by_the_parallel_paths() -> None:
    enc = supertok.get_encoding("o200k_base")
    text = _text(3_000_000, 5)
    docs = [text[i : i + 8000] for i in range(0, len(text), 8000)]
    ticks = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.01)
        counts = []
        for call in (lambda: enc.encode_ordinary_parallel(text, num_threads=2),
                     lambda: enc.encode_ordinary_batch(docs, num_threads=2)):
            before = ticks[0]
            call()
            counts.append(ticks[0] - before)
    finally:
        stop.set()
        th.join()
    # with the GIL held for the whole call the other thread could not run at all
    assert all(c > 10 for c in counts), counts


def test_concurrent_parallel_calls_from_several_python_threads() -> None:
    """Calls from several Python threads share the pool threads: each result must still
    be its own text's, complete and in order."""
    enc = supertok.get_encoding("o200k_base")
    texts = [_text(300_000 + 50_000 * i, 20 + i) for i in range(4)]
    docs = [[t[j : j + 5000] for j in range(0, len(t), 5000)] for t in texts]
    want = [enc.encode_ordinary(t) for t in texts]
    want_rows = [[enc.encode_ordinary(d) for d in ds] for ds in docs]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(3):
            if enc.encode_ordinary_parallel(texts[i], num_threads=2) != want[i]:
                errors.append(f"parallel {i}")
            if enc.encode_ordinary_batch(docs[i], num_threads=2) != want_rows[i]:
                errors.append(f"batch {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


_ERRORS_UNDER_LOAD = r"""
import supertok
enc = supertok.get_encoding("cl100k_base")
docs = ["some text " * 50 + "<|endoftext|>"] * 64 + ["x" * 20000 + "<|fim_prefix|>"] * 8
for rep in range(300):
    for n in (2, 3, 8):
        try:
            enc.encode_batch(docs, num_threads=n)
        except ValueError as e:
            assert "endoftext" in str(e), e
        else:
            raise AssertionError("no error")
print("ok")
"""


def test_batch_errors_on_pool_threads_do_not_deadlock() -> None:
    """Every document fails: the pool threads map their errors while the calling thread
    holds the GIL and waits for them (the mapping must not need the GIL). Run in a child
    process so that a deadlock fails the test instead of hanging the suite."""
    import subprocess

    try:
        out = subprocess.run([sys.executable, "-c", _ERRORS_UNDER_LOAD], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("encode_batch deadlocked on errors raised by pool threads")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
