"""The fast encoder paths of issue 3 against their references.

* the hand-written lexers (chosen automatically for the bundled patterns) against the
  general fancy-regex path (the same pattern wrapped in ``(?:...)``, which no lexer
  recognises) and against tiktoken;
* the linear-time encoders of long pieces (chunked merge with checked seams, backtracking)
  against tiktoken on long one-piece inputs;
* ``encode_ordinary_parallel`` against ``encode_ordinary``;
* the batch and numpy paths, and the GIL being released while encoding.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok
from supertok import _core
from supertok.registry import DATA_DIR

from conftest import require_corpus, tiktoken_reference
from strategies import mixed_text, nasty_text

NAMES = ["o200k_base", "cl100k_base", "r50k_base"]


@functools.lru_cache(maxsize=None)
def regex_path(name: str) -> supertok.Encoding:
    """``name`` with its pattern wrapped in a group: same language, general regex path."""
    ours = supertok.get_encoding(name)
    return supertok.Encoding(
        f"{name}-regex",
        pat_str=f"(?:{ours._pat_str})",
        mergeable_ranks=ours._mergeable_ranks,
        special_tokens=dict(ours._special_tokens),
    )


def _fix(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=nasty_text)
def test_lexer_equals_regex_path_and_tiktoken(name: str, text: str) -> None:
    ours = supertok.get_encoding(name)
    got = ours.encode_ordinary(text)
    assert got == regex_path(name).encode_ordinary(text)
    assert got == tiktoken_reference(name).encode_ordinary(_fix(text))


_LONG_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz",
    "ab",
    "x",
    " ",
    "\u3000",
    "0123456789",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "".join(chr(c) for c in range(0x4E00, 0x4E00 + 500)),
    "\U0001f468\u200d\U0001f469\U0001f467\U0001f466\ufe0f\U0001f3fd",
    "\u043f\u0440\u0438\u0432\u0435\u0442\u043c\u0438\u0440",
    "-=",
    "\u0915\u094d\u0937\u093f",
    "e\u0301",
]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alphabet=st.sampled_from(_LONG_ALPHABETS), n=st.integers(50, 3000), seed=st.integers(0, 2**32))
def test_long_pieces_match_tiktoken(name: str, alphabet: str, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    text = "".join(rnd.choices(alphabet, k=n))
    assert supertok.get_encoding(name).encode_ordinary(text) == tiktoken_reference(name).encode_ordinary(text)


_SHORT_PIECE_CHARS = "ABZabz0179+/='stl\r\n \u0663\u0301\u00e9\u00c9"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=_SHORT_PIECE_CHARS, max_size=400))
def test_short_random_pieces_match_tiktoken(name: str, text: str) -> None:
    """Random short pieces (base64 with the characters that end or continue its runs:
    contractions, a non-ASCII digit, a combining mark, accented letters): the one-word run
    count of o200k's word path and the direct table of 1-2 byte pieces."""
    assert supertok.get_encoding(name).encode_ordinary(text) == tiktoken_reference(name).encode_ordinary(text)


