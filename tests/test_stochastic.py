"""StochasTok: exactness of the split table, invariants, reproducibility, and the
distribution against a straightforward reference implementation (tests/stoch_helpers.py)."""

from __future__ import annotations

import functools
import random
from collections import Counter

import pytest
import supertok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stoch_helpers import (
    chi2_goodness_of_fit,
    chi2_two_sample,
    exact_stochastok_distribution,
    hf_byte_level_bpe_json,
    ref_split_table,
    ref_stochastok,
)
from supertok.stochastic import (
    split_table,
    split_table_arrays,
    stochastok,
    stochastok_batch,
)

np = pytest.importorskip("numpy")

ENCODINGS = ["gpt2", "cl100k_base", "o200k_base"]

# Text biased toward what breaks tokenizers.
NASTY = [
    " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "\u00a0", "\u2009", "\u3000", "\u200b", "e\u0301", "\u0301\u0301",
    "漢字", "日本語のテキスト", "한국어", "👩\u200d👩\u200d👧", "🇩🇪", "🙂🙂", "a" * 40, " " * 33, "!!!???",
    "'s", "'re", "n't", "I'm", "don't", "<|endoftext|>", "<|fim_prefix|>", "12345678", "3.14159", "x=y+1;",
    "hello", " world", "Tokenization", " internationalization", "ümlaut", "Ελληνικά", "русский", "عربى",
]
nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)), max_size=25).map("".join)
probabilities = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]), st.floats(0.0, 1.0))
seeds = st.integers(0, 2**64 - 1)


@functools.lru_cache(maxsize=None)
def enc(name: str) -> supertok.Encoding:
    return supertok.get_encoding(name)


@functools.lru_cache(maxsize=None)
def ref_table(name: str):
    e = enc(name)
    return ref_split_table(e._mergeable_ranks, e._special_tokens.values())


def table_as_dict(table) -> dict:
    offsets, left, right = split_table_arrays(table)
    out = {}
    for t in np.nonzero(np.diff(offsets.astype(np.int64)))[0]:
        a, b = int(offsets[t]), int(offsets[t + 1])
        out[int(t)] = list(zip(left[a:b].tolist(), right[a:b].tolist()))
    return out


# ----------------------------------------------------------------------------- split table


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_split_table_equals_reference(name):
    table = split_table(enc(name))
    assert table_as_dict(table) == ref_table(name)
    assert table.n_splits == sum(map(len, ref_table(name).values()))


@pytest.mark.slow
def test_split_table_equals_reference_o200k():
    assert table_as_dict(split_table(enc("o200k_base"))) == ref_table("o200k_base")


def test_split_table_basics():
    e = enc("gpt2")
    table = split_table(e)
    assert split_table("gpt2") is table  # cached per tokenizer
    assert split_table(table) is table
    ranks = e._mergeable_ranks
    # every multi-byte GPT-2 token has at least its creating merge (the reference asserts it)
    assert all(table.splits(i) for t, i in ranks.items() if len(t) > 1)
    assert all(not table.splits(i) for t, i in ranks.items() if len(t) == 1)
    # non-canonical splits are included: " the" -> " t"+"he" and " th"+"e"
    the = ranks[b" the"]
    assert set(table.splits(the)) == {(ranks[b" "], ranks[b"the"]), (ranks[b" t"], ranks[b"he"]), (ranks[b" th"], ranks[b"e"])}
    eot = e.eot_token
    assert table.is_known(eot) and not table.splits(eot)
    assert not table.is_known(e.n_vocab) and not table.is_known(-1)
    assert table.max_id == e.max_token_value


# ----------------------------------------------------------------------------- invariants


def check_invariants(e, ids, out, p, max_expansions=None):
    assert e.decode_bytes(out) == e.decode_bytes(ids)
    grow = len(out) - len(ids)
    assert 0 <= grow <= int(len(ids) * p)
    if max_expansions is not None:
        assert grow <= max_expansions
    assert all(e.decode_single_token_bytes(t) for t in out)  # every id is a token
    specials = set(e._special_tokens.values())
    assert [t for t in out if t in specials] == [t for t in ids if t in specials]


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=nasty_text, p=probabilities, seed=seeds, cap=st.one_of(st.none(), st.integers(0, 20)))
def test_invariants_hypothesis(name, text, p, seed, cap):
    e = enc(name)
    ids = e.encode(text, allowed_special="all")
    out = stochastok(ids, e, p=p, seed=seed, max_expansions=cap)
    assert isinstance(out, list)
    check_invariants(e, ids, out, p, cap)
    assert stochastok(ids, e, p=p, seed=seed, max_expansions=cap) == out  # same seed, same output
    arr = stochastok(np.array(ids, dtype=np.int64), e, p=p, seed=seed, max_expansions=cap)
    assert arr.tolist() == out  # numpy path draws the same


