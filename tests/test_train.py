"""Tests of the BPE trainer (issue 5): brute-force reference, properties, anchors, bad input."""

from __future__ import annotations

import os
import pickle
import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supertok
from supertok import _core
from supertok.registry import CL100K_PAT_STR, O200K_PAT_STR, R50K_PAT_STR
import importlib

T = importlib.import_module("supertok.train")  # the module (supertok.train is the function)
PretokenCounts = T.PretokenCounts
TrainedBPE = T.TrainedBPE

from conftest import require_corpus

regex = pytest.importorskip("regex")

PATTERNS = {"gpt2": R50K_PAT_STR, "cl100k": CL100K_PAT_STR, "o200k": O200K_PAT_STR}


# ---------------------------------------------------------------- reference implementation


def ref_counts(texts: list[str], pattern: str) -> dict[bytes, int]:
    """Pretoken counts with the `regex` module (tiktoken's reference semantics)."""
    out: dict[bytes, int] = {}
    pat = regex.compile(pattern)
    for t in texts:
        for piece in pat.findall(t):
            if piece:
                b = piece.encode("utf-8")
                out[b] = out.get(b, 0) + 1
    return out


def ref_train(counts: dict[bytes, int], target_tokens: int, min_frequency: int = 1):
    """Brute-force BPE: recount every pair at every step; highest count, then smallest
    (left id, right id); merges applied left to right; a result whose bytes already are a
    token reuses that id. Returns (vocab, merges)."""
    vocab = [bytes([b]) for b in range(256)]
    ids = {b: i for i, b in enumerate(vocab)}
    words = [([w[i] for i in range(len(w))], c) for w, c in counts.items()]
    merges = []
    while len(vocab) < target_tokens:
        pc: dict[tuple[int, int], int] = {}
        for w, c in words:
            for a, b in zip(w, w[1:]):
                pc[(a, b)] = pc.get((a, b), 0) + c
        if not pc:
            break
        best = min(pc.items(), key=lambda kv: (-kv[1], kv[0]))
        if best[1] < min_frequency:
            break
        (a, b) = best[0]
        nb = vocab[a] + vocab[b]
        if nb in ids:
            c_id = ids[nb]
        else:
            c_id = len(vocab)
            vocab.append(nb)
            ids[nb] = c_id
        merges.append((a, b))
        new_words = []
        for w, cnt in words:
            o = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    o.append(c_id)
                    i += 2
                else:
                    o.append(w[i])
                    i += 1
            new_words.append((o, cnt))
        words = new_words
    return vocab, merges


def hf_encode_piece(piece: bytes, ranks: dict[tuple[int, int], tuple[int, int]]) -> list[int]:
    """Merge-list (HF) semantics: repeatedly merge the adjacent pair of lowest rank."""
    ids = list(piece)
    while len(ids) > 1:
        best = None
        for i in range(len(ids) - 1):
            r = ranks.get((ids[i], ids[i + 1]))
            if r is not None and (best is None or r[0] < best[0]):
                best = (r[0], i, r[1])
        if best is None:
            break
        _, i, res = best
        ids[i : i + 2] = [res]
    return ids


def merge_ranks(res: TrainedBPE) -> dict[tuple[int, int], tuple[int, int]]:
    ids = {b: i for i, b in enumerate(res.vocab)}
    out = {}
    for rank, (a, b) in enumerate(res.merges):
        out.setdefault((a, b), (rank, ids[res.vocab[a] + res.vocab[b]]))
    return out


# ---------------------------------------------------------------- strategies

NASTY = [
    " ", "  ", "\n", "\r\n", "\t", "\u3000", "\u00a0", "\u2009", "\u0301", "e\u0301", "中文", "日本語",
    "👩\u200d👩\u200d👧", "🇫🇷", "'s", "'LL", "n't", "123", "4567", "3.14", "...", "!!", "--",
    "the", " the", "The", "aaaa", "abab", "über", "naïve", "ЙЦУ", "مرحبا", "x=1;", "    def",
]


# Characters assigned in this Python's Unicode database (the `regex` reference module may know a
# newer Unicode version than the Rust regex engine that tiktoken and supertok use; characters
# assigned since then would be classified differently by the reference, not by us).
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))


@st.composite
def nasty_texts(draw, max_texts: int = 6):
    n = draw(st.integers(1, max_texts))
    out = []
    for _ in range(n):
        parts = draw(
            st.lists(st.one_of(st.sampled_from(NASTY), st.text(ASSIGNED, max_size=6)), min_size=0, max_size=25)
        )
        out.append("".join(parts))
    return out


