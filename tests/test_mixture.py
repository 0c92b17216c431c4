"""supertok.mixture: the Rust replay against a brute-force reference, the merge order of a
tokenizer's own training text, recovery of synthetic mixtures (BPE and two-stage
SuperBPE-style tokenizers), both LP solvers, bad input."""

from __future__ import annotations

import re

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("scipy")

import supertok  # noqa: E402
from supertok import mixture  # noqa: E402

import mixture_ref as R  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(supertok, "train_from_iterator"), reason="needs the BPE trainer")

GPT2_SPLIT = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")
LINES = r"[^\n]+\n?|\n"  # stage 2: whole lines are the units


def gpt2_split(text: str) -> list[str]:
    return GPT2_SPLIT.findall(text)


ALPHABETS = {"a": "abcdefghij", "b": "fghijklmnop", "c": "mnopqrstuvwxyz"}


@pytest.fixture(scope="module")
def corpora() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    corp = {k: R.synthetic_language(i, 120000, al) for i, (k, al) in enumerate(ALPHABETS.items())}
    train = {k: v[: len(v) // 2] for k, v in corp.items()}
    held = {k: v[len(v) // 2 :] for k, v in corp.items()}
    return train, held


def true_shares(train: dict[str, list[str]], weights: dict[str, float], total: int) -> tuple[list[str], dict[str, float]]:
    mix = R.mixture(train, weights, total)
    # exact byte shares of what was drawn (lines end with "\n" in the training texts)
    owner = {ln: k for k, lines in train.items() for ln in lines}
    b = {k: 0 for k in train}
    for ln in mix:
        b[owner[ln]] += len(ln.encode()) + 1
    tot = sum(b.values())
    return mix, {k: v / tot for k, v in b.items()}


def mse(a: dict[str, float], b: dict[str, float]) -> float:
    return float(np.mean([(a[k] - b[k]) ** 2 for k in a]))


def lines_to_texts(lines: list[str], per: int = 50) -> list[str]:
    return ["\n".join(lines[i : i + per]) + "\n" for i in range(0, len(lines), per)]


# ---------------------------------------------------------------------- replay


def test_replay_matches_brute_force(corpora) -> None:
    train, held = corpora
    mix, _ = true_shares(train, {"a": 0.5, "b": 0.3, "c": 0.2}, 120_000)
    tok = supertok.train_from_iterator(lines_to_texts(mix), 256 + 120, pattern="gpt2", show_progress=False)
    merges = mixture.tokenizer_merges(tok)
    assert len(merges) == 120
    sample = lines_to_texts(held["b"][:3000])
    tr = mixture.replay(tok, {"b": sample})["b"]
    words = R.count_words(sample, gpt2_split)
    ref = R.replay_trace("b", words, merges, sum(len(t.encode()) for t in sample))
    assert tr.n_steps == ref.n_steps == 120
    assert tr.n_bytes == ref.n_bytes and tr.n_pairs == ref.n_pairs
    assert tr.merge_keys.tolist() == ref.merge_keys.tolist()
    for t in (0, 1, 2, 17, 60, 119, 120):
        assert tr.counts_before(t) == ref.counts_before(t), t
    assert tr.merge_counts().tolist() == ref.merge_counts().tolist()
    # the same replay from a plain merge list + pattern, and from an Encoding
    tr2 = mixture.replay(merges, {"b": sample}, pattern="gpt2")["b"]
    assert tr2.change_keys.tolist() == tr.change_keys.tolist()
    enc = tok.to_tiktoken()
    tr3 = mixture.replay(enc, {"b": sample})["b"]
    assert tr3.change_counts.tolist() == tr.change_counts.tolist()


def test_own_training_text_reproduces_merge_order(corpora) -> None:
    train, _ = corpora
    texts = lines_to_texts(train["a"][:4000] + train["c"][:2000])
    tok = supertok.train_from_iterator(texts, 256 + 150, pattern="gpt2", show_progress=False)
    tr = mixture.replay(tok, {"own": texts})["own"]
    mk = tr.merge_keys.tolist()
    for t in range(tr.n_steps):
        counts = tr.counts_before(t)
        best = max(counts.items(), key=lambda kv: (kv[1], -((kv[0][0] << 32) | kv[0][1])))[0]
        assert (best[0] << 32) | best[1] == mk[t], f"step {t}: merge is not the argmax"
    # with a second, unrelated category the LP explains every merge with zero slack
    other = lines_to_texts(train["b"][:3000])
    res = mixture.infer_traces(mixture.replay(tok, {"own": texts, "other": other}))
    assert res.converged
    assert res.objective == pytest.approx(0.0, abs=1e-6)
    assert res.proportions["own"] > 0.99


# ---------------------------------------------------------------------- inference


@pytest.mark.parametrize("weights", [{"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.15, "b": 0.05, "c": 0.8}])
def test_recovers_synthetic_mixture(corpora, weights) -> None:
    train, held = corpora
    mix, truth = true_shares(train, weights, 300_000)
    tok = supertok.train_from_iterator(lines_to_texts(mix), 256 + 300, pattern="gpt2", show_progress=False)
    samples = {k: lines_to_texts(v) for k, v in held.items()}
    est = mixture.infer(tok, samples)
    assert set(est) == set(weights)
    assert sum(est.values()) == pytest.approx(1.0)
    assert mse(est, truth) < 1e-4, (est, truth)


def test_solvers_agree(corpora) -> None:
    pytest.importorskip("highspy")
    train, held = corpora
    mix, truth = true_shares(train, {"a": 0.3, "b": 0.3, "c": 0.4}, 200_000)
    tok = supertok.train_from_iterator(lines_to_texts(mix), 256 + 200, pattern="gpt2", show_progress=False)
    traces = mixture.replay(tok, {k: lines_to_texts(v) for k, v in held.items()})
    a = mixture.infer_traces(traces, solver="highspy")
    b = mixture.infer_traces(traces, solver="scipy")
    assert a.converged and b.converged
    assert a.objective == pytest.approx(b.objective, rel=1e-6, abs=1e-6)
    for k in truth:
        assert a.proportions[k] == pytest.approx(b.proportions[k], abs=1e-6)
    assert mse(a.proportions, truth) < 1e-4


def test_superbpe_two_stage_replay_and_recovery(corpora) -> None:
    """A two-stage tokenizer (stage 1 split at whitespace, stage 2 on whole lines from the
    trainer's replay + greedy loop) is replayed with the pretokenizer switching at the
    transition and its mixture recovered."""
    train, held = corpora
    weights = {"a": 0.45, "b": 0.35, "c": 0.2}
    mix, truth = true_shares(train, weights, 250_000)
    texts = lines_to_texts(mix)
    t1 = 150
    stage1 = supertok.train_from_iterator(texts, 256 + t1, pattern="gpt2", show_progress=False)
    m1 = mixture.tokenizer_merges(stage1)
    counts2 = supertok.count_pretokens_from_iterator(texts, LINES, show_progress=False)
    tr = supertok._core.BpeTrainer(counts2)
    tr.replay(m1, "keep")
    tr.train(256 + t1 + 150)
    vocab = tr.vocab()
    merges = [(vocab[a], vocab[b]) for a, b, _, _ in tr.merges()]
    assert merges[:t1] == m1 and len(merges) == t1 + 150
    assert any((vocab[a] + vocab[b]).find(b" ", 1) > 0 for a, b, _, _ in tr.merges()[t1:]), "no superword merge"
    samples = {k: lines_to_texts(v) for k, v in held.items()}
    traces = mixture.replay(merges, samples, pattern="gpt2", transition=t1, stage2_pattern=LINES)
    # the trace before the transition is stage-1 counting, after it stage-2 counting
    small = lines_to_texts(held["a"][:300])
    a = mixture.replay(merges, {"a": small}, pattern="gpt2", transition=t1, stage2_pattern=LINES)["a"]
    ref1 = R.replay_trace("a", R.count_words(small, gpt2_split), merges[:t1], 0)
    for t in (0, t1 - 1):
        assert a.counts_before(t) == ref1.counts_before(t), t
    ref2 = R.replay_trace("a", R.count_words(small, lambda s: re.findall(LINES, s)), merges, 0)
    for t in (t1, t1 + 1, t1 + 149, t1 + 150):
        assert a.counts_before(t) == ref2.counts_before(t), t
    est = mixture.infer_traces(traces).proportions
    assert mse(est, truth) < 1e-4, (est, truth)
    # ignoring the transition (stage-1 counting throughout) explains the merges worse
    flat = mixture.infer_traces(mixture.replay(merges, samples, pattern="gpt2"))
    assert flat.objective > mixture.infer_traces(traces).objective


def test_single_category_and_max_merges(corpora) -> None:
    train, held = corpora
    tok = supertok.train_from_iterator(lines_to_texts(train["a"][:3000]), 256 + 50, pattern="gpt2", show_progress=False)
    assert mixture.infer(tok, {"a": held["a"][:500]}) == {"a": 1.0}
    tr = mixture.replay(tok, {"a": held["a"][:500]}, max_merges=10)["a"]
    assert tr.n_steps == 10 and len(tr.step_ptr) == 11


# ---------------------------------------------------------------------- errors


def test_bad_input(corpora) -> None:
    train, held = corpora
    tok = supertok.train_from_iterator(lines_to_texts(train["a"][:2000]), 256 + 30, pattern="gpt2", show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        mixture.replay(tok, {"a": ["  ", ""]})
    with pytest.raises(ValueError, match="non-empty mapping"):
        mixture.replay(tok, {})
    with pytest.raises(TypeError, match="bytes"):
        mixture.replay(tok, {"a": b"abc"})
    with pytest.raises(TypeError, match=r"samples\['a'\]\[1\]"):
        mixture.replay(tok, {"a": ["x", 3]})
    with pytest.raises(ValueError, match="pattern"):
        mixture.replay([(b"a", b"b")], {"a": "ab"})
    with pytest.raises(TypeError, match="pair of bytes"):
        mixture.replay([("a", "b")], {"a": "ab"}, pattern="gpt2")
    with pytest.raises(ValueError, match="no earlier merge creates"):
        mixture.replay([(b"ab", b"c")], {"a": "abc"}, pattern="gpt2")
    with pytest.raises(ValueError, match="transition"):
        mixture.replay(tok, {"a": "abc"}, transition=31, pattern="gpt2")
    with pytest.raises(ValueError, match="stage-1"):
        mixture.replay(tok, {"a": "abc"}, transition=5)
    with pytest.raises(ValueError, match="regex|pattern|parse"):
        mixture.replay(tok, {"a": "abc"}, pattern="(unclosed")
    with pytest.raises(ValueError, match="surrogate"):
        mixture.replay(tok, {"a": "ab\ud800c"})
    t1 = mixture.replay(tok, {"a": "hello there"})
    t2 = mixture.replay(tok, {"b": "hello there"}, max_merges=5)
    with pytest.raises(ValueError, match="same merge list"):
        mixture.infer_traces({**t1, **t2})
    with pytest.raises(ValueError, match="solver"):
        mixture.infer_traces(t1, solver="gurobi")
    with pytest.raises(ValueError, match="no traces"):
        mixture.infer_traces({})


def test_hf_pipeline_splitting(corpora) -> None:
    """A tokenizer.json's own pipeline is what the replay counts: normalizer applied, added
    tokens cut out (here: Lowercase + a special token, against a lowercased text without it)."""
    import json

    train, held = corpora
    tok = supertok.train_from_iterator(lines_to_texts(train["a"][:2000]), 256 + 40, pattern="gpt2",
                                       special_tokens=["<|end|>"], show_progress=False)
    spec = json.loads(tok.to_json())
    spec["normalizer"] = {"type": "Lowercase"}
    low = supertok.Tokenizer.from_str(json.dumps(spec))
    text = "".join(line.upper() + "<|end|>\n" for line in held["a"][:200])
    plain = "".join(line + "\n" for line in held["a"][:200])
    a = mixture.replay(low, {"x": text})["x"]
    b = mixture.replay(mixture.tokenizer_merges(tok), {"x": plain}, pattern="gpt2")["x"]
    for t in (0, 10, a.n_steps):
        assert a.counts_before(t) == b.counts_before(t)
    assert a.n_pairs == b.n_pairs


def test_auto_solver_falls_back_to_scipy(corpora, monkeypatch) -> None:
    import sys

    train, held = corpora
    mix, truth = true_shares(train, {"a": 0.6, "b": 0.2, "c": 0.2}, 150_000)
    tok = supertok.train_from_iterator(lines_to_texts(mix), 256 + 100, pattern="gpt2", show_progress=False)
    traces = mixture.replay(tok, {k: lines_to_texts(v[:4000]) for k, v in held.items()})
    monkeypatch.setitem(sys.modules, "highspy", None)  # makes `import highspy` fail
    res = mixture.infer_traces(traces)
    assert res.converged and mse(res.proportions, truth) < 1e-3
    with pytest.raises(ImportError, match="highspy"):
        mixture.infer_traces(traces, solver="highspy")
