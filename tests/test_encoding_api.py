"""The tiktoken-compatible API: known ids, special-token policy, batch, offsets, pickling,
registry and model mapping, plus supertok's extras (encode_bytes, count)."""

from __future__ import annotations

import pickle
import threading

import pytest

import supertok
import supertok.compat.tiktoken as tiktoken_compat

ALL = ["cl100k_base", "o200k_base", "r50k_base", "gpt2"]


def test_known_ids() -> None:
    gpt2 = supertok.get_encoding("gpt2")
    assert gpt2.encode("hello world") == [31373, 995]
    assert gpt2.decode([31373, 995]) == "hello world"
    assert gpt2.encode("hello <|endoftext|>", allowed_special="all") == [31373, 220, 50256]
    cl = supertok.get_encoding("cl100k_base")
    assert cl.encode("hello world") == [15339, 1917]
    assert cl.encode("hello <|endoftext|>", allowed_special="all") == [15339, 220, 100257]
    assert cl.encode(" \x850") == [220, 126, 227, 15]
    assert cl.encode("rer") == [38149]
    assert cl.encode("'rer") == [2351, 81]
    assert cl.encode("today\n ") == [31213, 198, 220]
    assert cl.encode("today\n \n") == [31213, 27907]
    assert cl.encode("today\n  \n") == [31213, 14211]
    assert cl.encode("👍") == [9468, 239, 235]
    assert cl.encode("") == []


def test_repeated_digits_gpt2() -> None:
    enc = supertok.get_encoding("gpt2")
    expected = {
        1: [15], 2: [405], 3: [830], 4: [2388], 5: [20483], 6: [10535], 7: [24598], 8: [8269],
        9: [10535, 830], 10: [8269, 405], 11: [8269, 830], 12: [8269, 2388], 13: [8269, 20483],
        14: [8269, 10535], 15: [8269, 24598], 16: [25645], 17: [8269, 10535, 830],
    }
    for n, ids in expected.items():
        assert enc.encode("0" * n) == ids


@pytest.mark.parametrize("name", ALL)
def test_single_token_roundtrip(name: str) -> None:
    enc = supertok.get_encoding(name)
    for token in range(enc.n_vocab):
        try:
            b = enc.decode_single_token_bytes(token)
        except KeyError:
            continue
        assert enc.encode_single_token(b) == token


@pytest.mark.parametrize("name", ALL)
def test_catastrophically_repetitive(name: str) -> None:
    enc = supertok.get_encoding(name)
    for c in ["^", "0", "a", "'s", " ", "\n", "\u3000", "x "]:
        for value in (c * 10_000, " " + c * 10_000, " " + c * 10_000 + "\n"):
            assert enc.decode(enc.encode(value)) == value


def test_large_inputs_are_linear() -> None:
    import time

    enc = supertok.get_encoding("o200k_base")
    t = time.perf_counter()
    assert enc.encode("x" * 1_000_000)
    import random

    rng = random.Random(0)
    letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1_000_000))
    assert enc.decode(enc.encode(letters)) == letters
    # generous bound: the point is "not quadratic" (quadratic would take minutes)
    assert time.perf_counter() - t < 30


@pytest.mark.parametrize("name", ALL)
def test_basic_roundtrip(name: str) -> None:
    enc = supertok.get_encoding(name)
    for value in ("hello", "hello ", "hello  ", " hello", " hello ", " hello  ", "hello world", "请考试我的软件！12345"):
        assert enc.decode(enc.encode(value)) == value
        assert enc.decode(enc.encode_ordinary(value)) == value


def test_surrogates() -> None:
    enc = supertok.get_encoding("cl100k_base")
    assert enc.encode("\ud83d\udc4d") == [9468, 239, 235]
    assert enc.encode("\ud83d") == enc.encode("\ufffd")
    assert enc.encode_ordinary("a\udfffb") == enc.encode_ordinary("a\ufffdb")
    assert enc.count("\ud83d\udc4d") == 3


def test_encode_bytes() -> None:
    enc = supertok.get_encoding("cl100k_base")
    assert enc.encode_bytes(b" \xec\x8b\xa4\xed") == [62085]
    assert enc._encode_bytes(b" \xec\x8b\xa4\xed") == [62085]
    for i in range(10):
        data = b"\x80" * i
        assert enc.decode_bytes(enc.encode_bytes(data)) == data
    assert enc.encode_bytes(bytearray(b"hello world")) == [15339, 1917]


