"""supertok.align: alignment invariants (equal chunk bytes on both sides, identity, byte
tokenizers, coarsening with words=True) and errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import supertok
from supertok import metrics as M
from supertok.alignment import align_offsets

np = pytest.importorskip("numpy")

BYTES = M.wrap(lambda s: list(s.encode("utf-8")), name="bytes", token_bytes=[bytes([i]) for i in range(256)])

TEXTS = [
    "Hello world, this is  a tokenization\u00a0test: 12345678 — naïve café 東京",
    "def f(x):\n    return x ** 2  # squares\n\n\n",
    "",
    " ",
    "🤖🤖 emoji and\u3000ideographic space",
]


def chunk_bytes(tok, ids, chunks) -> list[bytes]:
    t = M.as_tokenizer(tok)
    n = int(chunks.max()) + 1 if len(chunks) else 0
    out = [b""] * n
    for i, c in zip(ids, chunks):
        out[c] += t.token_bytes(i)
    return out


def check_invariants(ta, ia, tb, ib, words=False) -> tuple:
    ca, cb = supertok.align(ta, ia, tb, ib, words=words)
    assert ca.dtype == np.int64 and len(ca) == len(ia) and len(cb) == len(ib)
    if ia:
        # chunks are numbered 0.. in order, contiguous, on both sides
        for c in (ca, cb):
            assert c[0] == 0 and (np.diff(c) >= 0).all() and (np.diff(c) <= 1).all()
        assert ca[-1] == cb[-1]
        assert ca[-1] + 1 <= min(len(ia), len(ib))
        assert chunk_bytes(ta, ia, ca) == chunk_bytes(tb, ib, cb)
        # every chunk boundary is a boundary on both sides and chunks are maximal (words=False)
        if not words:
            ea = np.cumsum(M.as_tokenizer(ta).token_lengths(ia))
            eb = np.cumsum(M.as_tokenizer(tb).token_lengths(ib))
            assert ca[-1] + 1 == len(np.intersect1d(ea, eb))
    return ca, cb


@pytest.mark.parametrize("text", TEXTS)
def test_invariants_on_bundled_encodings(text: str) -> None:
    encs = [supertok.get_encoding(n) for n in ("gpt2", "cl100k_base", "o200k_base")]
    for a in encs + [BYTES]:
        for b in encs + [BYTES]:
            ia, ib = a.encode(text), b.encode(text)
            check_invariants(a, ia, b, ib)
            check_invariants(a, ia, b, ib, words=True)


def test_identical_tokenizations_give_one_chunk_per_token() -> None:
    enc = supertok.get_encoding("o200k_base")
    for text in TEXTS:
        ids = enc.encode(text)
        ca, cb = supertok.align(enc, ids, enc, ids)
        assert (ca == np.arange(len(ids))).all() and (cb == ca).all()


def test_against_bytes_chunks_are_the_other_sides_tokens() -> None:
    enc = supertok.get_encoding("cl100k_base")
    text = TEXTS[0]
    ids = enc.encode(text)
    ca, cb = supertok.align(enc, ids, BYTES, list(text.encode()))
    assert (ca == np.arange(len(ids))).all()
    lens = [len(enc.decode_single_token_bytes(i)) for i in ids]
    assert cb.tolist() == [k for k, n in enumerate(lens) for _ in range(n)]


def test_hand_example() -> None:
    # A: "ab|c|de"  B: "a|bcd|e"  -> one chunk "abcde"; with A: "ab|cd|e" B: "a|b|cd|e" -> ab, cd, e
    vocab = [b"a", b"b", b"c", b"d", b"e", b"ab", b"de", b"bcd", b"cd"]
    tok = M.wrap(lambda s: [], token_bytes=vocab)
    ca, cb = supertok.align(tok, [5, 2, 6], tok, [0, 7, 4])
    assert ca.tolist() == [0, 0, 0] and cb.tolist() == [0, 0, 0]
    ca, cb = supertok.align(tok, [5, 8, 4], tok, [0, 1, 8, 4])
    assert ca.tolist() == [0, 1, 2] and cb.tolist() == [0, 0, 1, 2]


def test_words_coarsens_to_whitespace_bounded_chunks() -> None:
    a, b = supertok.get_encoding("gpt2"), supertok.get_encoding("o200k_base")
    text = "The  unbelievably long-winded tokenization, re-examined\tonce\u00a0more.\nOK"
    ia, ib = a.encode(text), b.encode(text)
    ca, _ = supertok.align(a, ia, b, ib)
    wa, wb = supertok.align(a, ia, b, ib, words=True)
    # coarsening: tokens in one fine chunk stay in one word chunk
    assert all(wa[i] == wa[i + 1] for i in range(len(ia) - 1) if ca[i] == ca[i + 1])
    chunks = chunk_bytes(a, ia, wa)
    assert b"".join(chunks) == text.encode()
    for c in chunks[1:]:
        assert c.decode()[0].isspace()
    for c in chunks:  # no whitespace-starting common boundary inside a chunk
        assert chunk_bytes(b, ib, wb)[chunks.index(c)] == c


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=80))
def test_invariants_hypothesis(text: str) -> None:
    a, b = supertok.get_encoding("cl100k_base"), supertok.get_encoding("gpt2")
    ia, ib = a.encode_ordinary(text), b.encode_ordinary(text)
    check_invariants(a, ia, b, ib)
    check_invariants(a, ia, b, ib, words=True)


def test_text_and_hf_normalizer() -> None:
    enc = supertok.get_encoding("cl100k_base")
    spec = json.loads(supertok.Tokenizer.from_tiktoken(enc).to_json())
    spec["normalizer"] = {"type": "Lowercase"}
    low = supertok.Tokenizer.from_str(json.dumps(spec))
    text = "HELLO Wonderful WORLD of Tokens"
    il, ie = low.encode(text), enc.encode(text)
    with pytest.raises(ValueError, match="different bytes"):
        supertok.align(low, il, enc, ie)
    ca, cb = supertok.align(low, il, enc, ie, text=text)
    assert ca[-1] == cb[-1] and ca[-1] >= 3
    with pytest.raises(ValueError, match="not the tokenization"):
        supertok.align(low, il[:-1], enc, ie, text=text)


def test_errors() -> None:
    enc = supertok.get_encoding("cl100k_base")
    with pytest.raises(ValueError, match="different bytes"):
        supertok.align(enc, enc.encode("abc"), enc, enc.encode("abd"))
    with pytest.raises(ValueError, match="not in the vocabulary|KeyError|unknown"):
        supertok.align(BYTES, [300], BYTES, [1])
    with pytest.raises(ValueError, match="different lengths"):
        align_offsets([1, 2], [3])
    with pytest.raises(ValueError, match="non-decreasing"):
        align_offsets([2, 1], [2])
    with pytest.raises(ValueError, match="needs the data"):
        align_offsets([1], [1], words=True)
    assert [x.tolist() for x in align_offsets([0, 1, 1, 3], [1, 3, 3])] == [[0, 0, 0, 1], [0, 1, 1]]


def _two_stage(texts: list[str], t1: int, t2: int):
    """A stage-1 BPE (gpt2 pattern) and a SuperBPE-style extension (whole lines, stage-1
    merges replayed, greedy continuation) built from the trainer's hooks."""
    stage1 = supertok.train_from_iterator(texts, 256 + t1, pattern="gpt2", show_progress=False)
    from supertok.mixture import tokenizer_merges

    counts = supertok.count_pretokens_from_iterator(texts, r"[^\n]+\n?|\n", show_progress=False)
    tr = supertok._core.BpeTrainer(counts)
    tr.replay(tokenizer_merges(stage1), "keep")
    tr.train(256 + t1 + t2)
    vocab = tr.vocab()
    merges = [(a, b) for a, b, _, _ in tr.merges()]
    superbpe = supertok.Tokenizer.from_bpe(vocab, merges, pattern=r"[^\n]+\n?|\n")
    return stage1, superbpe