def small_random_corpus(rng: random.Random) -> list[str]:
    alphabet = rng.choice(["ab", "abc", "ab ", "abc \n", "aé中 .", "xyz'!1 "])
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(rng.randint(1, 8))]


def train_quiet(texts, vocab_size, **kw) -> TrainedBPE:
    """Raw trainer result (independent of whether supertok.Tokenizer exists)."""
    pattern = T.resolve_pattern(kw.pop("pattern", "cl100k"))
    counts = supertok.count_pretokens_from_iterator(texts, pattern, show_progress=False, threads=kw.pop("threads", None))
    specials = T._check_vocab(vocab_size, kw.pop("special_tokens", ()))
    return T._train_counts(
        counts, vocab_size, specials, kw.pop("min_frequency", 1), kw.pop("max_token_length", None), pattern, False, 0.0
    )


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_random(seed):
    rng = random.Random(seed)
    texts = small_random_corpus(rng)
    pname = rng.choice(list(PATTERNS))
    counts = ref_counts(texts, PATTERNS[pname])
    if not counts or all(k.isspace() for k in counts):
        return
    target = 256 + rng.randint(1, 60)
    mf = rng.choice([1, 1, 2, 3])
    res = train_quiet(texts, target, pattern=pname, min_frequency=mf)
    vocab, merges = ref_train(counts, target, mf)
    assert res.merges == merges
    assert res.vocab == vocab


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=nasty_texts(), extra=st.integers(1, 80), pname=st.sampled_from(list(PATTERNS)))
def test_matches_brute_force_nasty(texts, extra, pname):
    counts = ref_counts(texts, PATTERNS[pname])
    ours = supertok.count_pretokens_from_iterator(texts, pname, show_progress=False)
    assert dict(ours.items()) == counts
    if not counts or ours.all_whitespace():
        return
    res = train_quiet(texts, 256 + extra, pattern=pname)
    vocab, merges = ref_train(counts, 256 + extra)
    assert res.merges == merges
    assert res.vocab == vocab


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=nasty_texts(), extra=st.integers(1, 120), probe=st.text(ASSIGNED, max_size=40))
def test_roundtrip_property(texts, extra, probe):
    """Training on any small text, then encoding/decoding round-trips, and the encoder
    (tiktoken semantics) agrees with the merge list (HF semantics) on the training text."""
    counts = ref_counts(texts, O200K_PAT_STR)
    if not counts or all(k.decode().isspace() for k in counts):
        return
    res = train_quiet(texts, 256 + extra, pattern="o200k")
    enc = res.to_encoding()
    ranks = merge_ranks(res)
    tok = T._build(res)  # supertok.Tokenizer (HF semantics) when available
    for t in texts + [probe]:
        ids = enc.encode_ordinary(t)
        assert enc.decode(ids) == t
        assert tok.encode(t) == ids
        assert tok.decode(ids) == t
    for piece in counts:
        assert enc._encode_single_piece(piece) == hf_encode_piece(piece, ranks)