def test_special_token_policy() -> None:
    enc = supertok.get_encoding("cl100k_base")
    eot = enc.encode_single_token("<|endoftext|>")
    assert eot == enc.eot_token
    fip = enc.encode_single_token("<|fim_prefix|>")
    fim = enc.encode_single_token("<|fim_middle|>")

    text = "<|endoftext|> hello <|fim_prefix|>"
    assert eot not in enc.encode(text, disallowed_special=())
    for kwargs in ({}, {"disallowed_special": "all"}, {"disallowed_special": {"<|endoftext|>"}},
                   {"disallowed_special": {"<|fim_prefix|>"}}):
        with pytest.raises(ValueError, match="disallowed special token"):
            enc.encode(text, **kwargs)

    text = "<|endoftext|> hello <|fim_prefix|> there <|fim_middle|>"
    tokens = enc.encode(text, disallowed_special=())
    assert eot not in tokens and fip not in tokens and fim not in tokens
    for kwargs in ({"allowed_special": "all", "disallowed_special": ()},
                   {"allowed_special": "all", "disallowed_special": "all"}):
        tokens = enc.encode(text, **kwargs)
        assert eot in tokens and fip in tokens and fim in tokens
    tokens = enc.encode(text, allowed_special={"<|fim_prefix|>"}, disallowed_special=())
    assert eot not in tokens and fip in tokens and fim not in tokens
    tokens = enc.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert eot in tokens and fip not in tokens and fim not in tokens
    # a token that is both allowed and disallowed raises, as in tiktoken
    with pytest.raises(ValueError):
        enc.encode("<|endoftext|>", allowed_special="all", disallowed_special={"<|endoftext|>"})
    # strings that are not special tokens can be disallowed too (tiktoken searches them)
    with pytest.raises(ValueError, match="'foo'"):
        enc.encode("a foo b", disallowed_special={"foo"})


def test_disallowed_message_matches_tiktoken() -> None:
    enc = supertok.get_encoding("o200k_base")
    with pytest.raises(ValueError) as e:
        enc.encode("x <|endofprompt|>")
    assert str(e.value).startswith(
        "Encountered text corresponding to disallowed special token '<|endofprompt|>'.\n"
        "If you want this text to be encoded as a special token, pass it to `allowed_special`"
    )


@pytest.mark.parametrize("name", ALL)
def test_special_ordinary_equivalence(name: str) -> None:
    enc = supertok.get_encoding(name)
    text = "a <|endoftext|> b <|endofprompt|> c <|fim_prefix|>"
    assert enc.encode_ordinary(text) == enc.encode(text, disallowed_special=())


def test_batch() -> None:
    enc = supertok.get_encoding("r50k_base")
    a, b = "hello world", "goodbye world"
    assert enc.encode_batch([a]) == [enc.encode(a)]
    assert enc.encode_batch([a, b]) == [enc.encode(a), enc.encode(b)]
    assert enc.encode_ordinary_batch([a, b], num_threads=1) == [enc.encode_ordinary(a), enc.encode_ordinary(b)]
    assert enc.encode_batch([]) == []
    batch = ["x <|endoftext|>", "y"]
    with pytest.raises(ValueError):
        enc.encode_batch(batch)
    assert enc.decode_batch(enc.encode_batch(batch, allowed_special="all")) == batch


def test_offsets() -> None:
    enc = supertok.get_encoding("cl100k_base")
    assert enc.decode_with_offsets(enc.encode("hello world")) == ("hello world", [0, 5])
    p = "hello world<|endoftext|> green cow"
    assert enc.decode_with_offsets(enc.encode(p, allowed_special="all")) == (p, [0, 5, 11, 24, 30])
    p = "我非常渴望与人工智能一起工作"
    assert enc.decode_with_offsets(enc.encode(p)) == (p, [0, 1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 13])
    p = "நடிகர் சூர்யா"
    assert enc.decode_with_offsets(enc.encode(p)) == (p, [0, 0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 9, 10, 11, 12, 12])
    p = " Ġ除"
    assert enc.decode_with_offsets(enc.encode(p)) == (p, [0, 1])
    with pytest.raises(UnicodeDecodeError):
        enc.decode_with_offsets([enc.encode("👍")[0]])


def test_numpy_and_count() -> None:
    np = pytest.importorskip("numpy")
    enc = supertok.get_encoding("o200k_base")
    text = "The quick brown fox <|endoftext|> jumps"
    arr = enc.encode_to_numpy(text, allowed_special="all")
    assert arr.dtype == np.uint32
    assert arr.tolist() == enc.encode(text, allowed_special="all")
    assert enc.count(text, allowed_special="all") == len(arr)
    assert enc.decode(arr) == text
    assert enc.decode_bytes(np.array(arr, dtype=np.int64)) == text.encode()


