"""supertok.metrics: golden values (Rényi), hand-computed premiums/fertility/utilisation,
agreement across tokenizer kinds, bad input."""

from __future__ import annotations

import math
from collections import Counter

import pytest

import supertok
from supertok import metrics as M

np = pytest.importorskip("numpy")


def byte_tok(text: str) -> list[int]:
    return list(text.encode("utf-8"))


BYTES = M.wrap(byte_tok, name="bytes", token_bytes=[bytes([i]) for i in range(256)])


@pytest.fixture(scope="module")
def cl100k() -> supertok.Encoding:
    return supertok.get_encoding("cl100k_base")


# ---------------------------------------------------------------------- Rényi golden values


def test_renyi_golden_values() -> None:
    a = Counter("pick @@ed pick @@l @@ed pick @@les".split())
    b = Counter("pick @@e @@d pick @@l @@e @@d pick @@l @@e @@s".split())
    # tokenization-scorer's README values (its default power is 3) and a = 2.5
    assert M.renyi_efficiency(a, power=3) == pytest.approx(0.803153, abs=1e-6)
    assert M.renyi_efficiency(b, power=3) == pytest.approx(0.910568, abs=1e-6)
    assert M.renyi_efficiency(a, power=2.5) == pytest.approx(0.826506, abs=1e-6)
    assert M.renyi_efficiency(b, power=2.5) == pytest.approx(0.920484, abs=1e-6)
    assert M.renyi_efficiency(a) == M.renyi_efficiency(a, power=2.5)


def test_renyi_hand_computed() -> None:
    # p = (3, 2, 1, 1) / 7, a = 3: H = log(343/37) / 2; V = 4
    h = math.log(343 / 37) / 2
    assert M.renyi_entropy([3, 2, 1, 1], power=3) == pytest.approx(h, rel=1e-12)
    assert M.renyi_efficiency([3, 2, 1, 1], power=3, vocab_size=10) == pytest.approx(h / math.log(10))
    # a = 1 is Shannon; uniform distributions have efficiency 1 at every power
    assert M.renyi_entropy({"x": 1, "y": 1}, power=1) == pytest.approx(math.log(2))
    for a in (0.5, 1, 2, 2.5, 3, math.inf):
        assert M.renyi_efficiency(np.array([5, 5, 5, 5]), power=a) == pytest.approx(1.0)
    # zero counts are ignored; a declared vocab lowers the efficiency
    assert M.renyi_efficiency([3, 2, 0, 1, 1], power=3) == M.renyi_efficiency([3, 2, 1, 1], power=3)


def test_renyi_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        M.renyi_entropy([])
    with pytest.raises(ValueError, match="non-negative"):
        M.renyi_entropy([1, -1])
    with pytest.raises(ValueError, match="smaller"):
        M.renyi_efficiency([1, 1, 1], vocab_size=2)
    with pytest.raises(ValueError, match="power"):
        M.renyi_entropy([1, 2], power=-1)
    assert math.isnan(M.renyi_efficiency([4]))


# ---------------------------------------------------------------------- counts and premiums


def test_counts_and_compression_by_hand(cl100k: supertok.Encoding) -> None:
    assert cl100k.encode("hello world") == [15339, 1917]
    texts = ["hello world", "hello"]
    assert M.corpus_token_count(cl100k, texts) == 3
    assert M.token_counts(cl100k, texts) == Counter({15339: 2, 1917: 1})
    assert M.bytes_per_token(cl100k, texts) == pytest.approx(16 / 3)
    assert M.chars_per_token(BYTES, "é") == pytest.approx(0.5)
    assert M.bytes_per_token(BYTES, ["é", "ab"]) == 1.0
    # special-token text is encoded as ordinary text by encodings and never counted as special
    assert M.corpus_token_count(cl100k, "<|endoftext|>") == len(cl100k.encode_ordinary("<|endoftext|>"))


