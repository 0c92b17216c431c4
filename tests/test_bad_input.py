"""Bad input gets a clear Python exception naming the problem, never a Rust panic."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok


def test_unknown_encoding_lists_available() -> None:
    with pytest.raises(ValueError) as e:
        supertok.get_encoding("p50k_base")
    msg = str(e.value)
    assert "p50k_base" in msg
    for name in supertok.list_encoding_names():
        assert name in msg
    with pytest.raises(TypeError):
        supertok.get_encoding(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content,line,fragment",
    [
        (b"YQ== 0\n!!!! 1\n", 2, "invalid base64"),
        (b"YQ== 0\nYg== one\n", 2, "not a non-negative integer"),
        (b"YQ== 0\nYg== -1\n", 2, "not a non-negative integer"),
        (b"YQ== 0\nYg== 99999999999\n", 2, "not a non-negative integer"),
        (b"YQ== 0\nYg== 0\n", 2, "duplicate rank 0"),
        (b"YQ== 0\n\nYQ== 1\n", 3, "duplicate token b'a'"),
        (b"YQ== 0\nYg==\n", 2, "expected"),
        (b"YQ== 0 7\n", 1, "expected"),
    ],
)
def test_malformed_tiktoken_file(tmp_path, content: bytes, line: int, fragment: str) -> None:
    p = tmp_path / "broken.tiktoken"
    p.write_bytes(content)
    with pytest.raises(ValueError) as e:
        supertok.load_tiktoken_bpe(p)
    msg = str(e.value)
    assert str(p) in msg and f"line {line}" in msg and fragment in msg, msg


def test_missing_file_and_urls(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        supertok.load_tiktoken_bpe(tmp_path / "nope.tiktoken")
    with pytest.raises(ValueError, match="offline"):
        supertok.load_tiktoken_bpe("https://example.com/x.tiktoken")


def test_bad_custom_encodings() -> None:
    with pytest.raises(ValueError, match="duplicate id"):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks={b"a": 0, b"b": 0}, special_tokens={})
    with pytest.raises(ValueError, match="no bytes"):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks={b"": 0}, special_tokens={})
    with pytest.raises(ValueError, match="invalid split pattern"):
        supertok.Encoding("x", pat_str=r"(unclosed", mergeable_ranks={b"a": 0}, special_tokens={})
    with pytest.raises(ValueError):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks={b"a": -1}, special_tokens={})
    with pytest.raises(TypeError):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks={"a": 0}, special_tokens={})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="share id"):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks={b"a": 0}, special_tokens={"<a>": 5, "<b>": 5})


def test_missing_single_byte_is_an_error_not_a_panic() -> None:
    enc = supertok.Encoding("x", pat_str=r"\S+|\s+", mergeable_ranks={b"a": 0, b"ab": 1}, special_tokens={})
    assert enc.encode("ab") == [1]
    with pytest.raises(ValueError, match="cannot encode"):
        enc.encode("abz")


def test_decode_errors_match_tiktoken_types() -> None:
    enc = supertok.get_encoding("cl100k_base")
    with pytest.raises(KeyError, match="100261"):
        enc.decode([100261])
    with pytest.raises(KeyError):
        enc.decode_single_token_bytes(100261)
    with pytest.raises(OverflowError):
        enc.decode([-1])
    with pytest.raises(OverflowError):
        enc.decode([2**40])
    with pytest.raises(OverflowError):
        enc.decode_single_token_bytes(-5)
    with pytest.raises(TypeError):
        enc.decode(["a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        enc.decode("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        enc.decode([1.5])  # type: ignore[list-item]
    with pytest.raises(KeyError):
        enc.encode_single_token("not a single token at all")


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.encode(b"bytes"),
        lambda e: e.encode(None),
        lambda e: e.encode_ordinary(5),
        lambda e: e.count(["a"]),
        lambda e: e.encode_to_numpy(1.0),
        lambda e: e.encode_batch("a single string"),
        lambda e: e.encode_batch(["a", None]),
        lambda e: e.encode_ordinary_batch([b"x"]),
        lambda e: e.encode_bytes("str"),
        lambda e: e.encode_single_token(5),
        lambda e: e.is_special_token("a"),
        lambda e: e.decode_single_token_bytes("1"),
        lambda e: e.encode_batch(["a"], num_threads="2"),
    ],
)
def test_wrong_types_raise_type_error(call) -> None:
    with pytest.raises(TypeError):
        call(supertok.get_encoding("o200k_base"))


def test_bad_thread_counts() -> None:
    enc = supertok.get_encoding("o200k_base")
    with pytest.raises(ValueError):
        enc.encode_batch(["a"], num_threads=0)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=200))
def test_parser_never_panics_on_garbage(tmp_path_factory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("g") / "g.tiktoken"
    p.write_bytes(data)
    try:
        ranks = supertok.load_tiktoken_bpe(p)
    except ValueError:
        return
    assert all(isinstance(k, bytes) and isinstance(v, int) for k, v in ranks.items())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(ids=st.lists(st.integers(-(2**40), 2**40), max_size=20))
def test_decode_never_panics(ids: list[int]) -> None:
    enc = supertok.get_encoding("r50k_base")
    try:
        enc.decode_bytes(ids)
    except (KeyError, OverflowError):
        pass