@pytest.mark.slow
@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=nasty_text, p=probabilities, seed=seeds)
def test_invariants_hypothesis_long(name, text, p, seed):
    e = enc(name)
    ids = e.encode(text, allowed_special="all")
    check_invariants(e, ids, stochastok(ids, e, p=p, seed=seed), p)


def test_invariants_on_corpus():
    from conftest import require_corpus

    with open(require_corpus("en.txt"), encoding="utf-8") as f:
        text = f.read(300_000)
    for name in ENCODINGS:
        e = enc(name)
        ids = e.encode_ordinary(text)
        for p in (0.05, 0.1, 0.3, 1.0):
            out = stochastok(ids, e, p=p, seed=7)
            check_invariants(e, ids, out, p)
            assert len(out) > len(ids)
        # p = 1 with a cap of len(ids): the addition-dataset setting of the paper
        out = stochastok(ids, e, p=1.0, seed=8, max_expansions=len(ids) // 4)
        check_invariants(e, ids, out, 1.0, len(ids) // 4)


def test_seeds_and_identity():
    e = enc("cl100k_base")
    ids = e.encode("The quick brown fox jumps over the lazy dog. " * 50)
    a = stochastok(ids, e, p=0.3, seed=1)
    assert a == stochastok(ids, e, p=0.3, seed=1)
    assert a != stochastok(ids, e, p=0.3, seed=2)
    assert stochastok(ids, e, p=0.0, seed=1) == ids
    assert stochastok(ids, e, p=1.0, seed=1, max_expansions=0) == ids
    assert len(stochastok(ids, e, p=1.0, seed=1, max_expansions=5)) == len(ids) + 5
    # seed=None: fresh randomness (two draws virtually never coincide on 500 tokens)
    assert len({tuple(stochastok(ids, e, p=0.5)) for _ in range(3)}) > 1
    assert stochastok([], e, p=1.0, seed=0) == []
    # tiny inputs: floor(p * n) attempts (int(3 * 0.3) == 0, int(10 * 0.3) == 3)
    assert stochastok(ids[:3], e, p=0.3, seed=0) == ids[:3]


def test_numpy_kinds_and_dtypes():
    e, big = enc("gpt2"), enc("o200k_base")
    ids = e.encode("numpy arrays of token ids, splitting them stochastically")
    ref = stochastok(ids, e, p=0.5, seed=3)
    for dt in (np.uint16, np.int32, np.uint32, np.int64, np.uint64):
        out = stochastok(np.array(ids, dtype=dt), e, p=0.5, seed=3)
        assert isinstance(out, np.ndarray) and out.dtype == dt and out.tolist() == ref
        out[0] = 0  # writable
    # o200k ids do not all fit in uint16: the result is uint32
    ids2 = big.encode("hello")
    assert stochastok(np.array(ids2, dtype=np.uint16), big, p=1.0, seed=0).dtype == np.uint32
    # non-contiguous views and memmap-like subclasses
    arr = np.array(ids * 2, dtype=np.int64)[::2]
    assert stochastok(arr, e, p=0.5, seed=3).tolist() == stochastok(arr.tolist(), e, p=0.5, seed=3)
    # tuples and other iterables give lists
    assert stochastok(tuple(ids), e, p=0.5, seed=3) == ref
    assert stochastok(iter(ids), e, p=0.5, seed=3) == ref


def test_errors():
    e = enc("gpt2")
    ids = e.encode("some text")
    for bad in (-0.1, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="probability"):
            stochastok(ids, e, p=bad, seed=0)
    with pytest.raises(TypeError):
        stochastok(ids, e, p="0.1", seed=0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        stochastok(ids + [e.n_vocab], e, p=0.1, seed=0)
    with pytest.raises(ValueError, match="-1 at position 0"):
        stochastok([-1] + ids, e, p=0.1, seed=0)
    with pytest.raises(ValueError, match="position 2"):
        stochastok(np.array([1, 2, -5]), e, p=0.1, seed=0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        stochastok(np.array([1, 2, 2**40]), e, p=0.1, seed=0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        stochastok([1, 2**40], e, p=0.1, seed=0)
    with pytest.raises(TypeError, match="integer"):
        stochastok(np.array([1.0, 2.0]), e, p=0.1, seed=0)
    with pytest.raises(TypeError, match="integers"):
        stochastok([1, "a"], e, p=0.1, seed=0)
    with pytest.raises(TypeError):
        stochastok("abc", e, p=0.1, seed=0)
    with pytest.raises(TypeError, match="1-D"):
        stochastok(np.zeros((2, 2), dtype=np.int64), e, p=0.1, seed=0)
    for bad_seed, exc in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError)):
        with pytest.raises(exc, match="seed"):
            stochastok(ids, e, p=0.1, seed=bad_seed)
    with pytest.raises(ValueError, match="max_expansions"):
        stochastok(ids, e, p=0.1, seed=0, max_expansions=-1)
    with pytest.raises(TypeError, match="tokenizer"):
        stochastok(ids, object(), p=0.1, seed=0)
    with pytest.raises(ValueError):
        stochastok(ids, "no-such-encoding", p=0.1, seed=0)


# ----------------------------------------------------------------------------- batches


def test_batch_forms_and_threads():
    e = enc("cl100k_base")
    texts = ["first row of text", "", "a much longer second row " * 20, "🙂 emoji row 👩\u200d👩\u200d👧"]
    rows = [e.encode(t) for t in texts]
    out = stochastok_batch(rows, e, p=0.5, seed=11, num_threads=1)
    assert out[0] == stochastok(rows[0], e, p=0.5, seed=11)  # row 0 = single call
    for r, o in zip(rows, out):
        check_invariants(e, r, o, 0.5)
    for threads in (2, 3, 8):
        assert stochastok_batch(rows, e, p=0.5, seed=11, num_threads=threads) == out
    # list of numpy rows -> list of numpy rows, same values
    np_rows = [np.array(r, dtype=np.uint32) for r in rows]
    out_np = stochastok_batch(np_rows, e, p=0.5, seed=11, num_threads=2)
    assert all(isinstance(o, np.ndarray) and o.dtype == np.uint32 for o in out_np)
    assert [o.tolist() for o in out_np] == out
    # ragged values + offsets
    values = np.concatenate(np_rows)
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.uint64)
    v, o = stochastok_batch(values, e, p=0.5, seed=11, offsets=offsets)
    assert o.dtype == np.uint64 and len(o) == len(rows) + 1
    assert [v[o[i] : o[i + 1]].tolist() for i in range(len(rows))] == out
    # 2-D array: rows of equal length
    grid = np.array([r[:4] for r in rows if len(r) >= 4], dtype=np.int64)
    v2, o2 = stochastok_batch(grid, e, p=1.0, seed=5)
    expect = stochastok_batch([list(r) for r in grid.tolist()], e, p=1.0, seed=5)
    assert v2.dtype == np.int64
    assert [v2[o2[i] : o2[i + 1]].tolist() for i in range(len(grid))] == expect


def test_batch_errors():
    e = enc("gpt2")
    with pytest.raises(ValueError, match="row 1"):
        stochastok_batch([[1, 2], [3, e.n_vocab]], e, p=0.5, seed=0)
    with pytest.raises(TypeError, match="row 0"):
        stochastok_batch([["x"]], e, p=0.5, seed=0)
    with pytest.raises(ValueError, match="offsets"):
        stochastok_batch(np.array([1, 2, 3]), e, p=0.5, seed=0, offsets=np.array([0, 2]))
    with pytest.raises(ValueError, match="offsets"):
        stochastok_batch(np.array([1, 2, 3]), e, p=0.5, seed=0, offsets=np.array([0, 2, 1, 3]))
    with pytest.raises(ValueError, match="offsets"):
        stochastok_batch(np.array([1, 2, 3]), e, p=0.5, seed=0, offsets=np.array([-1, 3]))
    with pytest.raises(TypeError):
        stochastok_batch("abc", e, p=0.5, seed=0)
    with pytest.raises(ValueError, match="num_threads"):
        stochastok_batch([[1]], e, p=0.5, seed=0, num_threads=0)


# ----------------------------------------------------------------------------- distribution


def test_split_choice_is_uniform_chi_square():
    # A single token with p = 1 gets exactly one attempt, which must split it: the chosen
    # split must be uniform among its legal splits.
    e = enc("gpt2")
    table = split_table(e)
    ranks = e._mergeable_ranks
    candidates = sorted((len(table.splits(i)), i) for i in ranks.values())
    for k, tok in candidates[-3:] + [(len(table.splits(ranks[b" the"])), ranks[b" the"])]:
        assert k >= 3
        n = 400 * k
        out = stochastok_batch([[tok]] * n, e, p=1.0, seed=1000 + tok)
        counts = Counter(tuple(o) for o in out)
        assert set(counts) == set(table.splits(tok))
        pv = chi2_goodness_of_fit(counts, {s: 1 / k for s in table.splits(tok)})
        assert pv > 1e-4, (tok, k, counts, pv)


@pytest.mark.parametrize(
    "text,p,cap",
    [(" the cat sat", 1.0, None), (" the cat sat", 1.0, 1), (" hello", 1.0, None), ("internationalization", 1.0, None)],
)
def test_exact_distribution_against_enumeration(text, p, cap):
    # The full output distribution (sequences in order) against the reference procedure's
    # exact distribution, computed by enumerating every attempt.
    e = enc("gpt2")
    ids = e.encode(text)
    exact = exact_stochastok_distribution(ids, ref_table("gpt2"), p, cap)
    n = 30_000
    out = stochastok_batch([ids] * n, e, p=p, seed=len(text) * 31 + (cap or 0), max_expansions=cap)
    counts = Counter(tuple(o) for o in out)
    pv = chi2_goodness_of_fit(counts, exact)
    assert pv > 1e-4, (text, len(exact), pv)


@pytest.mark.parametrize("p,cap", [(0.1, None), (0.3, None), (1.0, None), (1.0, 10)])
def test_success_count_distribution_against_reference(p, cap):
    # Distribution of the number of successful expansions (= growth) on a real sentence:
    # Rust vs the straightforward reference implementation, two-sample chi-square.
    e = enc("gpt2")
    ids = e.encode(
        "StochasTok splits tokens at random positions of the current sequence; an attempt on a "
        "single byte is wasted, while halves can be split again. Let's check 123 and 4567!"
    )
    table = ref_table("gpt2")
    n = 4000
    rng = random.Random(1234)
    ref = Counter(len(ref_stochastok(ids, table, p, rng, cap)) - len(ids) for _ in range(n))
    ours = Counter(len(o) - len(ids) for o in stochastok_batch([ids] * n, e, p=p, seed=99, max_expansions=cap))
    pv = chi2_two_sample(ours, ref)
    assert pv > 1e-4, (p, cap, sorted(ours.items()), sorted(ref.items()), pv)
    # and the distribution of produced tokens (how deep splitting goes): byte tokens share
    n_bytes = lambda seqs: sum(1 for s in seqs for t in s if len(e.decode_single_token_bytes(t)) == 1)  # noqa: E731
    rng = random.Random(77)
    ref_seqs = [ref_stochastok(ids, table, p, rng, cap) for _ in range(1000)]
    our_seqs = stochastok_batch([ids] * 1000, e, p=p, seed=5, max_expansions=cap)
    a, b = n_bytes(ref_seqs) / 1000, n_bytes(our_seqs) / 1000
    assert abs(a - b) <= 0.1 * max(a, 1.0), (a, b)


# ----------------------------------------------------------------------------- other tokenizers


def test_tiktoken_encoding_is_accepted():
    pytest.importorskip("tiktoken")
    import tiktoken
    import tiktoken.load  # noqa: F401  (conftest's helper needs the submodule loaded)
    from conftest import tiktoken_reference

    ref = tiktoken_reference("cl100k_base")
    assert isinstance(ref, tiktoken.Encoding)
    ids = ref.encode("Tiktoken's own Encoding object works too <|endoftext|>", allowed_special="all")
    out = stochastok(ids, ref, p=1.0, seed=2)
    assert ref.decode_bytes(out) == ref.decode_bytes(ids)
    assert table_as_dict(split_table(ref)) == table_as_dict(split_table(enc("cl100k_base")))


@functools.lru_cache(maxsize=None)
def hf_gpt2():
    tokenizers = pytest.importorskip("tokenizers")
    e = enc("gpt2")
    return tokenizers.Tokenizer.from_str(hf_byte_level_bpe_json(e._mergeable_ranks, e._special_tokens))


def test_hf_tokenizer():
    tok = hf_gpt2()
    e = enc("gpt2")
    assert table_as_dict(split_table(tok)) == table_as_dict(split_table(e))
    text = "Hugging Face byte-level BPE: ümlaut, 漢字, emoji 🙂 and <|endoftext|> too."
    ids = tok.encode(text).ids
    assert ids == e.encode(text, allowed_special="all")
    assert e.eot_token in ids
    for seed in range(20):
        out = stochastok(ids, tok, p=1.0, seed=seed)
        assert tok.decode(out, skip_special_tokens=False) == tok.decode(ids, skip_special_tokens=False)
        assert out.count(e.eot_token) == 1
        assert all(tok.id_to_token(t) is not None for t in out)


def test_hf_non_byte_level_rejected():
    tokenizers = pytest.importorskip("tokenizers")
    model = tokenizers.models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")])
    tok = tokenizers.Tokenizer(model)
    with pytest.raises(ValueError, match="byte-level"):
        split_table(tok)
    wp = tokenizers.Tokenizer(tokenizers.models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    with pytest.raises(ValueError, match="BPE"):
        split_table(wp)


SUPERWORDS = [b" of the", b" in the", b" to the", b" on the", b" at the", b" it is", b" such as", b" as well",
              b" as well as", b" of the same", b" for example", b", and the"]


@functools.lru_cache(maxsize=None)
def superbpe_style():
    """A SuperBPE-style encoding: GPT-2's subwords plus superword tokens that span spaces,
    with a pre-tokenizer that only splits at line breaks and sentence ends (so merges can
    cross word boundaries)."""
    e = enc("gpt2")
    ranks = dict(e._mergeable_ranks)
    nxt = e.n_vocab  # GPT-2's <|endoftext|> is 50256; superwords start after it
    for w in SUPERWORDS:
        ranks[w] = nxt
        nxt += 1
    return supertok.Encoding(
        "superbpe-style",
        pat_str=r"[^\n.!?]+[.!?]*|\n+|[.!?]+",
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def test_superbpe_style_superwords_split_into_subwords():
    s = superbpe_style()
    table = split_table(s)
    ranks = s._mergeable_ranks
    of_the = ranks[b" of the"]
    assert (ranks[b" of"], ranks[b" the"]) in table.splits(of_the)
    assert (ranks[b" as well"], ranks[b" as"]) in table.splits(ranks[b" as well as"])
    text = "One of the examples, such as this one, as well as the rest of the same kind. In the end!"
    ids = s.encode(text)
    assert of_the in ids and ranks[b" of the same"] in ids
    for seed in range(30):
        out = stochastok(ids, s, p=1.0, seed=seed)
        check_invariants(s, ids, out, 1.0)
    # a superword, split once, yields subword halves
    halves = Counter(tuple(o) for o in stochastok_batch([[of_the]] * 200, s, p=1.0, seed=3))
    assert set(halves) == set(table.splits(of_the))
    assert all(not s.decode_single_token_bytes(l).endswith(b" ") for l, _ in halves)


def test_chunked_ragged_equals_single_call(monkeypatch):
    # Large ragged batches go to Rust in chunks; row i must keep stream i.
    import supertok.stochastic as st

    e = enc("gpt2")
    rows = [e.encode(f"row {i}: " + "some text to split " * (i % 7)) for i in range(40)] + [[], [262]]
    values = np.concatenate([np.asarray(r, dtype=np.uint32) for r in rows])
    offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.uint64)
    whole = stochastok_batch(values, e, p=0.5, seed=2, offsets=offsets)
    listed = stochastok_batch(rows, e, p=0.5, seed=2)
    for chunk in (1, 7, 50):
        monkeypatch.setattr(st, "_CHUNK_TOKENS", chunk)
        v, o = stochastok_batch(values, e, p=0.5, seed=2, offsets=offsets)
        assert np.array_equal(v, whole[0]) and np.array_equal(o, whole[1])
        v, o = stochastok_batch(values, e, p=1.0, seed=2, offsets=offsets, max_expansions=3)
        assert [v[o[i] : o[i + 1]].tolist() for i in range(len(rows))] == stochastok_batch(
            rows, e, p=1.0, seed=2, max_expansions=3
        )
        grid = np.array([r[:3] for r in rows if len(r) >= 3], dtype=np.uint16)
        v2, o2 = stochastok_batch(grid, e, p=1.0, seed=9)
        assert v2.dtype == np.uint16
        assert [v2[o2[i] : o2[i + 1]].tolist() for i in range(len(grid))] == stochastok_batch(
            grid.tolist(), e, p=1.0, seed=9
        )
        assert [x.tolist() for x in stochastok_batch([np.asarray(r) for r in rows], e, p=0.5, seed=2)] == listed
        for bad in ([0, 5, 3, len(values)], [1, len(values)], [0, 3]):
            with pytest.raises(ValueError, match="offsets"):
                stochastok_batch(values, e, p=0.5, seed=0, offsets=np.array(bad))
