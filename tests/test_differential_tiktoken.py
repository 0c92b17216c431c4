"""Differential tests: supertok.Encoding vs tiktoken 0.14 on nasty text, for every bundled
encoding. The default run uses a few hundred examples per test; ``pytest -m slow`` runs the
long version (>= 10,000 examples per encoding)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok
from conftest import tiktoken_reference
from strategies import long_runs, nasty_bytes, nasty_text

NAMES = ["cl100k_base", "o200k_base", "r50k_base"]
EXAMPLES = int(os.environ.get("SUPERTOK_HYPOTHESIS_EXAMPLES", "150"))
SLOW_EXAMPLES = int(os.environ.get("SUPERTOK_SLOW_EXAMPLES", "10000"))

fast = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
slow = settings(max_examples=SLOW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _pair(name: str):
    return supertok.get_encoding(name), tiktoken_reference(name)


def _outcome(f):
    try:
        return ("ok", f())
    except ValueError as e:  # disallowed special tokens
        return ("ValueError", str(e))


def check_text(name: str, text: str) -> None:
    ours, ref = _pair(name)
    expected = ref.encode_ordinary(text)
    assert ours.encode_ordinary(text) == expected
    assert ours.encode(text, disallowed_special=()) == expected
    assert ours.count(text, disallowed_special=()) == len(expected)
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert _outcome(lambda: ours.encode(text)) == _outcome(lambda: ref.encode(text))
    some = {"<|endoftext|>"}
    assert _outcome(lambda: ours.encode(text, allowed_special=some)) == _outcome(
        lambda: ref.encode(text, allowed_special=some)
    )
    # decoding what we produced gives the text back (modulo surrogate repair)
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert ours.decode(expected) == fixed


@pytest.mark.parametrize("name", NAMES)
@fast
@given(text=nasty_text)
def test_encode_matches_tiktoken(name: str, text: str) -> None:
    check_text(name, text)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(10, EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck))
@given(text=long_runs, prefix=st.sampled_from(["", " ", "a", "\n", "0", "'"]), suffix=st.sampled_from(["", " ", "a", "\n", "!", "0"]))
def test_long_runs_match_tiktoken(name: str, text: str, prefix: str, suffix: str) -> None:
    check_text(name, prefix + text + suffix)


@pytest.mark.parametrize("name", NAMES)
@fast
@given(data=nasty_bytes())
def test_encode_bytes_matches_tiktoken(name: str, data: bytes) -> None:
    ours, ref = _pair(name)
    got = ours.encode_bytes(data)
    assert got == ref._encode_bytes(data)
    assert ours.decode_bytes(got) == data


@pytest.mark.parametrize("name", NAMES)
@fast
@given(data=st.data())
def test_decode_matches_tiktoken(name: str, data: st.DataObject) -> None:
    ours, ref = _pair(name)
    valid = st.integers(0, ours.max_token_value).filter(lambda t: _decodable(ref, t))
    tokens = data.draw(st.lists(valid, max_size=40))
    assert ours.decode_bytes(tokens) == ref.decode_bytes(tokens)
    assert ours.decode(tokens) == ref.decode(tokens)
    assert ours.decode(tokens, errors="ignore") == ref.decode(tokens, errors="ignore")
    assert ours.decode_tokens_bytes(tokens) == ref.decode_tokens_bytes(tokens)
    # offsets need valid UTF-8: re-encode the decoded text, like tiktoken's own test
    tokens = ref.encode(ref.decode(tokens, errors="ignore"), allowed_special="all")
    assert ours.decode_with_offsets(tokens) == ref.decode_with_offsets(tokens)


def _decodable(ref, t: int) -> bool:
    try:
        ref.decode_single_token_bytes(t)
        return True
    except KeyError:
        return False


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(10, EXAMPLES // 3), deadline=None, suppress_health_check=list(HealthCheck))
@given(text=nasty_text)
def test_encode_with_unstable_matches_tiktoken(name: str, text: str) -> None:
    ours, ref = _pair(name)
    text = text[:40]
    a = _outcome(lambda: ours.encode_with_unstable(text, allowed_special="all"))
    b = _outcome(lambda: ref.encode_with_unstable(text, allowed_special="all"))
    if a[0] == "ok" and b[0] == "ok":
        assert a[1][0] == b[1][0]
        assert sorted(map(tuple, a[1][1])) == sorted(map(tuple, b[1][1]))
    else:
        assert a == b


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(10, EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(nasty_text, max_size=8))
def test_batch_and_numpy_match_tiktoken(name: str, batch: list[str]) -> None:
    np = pytest.importorskip("numpy")
    ours, ref = _pair(name)
    expected = [ref.encode(t, allowed_special="all") for t in batch]
    assert ours.encode_batch(batch, allowed_special="all") == expected
    assert ours.encode_batch(batch, allowed_special="all", num_threads=1) == expected
    assert ours.encode_ordinary_batch(batch) == [ref.encode_ordinary(t) for t in batch]
    ids, offsets = ours.encode_batch_to_numpy(batch, allowed_special="all")
    assert offsets.tolist() == [0] + list(__import__("itertools").accumulate(len(e) for e in expected))
    assert ids.tolist() == [t for e in expected for t in e]
    for t, e in zip(batch, expected):
        arr = ours.encode_to_numpy(t, allowed_special="all")
        assert arr.dtype == np.uint32 and arr.tolist() == e
    assert ours.decode_batch(expected) == [ref.decode(e) for e in expected]
    assert ours.decode_bytes_batch(expected) == [ref.decode_bytes(e) for e in expected]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@slow
@given(text=nasty_text)
def test_encode_matches_tiktoken_long_run(name: str, text: str) -> None:
    check_text(name, text)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@slow
@given(data=nasty_bytes())
def test_encode_bytes_matches_tiktoken_long_run(name: str, data: bytes) -> None:
    ours, ref = _pair(name)
    assert ours.encode_bytes(data) == ref._encode_bytes(data)