def _adversarial(scale: int) -> list[str]:
    rnd = random.Random(7)
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    zwj = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    return [
        "x" * (10 * scale),
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=scale)),
        " " * scale,
        "".join(rnd.choices("0123456789", k=scale)),
        "".join(rnd.choices(b64, k=scale)),
        "".join(map(chr, rnd.choices(range(0x4E00, 0x9FA6), k=scale // 3))),
        zwj * (scale // 25),
        "ab" * scale,
        "\n" * scale,
        ". " * scale,
    ]


@pytest.mark.parametrize("name", NAMES)
def test_adversarial_inputs_match_tiktoken(name: str) -> None:
    ours, ref = supertok.get_encoding(name), tiktoken_reference(name)
    for text in _adversarial(5000):
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_adversarial_inputs_full_size_match_tiktoken(name: str) -> None:
    ours, ref = supertok.get_encoding(name), tiktoken_reference(name)
    for text in _adversarial(100_000):
        assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


def _mixed_long_text(n: int, seed: int) -> str:
    return mixed_text(n, seed, ["Hello world. ", "don't ", "\n", "\n\n", "  indented\n", "x = f(y)\n", "//c\n", "\n/p",
                                "\u65e5\u672c\u8a9e", "\u3000", "123456 ", "e\u0301", "\t\tcode;\n", "'s ", "ABC def ",
                                "\r\n", "...", "\u2014", "\U0001f600 ", "a" * 300, " " * 50])


@pytest.mark.parametrize("name", NAMES)
def test_parallel_equals_sequential(name: str) -> None:
    enc = supertok.get_encoding(name)
    for seed in range(3):
        text = _mixed_long_text(400_000, seed)
        want = enc.encode_ordinary(text)
        for threads in (1, 2, 3, 8):
            assert enc.encode_ordinary_parallel(text, num_threads=threads) == want
    assert enc.encode_ordinary_parallel("", num_threads=2) == []
    assert enc.encode_ordinary_parallel("short text", num_threads=2) == enc.encode_ordinary("short text")


def test_parallel_on_regex_path_and_bad_arguments() -> None:
    enc = regex_path("cl100k_base")
    text = _mixed_long_text(300_000, 1)
    assert enc.encode_ordinary_parallel(text, num_threads=2) == supertok.get_encoding("cl100k_base").encode_ordinary(text)
    with pytest.raises(ValueError):
        enc.encode_ordinary_parallel("x", num_threads=0)
    with pytest.raises(TypeError):
        enc.encode_ordinary_parallel(b"x")  # type: ignore[arg-type]
    # lone surrogates are repaired exactly as in encode_ordinary
    s = "a\ud800b" * 10
    assert supertok.get_encoding("o200k_base").encode_ordinary_parallel(s) == supertok.get_encoding("o200k_base").encode_ordinary(s)


@pytest.mark.parametrize("corpus", ["en.txt", "code.txt"])
def test_parallel_on_corpus(corpus: str) -> None:
    path = require_corpus(corpus)
    with open(path, encoding="utf-8") as f:
        text = f.read()[:2_000_000]
    enc = supertok.get_encoding("o200k_base")
    assert enc.encode_ordinary_parallel(text, num_threads=4) == enc.encode_ordinary(text)


def test_batches_and_numpy_match_single_calls() -> None:
    np = pytest.importorskip("numpy")
    enc = supertok.get_encoding("o200k_base")
    texts = [_mixed_long_text(3000, s) for s in range(40)] + ["", "x"]
    want = [enc.encode_ordinary(t) for t in texts]
    for threads in (1, 2, 4):
        assert enc.encode_ordinary_batch(texts, num_threads=threads) == want
        assert enc.encode_batch(texts, num_threads=threads) == want
        ids, offs = enc.encode_batch_to_numpy(texts, num_threads=threads)
        assert ids.dtype == np.uint32 and offs.dtype == np.uint64
        assert [ids[offs[i] : offs[i + 1]].tolist() for i in range(len(texts))] == want
    arr = enc.encode_to_numpy(texts[0])
    assert arr.dtype == np.uint32 and arr.tolist() == want[0]


def test_batch_to_numpy_large_output_copied_in_parallel() -> None:
    """Over 1 MB of ids the rows are copied into the result by several threads, each a
    contiguous run of rows: the result must not depend on the thread count, including
    empty rows at the ends and at run boundaries."""
    np = pytest.importorskip("numpy")
    enc = supertok.get_encoding("o200k_base")
    body = [_mixed_long_text(4000, s) for s in range(400)]
    texts = ["", *body[:130], "", "", *body[130:], ""]
    want = [enc.encode_ordinary(t) for t in texts]
    assert sum(map(len, want)) * 4 > 1 << 20
    flat = np.fromiter((i for row in want for i in row), dtype=np.uint32)
    ends = np.cumsum([0] + [len(r) for r in want], dtype=np.uint64)
    for threads in (1, 2, 3, 8):
        ids, offs = enc.encode_batch_to_numpy(texts, num_threads=threads)
        assert np.array_equal(ids, flat) and np.array_equal(offs, ends)


def test_batch_error_in_any_row_raises_and_pool_recovers() -> None:
    """An error in one row (here a disallowed special token) raises, whichever thread
    encoded that row, and later batches on the same threads still work."""
    enc = supertok.get_encoding("cl100k_base")
    texts = [_mixed_long_text(2000, s) for s in range(30)]
    want = [enc.encode_ordinary(t) for t in texts]
    for threads in (2, 3, 8):
        for bad in (0, 1, 17, len(texts) - 1):
            batch = list(texts)
            batch[bad] = batch[bad] + "<|endoftext|>"
            with pytest.raises(ValueError, match="endoftext"):
                enc.encode_batch(batch, num_threads=threads)
        assert enc.encode_batch(texts, num_threads=threads) == want
        assert enc.encode_ordinary_batch(texts, num_threads=threads) == want


_RARE_LETTERS = "abcxyzqéüøłžščșğ" + "жщыэюяґї" + "აბგდეჟ" + "中文字龘鬱" + "가힣뷁"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.text(alphabet=_RARE_LETTERS, min_size=1, max_size=9), min_size=1, max_size=40),
    n=st.integers(1, 900),
    seed=st.integers(0, 2**32),
)
def test_deferred_non_token_pieces_match_tiktoken(name: str, words: list[str], n: int, seed: int) -> None:
    """The piece loop defers non-token pieces of <= 26 bytes in batches of 256 and moves
    their ids into place afterwards: texts of up to 900 mostly rare words (several
    batches, rare words adjacent, first and last) between frequent words, punctuation and
    special tokens (each special token ends a span, which places its deferred pieces)."""
    rng = random.Random(seed)
    glue = [" ", " the", ", ", ".\n", " of ", "", "<|endoftext|>", "  "]
    text = "".join(rng.choice(glue) + rng.choice(words) for _ in range(n))
    ours = supertok.get_encoding(name)
    ref = tiktoken_reference(name)
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    _core._clear_piece_cache()
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")


def test_piece_cache_does_not_change_results() -> None:
    enc = supertok.get_encoding("cl100k_base")
    text = _mixed_long_text(50_000, 3) + " antidisestablishmentarianism" * 50
    a = enc.encode_ordinary(text)
    _core._clear_piece_cache()
    b = enc.encode_ordinary(text)
    c = enc.encode_ordinary(text)
    assert a == b == c == tiktoken_reference("cl100k_base").encode_ordinary(text)


def test_gil_is_released_while_encoding() -> None:
    enc = supertok.get_encoding("o200k_base")
    text = "".join(random.Random(3).choices("abcdefghij ", k=3_000_000))
    ticks = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0)

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.01)
        before = ticks[0]
        t0 = time.perf_counter()
        enc.count(text)
        enc.encode_ordinary_batch([text[: len(text) // 2], text[len(text) // 2 :]], num_threads=2)
        elapsed = time.perf_counter() - t0
        during = ticks[0] - before
    finally:
        stop.set()
        th.join()
    # with the GIL held for the whole call the other thread could not run at all
    assert during > 10, (during, elapsed)


def test_bundled_data_dir_present() -> None:
    assert os.path.exists(os.path.join(DATA_DIR, "o200k_base.tiktoken"))