def test_threads_and_sharding_deterministic():
    p = require_corpus("en.txt")
    with open(p, encoding="utf-8") as f:
        text = f.read(1_500_000)
    docs = text.split("\n\n")
    a = supertok.count_pretokens_from_iterator(docs, "cl100k", threads=1, show_progress=False)
    b = supertok.count_pretokens_from_iterator(docs, "cl100k", threads=2, show_progress=False)
    c = supertok.count_pretokens_from_iterator(docs[: len(docs) // 3], "cl100k", show_progress=False)
    c += supertok.count_pretokens_from_iterator(docs[len(docs) // 3 :], "cl100k", show_progress=False)
    assert a == b == c
    assert a.to_bytes() == c.to_bytes()
    r1 = T._train_counts(a, 2000, [], 1, None, a.pattern, False, 0.0)
    r2 = T._train_counts(c, 2000, [], 1, None, c.pattern, False, 0.0)
    assert r1.merges == r2.merges and r1.vocab == r2.vocab
    t1 = supertok.train_from_counts(a, 2000, show_progress=False)
    t2 = supertok.train_from_counts(c, 2000, show_progress=False)
    if hasattr(t1, "to_json"):
        assert t1.to_json() == t2.to_json()


def test_files_equal_iterator(tmp_path):
    p = require_corpus("code.txt")
    with open(p, encoding="utf-8") as f:
        text = f.read(3_000_000)
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    for pname in PATTERNS:
        a = supertok.count_pretokens(str(path), pname, show_progress=False)
        b = supertok.count_pretokens_from_iterator([text], pname, show_progress=False)
        assert a == b, pname


def test_split_lines(tmp_path):
    text = "a\n\nb  \n c\r\nd.\nfoo bar\n\n\n"
    lines = text.splitlines(keepends=True)
    want = {}
    for line in lines:
        for k, v in ref_counts([line], R50K_PAT_STR).items():
            want[k] = want.get(k, 0) + v
    a = supertok.count_pretokens_from_iterator([text], "gpt2", split_lines=True, show_progress=False)
    assert dict(a.items()) == want
    p = tmp_path / "l.txt"
    p.write_text(text, encoding="utf-8")
    b = supertok.count_pretokens(str(p), "gpt2", split_lines=True, show_progress=False)
    assert a == b
    assert dict(supertok.count_pretokens(str(p), "gpt2", show_progress=False).items()) == ref_counts([text], R50K_PAT_STR)


def test_rustbpe_merge_for_merge():
    """rustbpe uses the same tie-break rule and counting; on text where no merge re-creates an
    existing token, the merge lists must be identical."""
    rustbpe = pytest.importorskip("rustbpe")
    p = require_corpus("en.txt")
    with open(p, encoding="utf-8") as f:
        text = f.read(2_000_000)
    docs = text.split("\n\n")
    t = rustbpe.Tokenizer()
    t.train_from_iterator(iter(docs), 4096, pattern=CL100K_PAT_STR)
    theirs = [b for b, _ in sorted(t.get_mergeable_ranks(), key=lambda x: x[1])]
    ours = train_quiet(docs, 4096, pattern="cl100k")
    n = len(ours.merges)
    assert len(ours.vocab) == 4096
    if n == 4096 - 256:  # no duplicate-bytes merge happened: exact equality
        assert ours.vocab == theirs
    else:  # up to the first duplicate
        k = next(i for i, (a, b) in enumerate(ours.merges) if ours.vocab[a] + ours.vocab[b] in ours.vocab[: 256 + i])
        assert ours.vocab[: 256 + k] == theirs[: 256 + k]


def test_hf_tokenizers_agree_on_trained_merges():
    """Build an HF BPE model from our vocab + merges with the tokenizers API and check it
    encodes held-out text exactly like our tiktoken-style encoder."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    p = require_corpus("en.txt")
    with open(p, encoding="utf-8") as f:
        text = f.read(1_200_000)
    train_text, held = text[:1_000_000], text[1_000_000:]
    res = train_quiet([train_text], 3000, pattern="o200k")
    bl = pre_tokenizers.ByteLevel.alphabet()  # noqa: F841 - ensures API present
    from tokenizers.pre_tokenizers import ByteLevel

    # byte -> unicode mapping of GPT-2
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    b2u = {b: chr(c) for b, c in zip(bs, cs)}
    sym = lambda bb: "".join(b2u[x] for x in bb)  # noqa: E731
    vocab = {sym(b): i for i, b in enumerate(res.vocab)}
    merges = [(sym(res.vocab[a]), sym(res.vocab[b])) for a, b in res.merges]
    hf = Tokenizer(models.BPE(vocab, merges, ignore_merges=False))
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(O200K_PAT_STR), behavior="isolated"),
            ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.decoder = decoders.ByteLevel()
    enc = res.to_encoding()
    for chunk in [held[i : i + 5000] for i in range(0, len(held), 5000)]:
        assert hf.encode(chunk).ids == enc.encode_ordinary(chunk)


# ---------------------------------------------------------------- options


def test_special_tokens_layout_and_collision():
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7))) for _ in range(200)]
    texts = ["<eot> hello <eot> hello world " * 50 + " ".join(words)]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = train_quiet(texts, 300, special_tokens=["<|endoftext|>", " hello"])
    assert res.special_tokens == {"<|endoftext|>": 298, " hello": 299}
    assert len(res.vocab) == 300
    assert res.vocab.count(b" hello") == 1  # not duplicated
    assert " hello" in res.summary.special_collisions
    assert any("special token" in str(x.message) for x in w)
    enc = res.to_encoding()
    assert enc.encode("<|endoftext|>", allowed_special="all") == [298]


def test_max_token_length_and_min_frequency():
    texts = ["abcdefgh " * 100 + "zzzz"]
    res = train_quiet(texts, 400, max_token_length=3)
    assert max(len(b) for b in res.vocab) <= 3
    res = train_quiet(texts, 400, min_frequency=50)
    assert all(c >= 50 for c in res.merge_counts)
    assert res.summary.stop_reason == "min_frequency"
    res = train_quiet(["ab"], 400)
    assert res.summary.stop_reason == "no_pairs"
    assert res.merges == [(97, 98)]


# ---------------------------------------------------------------- PretokenCounts


def test_pretoken_counts_api(tmp_path):
    a = PretokenCounts("p")
    a.add(b"hello", 3)
    a.add("wörld")
    a.add(b"x", 2**63)
    assert len(a) == 3 and a[b"hello"] == 3 and "wörld" in a and a.total() == 2**63 + 4
    assert a.most_common(1) == [(b"x", 2**63)]
    b = pickle.loads(pickle.dumps(a))
    assert a == b and b.pattern == "p"
    assert len(pickle.dumps(a)) < 100
    c = a + b
    assert c[b"x"] == 2**64 - 1 or c[b"x"] == 2**64  # saturating u64
    path = tmp_path / "c.bin"
    a.save(str(path))
    assert PretokenCounts.load(str(path)) == a
    with pytest.raises(ValueError, match="different patterns"):
        a + PretokenCounts("q")
    with pytest.raises(ValueError, match="magic"):
        PretokenCounts.from_bytes(b"garbage")
    with pytest.raises(ValueError, match="truncated"):
        PretokenCounts.from_bytes(a.to_bytes()[:-3])
    with pytest.raises(ValueError):
        a.add(b"")
    with pytest.raises(TypeError):
        a.add(3)


def test_train_from_counts_without_pattern():
    c = PretokenCounts()
    c.add(b"hello", 5)
    with pytest.raises(ValueError, match="pattern"):
        supertok.train_from_counts(c, 300, show_progress=False)
    r = supertok.train_from_counts(c, 300, pattern="gpt2", show_progress=False)
    assert r is not None


# ---------------------------------------------------------------- bad input


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        supertok.train_from_iterator([], 300, show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        supertok.train_from_iterator(["", ""], 300, show_progress=False)
    with pytest.raises(ValueError, match="whitespace"):
        supertok.train_from_iterator([" \n\t  \u3000 "], 300, show_progress=False)
    with pytest.raises(ValueError, match="at least 256"):
        supertok.train_from_iterator(["hello"], 255, show_progress=False)
    with pytest.raises(ValueError, match="= 258"):
        supertok.train_from_iterator(["hello"], 257, special_tokens=["<a>", "<b>"], show_progress=False)
    with pytest.raises(ValueError, match="single byte"):
        supertok.train_from_iterator(["hello"], 300, special_tokens=["a"], show_progress=False)
    with pytest.raises(ValueError, match="twice"):
        supertok.train_from_iterator(["hello"], 300, special_tokens=["<a>", "<a>"], show_progress=False)
    with pytest.raises(TypeError, match="item 1"):
        supertok.train_from_iterator(["hello", b"x"], 300, show_progress=False)
    with pytest.raises(TypeError):
        supertok.train_from_iterator("hello", 300, show_progress=False)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        supertok.train(str(tmp_path / "nope.txt"), 300, show_progress=False)
    with pytest.raises(IsADirectoryError):
        supertok.train(str(tmp_path), 300, show_progress=False)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world\n" * 1000 + b"\xff\xfe tail")
    with pytest.raises(ValueError, match=r"bad\.txt.*byte offset 12000"):
        supertok.train(str(bad), 300, show_progress=False)
    r = supertok.train(str(bad), 300, show_progress=False, errors="replace")
    assert r is not None
    with pytest.raises(ValueError, match="errors must be"):
        supertok.count_pretokens(str(bad), errors="ignore", show_progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        supertok.train(str(empty), 300, show_progress=False)
    with pytest.raises(ValueError, match="invalid split pattern"):
        supertok.train_from_iterator(["x"], 300, pattern="(", show_progress=False)
    with pytest.raises(ValueError, match="threads"):
        supertok.train_from_iterator(["x"], 300, threads=0, show_progress=False)


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    p = tmp_path / "locked.txt"
    p.write_text("hello")
    p.chmod(0)
    with pytest.raises(OSError, match="locked.txt"):
        supertok.train(str(p), 300, show_progress=False)


# ---------------------------------------------------------------- low-level hooks


def test_bpe_trainer_replay_veto_trace():
    texts = ["the cat sat on the mat. the hat. " * 20, "that thing: the other: "]
    counts = supertok.count_pretokens_from_iterator(texts, "cl100k", show_progress=False)
    t = _core.BpeTrainer(counts)
    t.train(256 + 30)
    full = t.merges()
    vocab = t.vocab()
    byte_merges = [(vocab[a], vocab[b]) for a, b, _, _ in full]
    # Replay of its own merges reproduces them exactly (ids and counts).
    t2 = _core.BpeTrainer(counts)
    t2.set_tracing(True)
    assert t2.replay(byte_merges[:10]) == 10
    t2.train(256 + 30)
    assert t2.merges() == full
    trace = t2.take_trace()
    assert len(trace) == len(full) > 10
    # The trace gives the count of each merge's pair before its step.
    t3 = _core.BpeTrainer(counts)
    live = {(a, b): c for a, b, c in t3.pair_counts()}
    for (a, b, _, c), changes in zip(full, trace):
        assert live.get((a, b), 0) == c
        for la, lb, after in changes:
            if after:
                live[(la, lb)] = after
            else:
                live.pop((la, lb), None)
    t3.replay(byte_merges)
    assert {(a, b): c for a, b, c in t3.pair_counts()} == live
    # Replay policies for a merge that never occurs.
    t4 = _core.BpeTrainer(counts)
    assert t4.replay([(b"q", b"q"), (b"t", b"h")], "skip") == 1
    assert t4.dropped_replays() == [(b"q", b"q")]
    t5 = _core.BpeTrainer(counts)
    assert t5.replay([(b"q", b"q"), (b"qq", b"q")], "keep") == 2
    assert t5.vocab()[256:] == [b"qq", b"qqq"]
    with pytest.raises(ValueError, match="does not occur"):
        _core.BpeTrainer(counts).replay([(b"q", b"q")], "error")
    with pytest.raises(ValueError, match="no earlier merge"):
        _core.BpeTrainer(counts).replay([(b"qq", b"q")], "keep")
    # Veto: no token containing ": " and none spanning a space after a letter.
    t6 = _core.BpeTrainer(counts)
    t6.train(256 + 60, veto=lambda l, r: b": " in l + r or b"t " in l + r)
    assert all(b": " not in v and b"t " not in v for v in t6.vocab())
    with pytest.raises(ZeroDivisionError):
        _core.BpeTrainer(counts).train(300, veto=lambda l, r: 1 / 0)


# ---------------------------------------------------------------- CLI


def test_cli_train(tmp_path, capsys):
    from supertok.cli import main

    f = tmp_path / "a.txt"
    rng = random.Random(1)
    f.write_text(" ".join("".join(rng.choice("abcdefgh") for _ in range(5)) for _ in range(3000)), encoding="utf-8")
    out = tmp_path / "t.tiktoken"
    cnt = tmp_path / "c.bin"
    assert main(["train", str(f), "--vocab-size", "280", "--out", str(out), "--save-counts", str(cnt)]) == 0
    err = capsys.readouterr().err
    assert "Trained" in err and "peak memory" in err
    ranks = supertok.load_tiktoken_bpe(str(out))
    assert len(ranks) == 280
    out2 = tmp_path / "t2.tiktoken"
    assert main(["train", "--from-counts", str(cnt), "--vocab-size", "280", "--out", str(out2), "--quiet"]) == 0
    assert supertok.load_tiktoken_bpe(str(out2)) == ranks
    assert main(["train", str(tmp_path / "missing.txt"), "--vocab-size", "280", "--quiet"]) == 1
    assert "missing.txt" in capsys.readouterr().err
    assert main(["train", str(f), "--vocab-size", "10", "--quiet"]) == 1


# ---------------------------------------------------------------- slow (pytest -m slow)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=nasty_texts(max_texts=10), extra=st.integers(1, 150), pname=st.sampled_from(list(PATTERNS)))
def test_matches_brute_force_nasty_long(texts, extra, pname):
    test_matches_brute_force_nasty.hypothesis.inner_test(texts, extra, pname)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40, 400))
def test_matches_brute_force_random_long(seed):
    test_matches_brute_force_random(seed)


@pytest.mark.slow
def test_rustbpe_full_corpora():
    """Whole en.txt + code.txt, vocab 16K: identical to rustbpe up to the first merge that
    re-creates an existing token (rustbpe then duplicates the token; we reuse the id)."""
    rustbpe = pytest.importorskip("rustbpe")
    docs = []
    for name in ("en.txt", "code.txt"):
        with open(require_corpus(name), encoding="utf-8") as f:
            docs.append(f.read())
    t = rustbpe.Tokenizer()
    t.train_from_iterator(iter(docs), 16384, pattern=CL100K_PAT_STR)
    theirs = [b for b, _ in sorted(t.get_mergeable_ranks(), key=lambda x: x[1])]
    ours = train_quiet(docs, 16384, pattern="cl100k")
    k = next(
        (i for i, (a, b) in enumerate(ours.merges) if ours.vocab[a] + ours.vocab[b] in ours.vocab[: 256 + i]),
        len(ours.merges),
    )
    assert k > 1000
    assert ours.vocab[: 256 + k] == theirs[: 256 + k]


# ---------------------------------------------------------------- the returned Tokenizer


def _require_tokenizer():
    cls = getattr(supertok, "Tokenizer", None)
    if cls is None or not hasattr(cls, "from_bpe"):
        pytest.skip("supertok.Tokenizer.from_bpe is not available yet")
    return cls


def _train_and_held(n_train: int = 1_500_000):
    docs, held = [], []
    for name in ("en.txt", "code.txt"):
        with open(require_corpus(name), encoding="utf-8") as f:
            text = f.read(n_train + 200_000)
        docs.append(text[:n_train])
        held.extend(text[n_train + i : n_train + i + 4000] for i in range(0, 200_000, 4000))
    return docs, held


@pytest.mark.parametrize("pattern", ["o200k", "cl100k", "gpt2"])
def test_trained_tokenizer_hf_and_tiktoken_identical(tmp_path, pattern):
    """train() returns a supertok.Tokenizer; its tokenizer.json loads in HF tokenizers with
    identical ids, and to_tiktoken() encodes identically."""
    cls = _require_tokenizer()
    tokenizers = pytest.importorskip("tokenizers")
    docs, held = _train_and_held()
    tok = supertok.train_from_iterator(
        docs, 4000, pattern=pattern, special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False
    )
    assert isinstance(tok, cls)
    assert tok.special_tokens == {"<|endoftext|>": 3998, "<|pad|>": 3999}
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    hf = tokenizers.Tokenizer.from_file(str(path))
    enc = tok.to_tiktoken()
    probes = held + NASTY + ["".join(NASTY), "a" * 5000, " \n" * 300, "x<|endoftext|>y"]
    for t in probes:
        ours = tok.encode(t)
        assert hf.encode(t).ids == ours, t[:80]
        if "<|endoftext|>" not in t:
            assert enc.encode_ordinary(t) == ours, t[:80]
        assert tok.decode(ours) == t
    assert enc.encode("x<|endoftext|>y", allowed_special="all") == tok.encode("x<|endoftext|>y")


def test_train_files_returns_tokenizer_and_cli_json(tmp_path):
    cls = _require_tokenizer()
    tokenizers = pytest.importorskip("tokenizers")
    from supertok.cli import main

    docs, held = _train_and_held(400_000)
    files = []
    for i, d in enumerate(docs):
        p = tmp_path / f"d{i}.txt"
        p.write_text(d, encoding="utf-8")
        files.append(str(p))
    tok, summary = supertok.train(files, 2000, pattern="cl100k", show_progress=False, return_summary=True)
    assert isinstance(tok, cls) and summary.merges >= 1744 and summary.vocab_size == 2000
    assert summary.peak_memory_bytes and summary.unique_pretokens > 1000
    out = tmp_path / "tok.json"
    assert main(["train", *files, "--vocab-size", "2000", "--pattern", "cl100k", "--out", str(out), "--quiet"]) == 0
    hf = tokenizers.Tokenizer.from_file(str(out))
    for t in held[:20]:
        assert hf.encode(t).ids == tok.encode(t)


def test_progress_bar_without_tqdm(monkeypatch, capsys):
    import sys as _sys

    from supertok._progress import ProgressBar

    monkeypatch.setitem(_sys.modules, "tqdm", None)
    monkeypatch.setitem(_sys.modules, "tqdm.auto", None)
    bar = ProgressBar(1000, "Counting", "B")
    bar.update_to(500)
    bar.update_to(1000)
    bar.close()
    err = capsys.readouterr().err
    assert "Counting" in err and "100.0%" in err and "1.0 KB" in err
    off = ProgressBar(10, "x", enabled=False)
    off.update_to(5)
    off.close()
    assert capsys.readouterr().err == ""