def test_token_and_byte_premium_by_hand(cl100k: supertok.Encoding) -> None:
    rows = [
        {"en": "ab cd", "de": "abc def ghi", "fr": "é"},
        {"en": "x", "de": "yz"},
        {"de": "only german"},
    ]
    # byte tokenizer: tokens = bytes; en 5 + 1, de 11 + 2 (row 3 has no en), fr 2 vs 5
    assert M.token_premium(BYTES, rows) == {"de": 13 / 6, "en": 1.0, "fr": 2 / 5}
    assert M.byte_premium(rows) == {"de": 13 / 6, "en": 1.0, "fr": 2 / 5}
    # a char tokenizer differs from bytes on é
    chars = M.wrap(lambda s: [ord(c) for c in s], name="chars")
    assert M.token_premium(chars, rows, languages=["fr"]) == {"fr": 1 / 5}
    # columns form, and a real encoding: counts from encode_ordinary
    cols = {"en": ["hello world", "good morning"], "de": ["hallo Welt", None]}
    n_en = len(cl100k.encode("hello world"))
    n_de = len(cl100k.encode("hallo Welt"))
    assert M.token_premium(cl100k, cols)["de"] == n_de / n_en
    sp = M.sentence_premiums(BYTES, rows, languages=["de"])
    assert sp == {"de": [11 / 5, 2 / 1]}
    assert M.parallel_languages(rows) == ["de", "en", "fr"]
    assert M.parallel_languages(rows, min_rows=2) == ["de", "en"]


def test_premium_errors() -> None:
    with pytest.raises(ValueError, match="reference"):
        M.token_premium(BYTES, [{"de": "x"}])
    with pytest.raises(ValueError, match="shares no row"):
        M.token_premium(BYTES, [{"en": "x"}, {"de": "y"}], languages=["de"])
    with pytest.raises(ValueError, match="different lengths"):
        M.byte_premium({"en": ["a"], "de": ["a", "b"]})
    with pytest.raises(TypeError, match="load_parallel"):
        M.token_premium(BYTES, "parallel.jsonl")  # type: ignore[arg-type]