@pytest.mark.skipif(not hasattr(supertok, "train_from_iterator"), reason="needs the BPE trainer")
def test_superbpe_tokens_are_whole_stage1_tokens() -> None:
    from conftest import require_corpus

    with open(require_corpus("en.txt"), encoding="utf-8") as f:
        text = f.read(1_500_000)
    # sentences without digits or whitespace runs (the two places where the stage-2 splitting
    # lets stage-1 merges straddle stage-1 pretoken boundaries)
    lines = [ln for ln in text.split("\n") if ln and not any(c.isdigit() for c in ln) and "  " not in ln]
    texts = ["\n".join(lines[i : i + 32]) + "\n" for i in range(0, len(lines), 32)]
    stage1, superbpe = _two_stage(texts, 600, 300)
    n_super = n_multi = 0
    for ln in lines[:400]:
        ia, ib = superbpe.encode(ln), stage1.encode(ln)
        ca, cb = supertok.align(superbpe, ia, stage1, ib)
        assert (ca == np.arange(len(ia))).all(), ln  # every SuperBPE token is one chunk ...
        assert (np.bincount(cb) >= 1).all()  # ... of one or more stage-1 tokens
        n_super += len(ia)
        n_multi += int((np.bincount(cb) >= 2).sum())
        wa, _ = supertok.align(superbpe, ia, stage1, ib, words=True)
        assert wa[-1] <= ca[-1]
    assert n_multi > 0  # superword tokens do occur