def test_pickle() -> None:
    enc = supertok.get_encoding("r50k_base")
    clone = pickle.loads(pickle.dumps(enc))
    assert clone.encode("hello world") == enc.encode("hello world")
    assert len(pickle.dumps(enc)) < 100  # registered encodings pickle by name
    custom = supertok.Encoding(
        name="custom_enc",
        pat_str=enc._pat_str,
        mergeable_ranks=enc._mergeable_ranks,
        special_tokens={"<|pickle|>": 100_000},
    )
    clone = pickle.loads(pickle.dumps(custom))
    assert clone.encode("hello world") == custom.encode("hello world")
    assert clone.encode("<|pickle|>", allowed_special="all") == custom.encode("<|pickle|>", allowed_special="all") == [100_000]


def test_custom_encoding_tiny_vocab() -> None:
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"ab"] = 256
    ranks[b"cd"] = 257
    ranks[b"abcd"] = 258
    enc = supertok.Encoding("tiny", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<s>": 300})
    assert enc.encode("abcd ab") == [258, 32, 256]
    assert enc.encode("<s>abab", allowed_special="all") == [300, 256, 256]
    assert enc.n_vocab == 301
    assert enc.max_token_value == 300
    assert enc.token_byte_values()[:2] == [b"\x00", b"\x01"]
    assert enc._encode_single_piece("abcdab") == [258, 256]


def test_explicit_n_vocab() -> None:
    ranks = {bytes([b]): b for b in range(256)}
    supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={"<e>": 256}, explicit_n_vocab=257)
    with pytest.raises(ValueError, match="explicit_n_vocab"):
        supertok.Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={}, explicit_n_vocab=300)


def test_registry_and_models() -> None:
    assert supertok.list_encoding_names() == ["gpt2", "r50k_base", "cl100k_base", "o200k_base"]
    assert supertok.get_encoding("o200k_base") is supertok.get_encoding("o200k_base")
    assert supertok.encoding_for_model("gpt2").name == "gpt2"
    assert supertok.encoding_for_model("gpt-3.5-turbo-0301").name == "cl100k_base"
    assert supertok.encoding_for_model("gpt-4").name == "cl100k_base"
    assert supertok.encoding_for_model("gpt-4o").name == "o200k_base"
    assert supertok.encoding_for_model("text-davinci-001").name == "r50k_base"
    with pytest.raises(ValueError, match="p50k_base"):
        supertok.encoding_for_model("text-davinci-003")
    with pytest.raises(KeyError):  # tiktoken raises KeyError here too
        supertok.encoding_for_model("text-davinci-003")
    with pytest.raises(ValueError, match="o200k_harmony"):
        supertok.encoding_for_model("gpt-oss-120b")
    with pytest.raises(KeyError, match="Could not automatically map"):
        supertok.encoding_for_model("no-such-model")


def test_compat_module_is_a_drop_in() -> None:
    tk = tiktoken_compat
    enc = tk.get_encoding("cl100k_base")
    assert isinstance(enc, tk.Encoding)
    assert tk.encoding_for_model("gpt-4").name == "cl100k_base"
    assert tk.encoding_name_for_model("gpt-4o") == "o200k_base"
    assert "o200k_base" in tk.list_encoding_names()
    assert tk.registry.ENCODINGS["cl100k_base"] is enc
    ranks = tk.load.load_tiktoken_bpe(supertok.registry.DATA_DIR + "/r50k_base.tiktoken")
    assert len(ranks) == 50256
    assert tk.core.Encoding is supertok.Encoding


def test_threads_share_an_encoding() -> None:
    enc = supertok.get_encoding("cl100k_base")
    texts = [f"document {i} with some text and numbers {i * 7919}" * 20 for i in range(64)]
    expected = [enc.encode(t) for t in texts]
    results: dict[int, list[int]] = {}

    def work(i: int) -> None:
        results[i] = enc.encode(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(64)] == expected


def test_load_dump_roundtrip(tmp_path) -> None:
    ranks = {b"a": 0, b"b": 1, b"ab": 2, b"\xff\x00": 3}
    p = tmp_path / "v.tiktoken"
    supertok.dump_tiktoken_bpe(ranks, p)
    assert supertok.load_tiktoken_bpe(p) == ranks
    assert supertok.load_tiktoken_bpe(str(p)) == ranks