def test_load_parallel(tmp_path) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text('{"en": "a", "de": "b"}\n\n{"en": "c"}\n', encoding="utf-8")
    assert M.load_parallel(p) == [{"en": "a", "de": "b"}, {"en": "c"}]
    assert M.load_parallel(p, languages=["de"]) == [{"de": "b"}, {}]
    p.write_text('{"en": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        M.load_parallel(p)
    p.write_text('{"en": \n', encoding="utf-8")
    with pytest.raises(ValueError, match="invalid JSON"):
        M.load_parallel(p)


def test_nsl(cl100k: supertok.Encoding) -> None:
    texts = ["The quick brown fox jumps over the lazy dog.", "Ünïcödé text, 12345."]
    assert M.normalized_sequence_length(cl100k, cl100k, texts) == 1.0
    n = sum(len(cl100k.encode(t)) for t in texts)
    assert M.normalized_sequence_length(BYTES, cl100k, texts) == pytest.approx(
        sum(len(t.encode()) for t in texts) / n
    )


# ---------------------------------------------------------------------- words


def test_fertility_and_continued_words_by_hand() -> None:
    assert M.fertility(BYTES, "the cat sat") == pytest.approx(11 / 3)
    assert M.continued_word_rate(BYTES, "the cat sat") == 1.0
    assert M.fertility(BYTES, ["a b cd"]) == 2.0
    assert M.continued_word_rate(BYTES, ["a b cd"]) == pytest.approx(1 / 3)
    # one token for the whole text (a superword tokenizer in the limit): no word is continued
    table = {0: b"a b cd", 1: b" ", 2: b"x"}
    whole = M.wrap(lambda s: [0] if s == "a b cd" else [1 if c == " " else 2 for c in s], token_bytes=table)
    assert M.continued_word_rate(whole, "a b cd") == 0.0
    assert M.fertility(whole, "a b cd") == pytest.approx(1 / 3)
    # a multi-byte word split inside a character is one word covered by 2 tokens
    assert M.continued_word_rate(BYTES, "é") == 1.0


def test_word_metrics_nan_for_spaceless_scripts(cl100k: supertok.Encoding) -> None:
    ja = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。"
    zh = "今天天气很好，我们去公园散步吧。"
    th = "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"
    for t in (ja, zh, th):
        assert M.is_spaceless(t)
        assert math.isnan(M.fertility(cl100k, t))
        assert math.isnan(M.continued_word_rate(cl100k, t))
        assert math.isnan(M.evaluate(cl100k, t)["fertility"])
    assert not M.is_spaceless("한국어는 띄어쓰기를 합니다")
    assert not M.is_spaceless("Русский текст")
    assert M.fertility(cl100k, ja, spaceless=False) == len(cl100k.encode(ja))  # one "word"
    assert math.isnan(M.fertility(cl100k, "hello", spaceless=True))


def test_evaluate_agrees_with_single_metrics(cl100k: supertok.Encoding) -> None:
    texts = ["The quick brown fox, naïvely: jumps!", "  over the\tlazy dog\n", "x"]
    r = M.evaluate(cl100k, texts)
    assert r["tokens"] == M.corpus_token_count(cl100k, texts)
    assert r["bytes_per_token"] == M.bytes_per_token(cl100k, texts)
    assert r["chars_per_token"] == M.chars_per_token(cl100k, texts)
    assert r["fertility"] == M.fertility(cl100k, texts)
    assert r["continued_word_rate"] == M.continued_word_rate(cl100k, texts)
    assert r["vocab_utilization"] == M.vocab_utilization(cl100k, texts)
    assert r["renyi_efficiency"] == M.renyi_efficiency(M.token_counts(cl100k, texts))
    # cl100k's pieces: "The", " quick", ... ; continued words by hand from its tokens
    words = " ".join(texts).split()
    split = 0
    for t in texts:
        pieces = [cl100k.decode_single_token_bytes(i) for i in cl100k.encode(t)]
        pos, bounds = 0, []
        for p in pieces:
            bounds.append((pos, pos + len(p)))
            pos += len(p)
        data = t.encode()
        i = 0
        for w in t.split():
            ws = data.index(w.encode(), i)
            we = ws + len(w.encode())
            i = we
            split += sum(1 for s, e in bounds if s < we and e > ws) >= 2
    assert r["continued_word_rate"] == split / len(words)


def test_same_numbers_for_every_tokenizer_kind(cl100k: supertok.Encoding) -> None:
    texts = ["Tokenizers: ¿qué tal? 東京 — naïve café", "def f(x):\n    return x ** 2\n"]
    hf = supertok.Tokenizer.from_tiktoken(cl100k)
    ref = M.evaluate(cl100k, texts)
    assert M.evaluate(hf, texts) == ref
    assert M.evaluate("cl100k_base", texts) == ref
    wrapped = M.wrap(cl100k.encode_ordinary, token_bytes=cl100k.decode_single_token_bytes, vocab_size=100256)
    assert M.evaluate(wrapped, texts) == ref
    bare = M.evaluate(cl100k.encode_ordinary, texts)
    assert math.isnan(bare["continued_word_rate"]) and math.isnan(bare["vocab_utilization"])
    assert bare["tokens"] == ref["tokens"]
    tiktoken = pytest.importorskip("tiktoken")
    from conftest import tiktoken_reference

    tt = tiktoken_reference("cl100k_base")
    assert isinstance(tt, tiktoken.Encoding)
    assert M.evaluate(tt, texts) == ref


def test_hf_offsets_with_normalizer(cl100k: supertok.Encoding) -> None:
    import json

    spec = json.loads(supertok.Tokenizer.from_tiktoken(cl100k).to_json())
    spec["normalizer"] = {"type": "Lowercase"}
    low = supertok.Tokenizer.from_str(json.dumps(spec))
    text = "HELLO Wonderful WORLD"
    # offsets come from the tokenizer (its token bytes are lower case, the text is not)
    assert M.continued_word_rate(low, text) == M.continued_word_rate(cl100k, text.lower())


# ---------------------------------------------------------------------- vocabulary


def test_vocab_utilization_and_overlap(cl100k: supertok.Encoding) -> None:
    assert M.vocab_utilization(BYTES, "aab") == 2 / 256
    assert M.vocab_utilization(BYTES, "aab", vocab_size=4) == 0.5
    a = M.wrap(byte_tok, token_bytes=[b"a", b"b", b"ab"])
    b = M.wrap(byte_tok, token_bytes={0: b"b", 1: b"a", 7: b"ba"})
    assert M.vocab_overlap(a, b) == 0.5
    assert M.vocab_overlap(a, b, return_counts=True) == (0.5, 3, 3, 2)
    hf = supertok.Tokenizer.from_tiktoken(cl100k)
    assert M.vocab_overlap(cl100k, hf) == 1.0
    o200k = supertok.get_encoding("o200k_base")
    sa, sb = set(cl100k.token_byte_values()), set(o200k.token_byte_values())
    j, na, nb, shared = M.vocab_overlap(cl100k, o200k, return_counts=True)
    assert (na, nb, shared) == (len(sa), len(sb), len(sa & sb))
    assert j == len(sa & sb) / len(sa | sb)


def test_missing_capabilities_and_bad_input(cl100k: supertok.Encoding) -> None:
    with pytest.raises(TypeError, match="token bytes"):
        M.continued_word_rate(byte_tok, "a b")
    with pytest.raises(TypeError, match="vocabulary size"):
        M.vocab_utilization(byte_tok, "a b")
    with pytest.raises(ValueError, match="empty"):
        M.bytes_per_token(cl100k, [])
    with pytest.raises(ValueError, match="empty"):
        M.evaluate(cl100k, ["", ""])
    with pytest.raises(TypeError, match="bytes"):
        M.corpus_token_count(cl100k, b"abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        M.corpus_token_count(cl100k, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="ints"):
        M.corpus_token_count(lambda s: s, "abc")
    with pytest.raises(TypeError, match="expected"):
        M.corpus_token_count(42, "abc")
    with pytest.raises(ValueError, match="neither"):
        M.corpus_token_count("no_such_encoding", "abc")
    liar = M.wrap(lambda s: [0], token_bytes=[b"a"])
    with pytest.raises(ValueError, match="hold 1 bytes"):
        M.continued_word_rate(liar, "abc def")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        M.continued_word_rate(M.wrap(lambda s: [5], token_bytes=[b"a"]), "a")


def test_load_tokenizer_paths(tmp_path, cl100k: supertok.Encoding) -> None:
    tj = tmp_path / "tokenizer.json"
    supertok.Tokenizer.from_tiktoken(cl100k).save(tj)
    tk = tmp_path / "mine.tiktoken"
    supertok.dump_tiktoken_bpe(cl100k._mergeable_ranks, str(tk))
    text = "Some text to count, with numbers 1234567."
    n = M.corpus_token_count(cl100k, text)
    assert M.corpus_token_count(str(tj), text) == n
    assert M.corpus_token_count(tk, text) == n
    assert M.load_tokenizer(tk, pattern="o200k").encode(text) == supertok.Encoding(
        "x", pat_str=supertok.get_encoding("o200k_base")._pat_str,
        mergeable_ranks=cl100k._mergeable_ranks, special_tokens={},
    ).encode(text)


@pytest.mark.parametrize("lang", ["de", "ja", "ru"])
def test_parallel_corpus_smoke(lang: str, cl100k: supertok.Encoding) -> None:
    from conftest import require_corpus

    rows = M.load_parallel(require_corpus("parallel.jsonl"), languages=["en", lang])[:300]
    p = M.token_premium(cl100k, rows)
    assert p["en"] == 1.0 and p[lang] > 1.0
    bp = M.byte_premium(rows)
    assert bp[lang] > 0.9
