"""supertok.Tokenizer against HF ``tokenizers`` on tokenizers that HF itself trained (see
``hf_util.CONFIGS``): ids, offsets (chars and bytes) and decoded text, on hand-picked nasty
strings, hypothesis-generated text and the shared corpora; save() round trips; errors."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hf_util as u
from supertok import Tokenizer

tokenizers = pytest.importorskip("tokenizers")

NASTY = [
    "",
    " ",
    "   ",
    "\n",
    "\r\n\r\n",
    "Hello world",
    " Hello  world ",
    "it's I'LL we've they'RE don't 's",
    "1234567 dollars and 89 cents",
    "12345678901234567890123",
    "x" * 300,
    " " * 300 + "a",
    "a" + "\n" * 50 + "b",
    "7" * 1000,
    "\u3000\u3000日本語\u3000テキスト",
    "a\u00a0b\u2009c\u202fd\u205fe\u1680f",
    "e\u0301\u0302 a\u0308 ﬁ ﬂ ㌀ Ⅻ ½ ²",
    "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 😀",
    "中文文本，混合English和数字123。",
    "<s> </s> <|endoftext|> [MASK] <tool>",
    "<s><s></s>[MASK][MASK]<tool><|endoftext|>",
    "hello world hello worlds ahello world",
    "  [MASK]  x [MASK]y",
    "def f(x):\n\treturn x ** 2  # comment\n",
    "\t\t\tindent\n    spaces\n",
    "١٢٣٤٥ ٦٧٨ ߀߁߂ ๑๒๓",
    "ÀÉÎÕÜ àéîõü ŒÆ ß İ ı",
    "\x00\x01\x1f\x7f\x85",
    "\ufeffBOM and \ufffd replacement",
    "Ǆ ǅ ǆ ΣΑΣ σας",
    "a'b'c''d'''",
    "http://example.com/a?b=c&d=e#f",
    "$$$ %%% ^^^ &&& *** ((( )))",
    "Mixed\r\nline\rendings\n",
]


@pytest.mark.parametrize("config", u.CONFIGS)
def test_nasty_strings(config):
    for s in NASTY:
        u.compare(config, s)


# ---------------------------------------------------------------- hypothesis

_pieces = st.sampled_from(
    [
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        "\u3000",
        "\u00a0",
        "\u2009",
        "\u0301",
        "\u0308",
        "\u200d",
        "'s",
        "'LL",
        "'ve",
        "n't",
        "<s>",
        "</s>",
        "<|endoftext|>",
        "[MASK]",
        "<tool>",
        "hello world",
        "ﬁle",
        "中文",
        "日本語",
        "한국어",
        "Ελληνικά",
        "русский",
        "👨‍👩‍👧",
        "😀",
        "123",
        "4567",
        "٣",
        "½",
        "Ⅻ",
        "def ",
        "()",
        "...",
        "--",
        "A",
        "the",
        " the",
        "The",
        "é",
        "ß",
        "İ",
    ]
)
_runs = st.builds(lambda c, n: c * n, st.sampled_from([" ", "a", "7", "\n", "-", "\u3000", "é"]), st.integers(2, 80))
_text = st.lists(
    st.one_of(_pieces, _runs, st.text(max_size=12), st.characters(codec="utf-8").map(str)),
    max_size=25,
).map("".join)

HYP = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("config", u.CONFIGS)
@HYP
@given(text=_text)
def test_hypothesis_differential(config, text):
    u.compare(config, text)


@pytest.mark.slow
@pytest.mark.parametrize("config", u.CONFIGS)
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=_text)
def test_hypothesis_differential_long(config, text):
    u.compare(config, text)


# ---------------------------------------------------------------- corpora

CORPORA = ["en.txt", "code.txt"] + [
    f"multilingual/{x}.txt" for x in ["de", "ru", "ja", "zh_CN", "ko", "el", "ta", "vi", "ka", "tr"]
]


def _mismatches(config: str, docs: list[str]) -> list[int]:
    h = u.hf(config)
    o = u.ours(config)
    theirs = [e.ids for e in h.encode_batch(docs)]
    mine = o.encode_batch(docs)
    return [i for i, (a, b) in enumerate(zip(theirs, mine)) if a != b]


@pytest.mark.parametrize("config", u.CONFIGS)
def test_corpus_sample(config):
    docs: list[str] = []
    for name in CORPORA:
        p = os.path.join(u.CORPUS_DIR, name)
        if os.path.exists(p):
            docs += u.documents(name, 8 if name.startswith("multi") else 25, seed=7)
    if not docs:
        pytest.skip("no corpus")
    assert _mismatches(config, docs) == []
    for d in docs[:40]:
        u.compare(config, d)


@pytest.mark.slow
@pytest.mark.parametrize("config", u.CONFIGS)
@pytest.mark.parametrize("name", CORPORA + ["multilingual/*"])
def test_corpus_full(config, name):
    names = [name]
    if name == "multilingual/*":
        d = os.path.join(u.CORPUS_DIR, "multilingual")
        if not os.path.isdir(d):
            pytest.skip("no multilingual corpus")
        names = [f"multilingual/{f}" for f in sorted(os.listdir(d))]
    for n in names:
        docs = u.documents(n, None)
        bad = _mismatches(config, docs)
        assert bad == [], (n, len(bad), docs[bad[0]][:300] if bad else "")


@pytest.mark.slow
@pytest.mark.parametrize("config", u.CONFIGS)
def test_corpus_offsets_full(config):
    for n in ["en.txt", "multilingual/ja.txt", "multilingual/ru.txt"]:
        for d in u.documents(n, 400, seed=11):
            u.compare(config, d)


# ---------------------------------------------------------------- save / round trips


@pytest.mark.parametrize("config", u.CONFIGS)
def test_save_round_trip_hf_and_transformers(config, tmp_path):
    o = u.ours(config)
    path = tmp_path / "tokenizer.json"
    o.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    orig = u.json_obj(config)
    # same components as HF wrote (HF's own serialization of the same tokenizer)
    assert saved == json.loads(tokenizers.Tokenizer.from_str(u.trained_json(config)).to_str())
    assert saved["model"]["vocab"] == orig["model"]["vocab"]
    h2 = tokenizers.Tokenizer.from_file(str(path))
    docs = u.documents("en.txt", 10, seed=3) + NASTY
    for d in docs:
        assert h2.encode(d).ids == o.encode(d)
    o2 = Tokenizer.from_file(path)
    assert o2.to_json() == o.to_json()
    transformers = pytest.importorskip("transformers")
    f = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    for d in docs:
        assert f(d)["input_ids"] == o.encode(d)


def test_legacy_merges_and_pickle():
    j = u.json_obj("gpt2")
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    t = Tokenizer.from_str(json.dumps(j))
    h = tokenizers.Tokenizer.from_str(json.dumps(j))
    for s in NASTY:
        assert t.encode(s) == h.encode(s).ids
    assert isinstance(json.loads(t.to_json())["model"]["merges"][0], str)
    t2 = pickle.loads(pickle.dumps(t))
    assert t2.encode("hello there") == t.encode("hello there")


def test_duplicate_merges_last_rank_wins():
    j = u.json_obj("gpt2")
    merges = j["model"]["merges"]
    # repeat an early merge at the end: HF keeps the last occurrence's rank
    j["model"]["merges"] = merges + [merges[0], merges[5]]
    t = Tokenizer.from_str(json.dumps(j))
    h = tokenizers.Tokenizer.from_str(json.dumps(j))
    for s in NASTY + u.documents("en.txt", 5, seed=5):
        assert t.encode(s) == h.encode(s).ids


def test_added_token_ids_follow_hf():
    # HF ignores the listed ids of added tokens that are not in the model vocabulary and
    # numbers them from the model's size on, in file order
    j = u.json_obj("gpt2")
    n = len(j["model"]["vocab"])
    j["added_tokens"] = [
        {"id": 99999, "content": "<b>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        {"id": 5, "content": "<a>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    ]
    t = Tokenizer.from_str(json.dumps(j))
    h = tokenizers.Tokenizer.from_str(json.dumps(j))
    assert t.encode("x<a>y<b>") == h.encode("x<a>y<b>").ids
    assert t.token_to_id("<b>") == n == h.token_to_id("<b>")
    assert t.get_vocab() == h.get_vocab()
    assert t.vocab_size == h.get_vocab_size()


def test_unknown_bytes_dropped_or_unk():
    j = u.json_obj("gpt2")
    # drop the single-byte token of "é"'s first byte: HF skips it (no unk) ...
    vocab = j["model"]["vocab"]
    victim = "Ã"
    vid = vocab.pop(victim)
    j["model"]["merges"] = [m for m in j["model"]["merges"] if victim not in m and victim not in "".join(m)]
    j["model"]["vocab"] = {k: v for k, v in vocab.items() if victim not in k}
    for unk, fuse in [(None, False), ("<unk>", False), ("<unk>", True)]:
        jj = json.loads(json.dumps(j))
        if unk:
            jj["model"]["vocab"][unk] = vid
            jj["model"]["unk_token"] = unk
            jj["model"]["fuse_unk"] = fuse
        t = Tokenizer.from_str(json.dumps(jj))
        h = tokenizers.Tokenizer.from_str(json.dumps(jj))
        for s in ["café", "éé é", "aéb", "ÉéÈ"]:
            e = h.encode(s)
            assert t.encode(s) == e.ids, (unk, fuse, s)
            assert t.encode_with_offsets(s, char_offsets=True)[1] == [tuple(x) for x in e.offsets]


# ---------------------------------------------------------------- API


def test_api_surface():
    t = u.ours("special")
    h = u.hf("special")
    assert t.vocab_size == h.get_vocab_size()
    assert t.get_vocab() == h.get_vocab()
    for tok in ["<s>", "[MASK]", "Ġthe", "hello world", "nope-nope"]:
        assert t.token_to_id(tok) == h.token_to_id(tok)
    for i in [0, 1, 5, 300, 2999, 3000, 3001, 3003, 10**6, -1]:
        if i >= 0:
            assert t.id_to_token(i) == h.id_to_token(i)
        else:
            assert t.id_to_token(i) is None
    ids = t.encode("a <s> b")
    assert t.decode_bytes(ids) == t.decode(ids).encode()
    assert t.decode([10**6, ids[1]]) == h.decode([10**6, ids[1]])
    assert t.special_tokens == {"<|endoftext|>": 0, "<s>": 1, "</s>": 2, "<tool>": 3003}
    texts = ["hello", "", "wörld <s>", "x" * 1000]
    assert t.encode_batch(texts) == [t.encode(x) for x in texts]
    assert t.encode_batch(texts, num_threads=1) == [t.encode(x) for x in texts]
    np = pytest.importorskip("numpy")
    a = t.encode_to_numpy("hello world")
    assert a.dtype == np.uint32 and a.tolist() == t.encode("hello world")
    flat, ends = t.encode_to_numpy(texts)
    assert ends.tolist() == list(np.cumsum([len(t.encode(x)) for x in texts]))
    assert flat.tolist() == sum((t.encode(x) for x in texts), [])
    # over 1 MB of ids the rows are copied into the result by several threads
    big = ["", *(f"line {i} of some text, wörld {i * 7919} <s>" * 40 for i in range(700)), ""]
    rows = t.encode_batch(big, num_threads=1)
    assert sum(map(len, rows)) * 4 > 1 << 20
    for n in (1, 2, 3):
        flat, ends = t.encode_to_numpy(big, num_threads=n)
        assert ends.tolist() == np.cumsum([len(r) for r in rows]).tolist()
        assert flat.tolist() == [i for r in rows for i in r]
    with pytest.raises(TypeError):
        t.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.encode_batch("abc")
    with pytest.raises(TypeError):
        t.encode("lone \ud800 surrogate")
    with pytest.raises(TypeError):
        h.encode("lone \ud800 surrogate")
    assert "Tokenizer" in repr(t)


def test_digit_grouping_long_run_is_exact():
    t = u.ours("superbpe")
    for n in [1, 2, 3, 4, 5, 6, 7, 100, 20_000]:
        s = "9" * n
        ids = t.encode(s)
        assert t.decode(ids) == s
        # pieces: first n % 3 digits, then groups of three; compare with HF on short runs
        if n <= 100:
            assert ids == u.hf("superbpe").encode(s).ids


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("pre_tokenizer",), {"type": "Metaspace", "replacement": "▁"}, r"at pre_tokenizer: unsupported pre-tokenizer type \"Metaspace\""),
        (("normalizer",), {"type": "BertNormalizer"}, r"at normalizer: unsupported normalizer type \"BertNormalizer\""),
        (("post_processor",), {"type": "RobertaProcessing"}, r"at post_processor: unsupported post-processor"),
        (("decoder",), {"type": "WordPiece"}, r"at decoder: unsupported decoder type"),
        (("model", "type"), "WordPiece", r"at model.type: unsupported model type"),
        (("model", "dropout"), 0.1, r"at model.dropout"),
        (("model", "byte_fallback"), True, r"at model.byte_fallback"),
        (("model", "continuing_subword_prefix"), "##", r"at model.continuing_subword_prefix"),
        (("truncation",), {"max_length": 5}, r"at truncation"),
        (("padding",), {"strategy": "BatchLongest"}, r"at padding"),
        (("pre_tokenizer",), None, r"no ByteLevel pre-tokenizer"),
        (("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": False}, r"at pre_tokenizer.pattern"),
        (("pre_tokenizer",), {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": False}, r"at pre_tokenizer.behavior: unknown behavior"),
        (("model", "merges"), [["Ġ", "zzzz-not-a-token"]], r"at model.merges\[0\]: merge token"),
        (("model", "merges"), ["a b c"], r"at model.merges\[0\]"),
    ],
)
def test_unsupported_components_name_their_path(path, value, message):
    j = u.json_obj("gpt2")
    d = j
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        Tokenizer.from_str(json.dumps(j))


def test_nested_sequence_error_path():
    j = u.json_obj("gpt4")
    j["pre_tokenizer"]["pretokenizers"].insert(1, {"type": "UnicodeScripts"})
    with pytest.raises(ValueError, match=r"pre_tokenizer.pretokenizers\[1\]: unsupported pre-tokenizer type \"UnicodeScripts\""):
        Tokenizer.from_str(json.dumps(j))
    j = u.json_obj("gpt4")
    j["pre_tokenizer"]["pretokenizers"].append({"type": "Digits", "individual_digits": True})
    with pytest.raises(ValueError, match=r"pre_tokenizer.pretokenizers\[2\]: a pre-tokenizer after ByteLevel"):
        Tokenizer.from_str(json.dumps(j))


def test_file_errors(tmp_path):
    with pytest.raises(OSError, match="nope.json"):
        Tokenizer.from_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json: line 1: invalid JSON"):
        Tokenizer.from_file(bad)
    j = u.json_obj("gpt2")
    j["decoder"] = {"type": "Metaspace"}
    p = tmp_path / "tok.json"
    p.write_text(json.dumps(j), encoding="utf-8")
    with pytest.raises(ValueError, match=r"tok.json: at decoder"):
        Tokenizer.from_file(p)
