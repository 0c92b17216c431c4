"""Data-mixture inference from a BPE merge list (Hayase, Liu, Choi, Oh, Smith 2024).

A BPE merge list is an ordered record of argmax decisions: merge ``t`` was the most frequent
pair of the training data after merges ``1..t-1``. If the training data was a mixture
``sum_i alpha_i D_i`` of known categories, every step yields linear inequalities in
``alpha``. :func:`replay` replays the merge list on a sample of each category and records
every pair count before every merge (a compact :class:`PairTrace`, computed in Rust by the
BPE trainer's own counting and merge loop); :func:`infer` solves the paper's linear program
with scipy's HiGHS and lazy constraint generation and returns the proportions of training
*bytes* per category.

The linear program (``run_solver.py::lazy_optimize`` of the paper's code): variables
``alpha_i >= 0`` with ``sum alpha_i = 1``, one slack ``v_t >= 0`` per merge step and one
slack ``v_p >= 0`` per competing pair; for every step ``t`` and pair ``p != m(t)``::

    sum_i alpha_i (c_i[t, m(t)] - c_i[t, p]) / Z_i + v_t + v_p >= 0

minimising ``sum v_t + sum v_p``, with ``c_i[t, p]`` the count of pair ``p`` in category
``i``'s sample before merge ``t`` and ``Z_i`` the sample's total pair count. Only violated
constraints are added: sweep the steps with the current solution, add up to ``per_step``
most violated competitors per step, re-solve, until a sweep finds none.

numpy and scipy are needed (``pip install 'supertok[science]'``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

__all__ = ["PairTrace", "MixtureResult", "replay", "infer", "infer_traces", "tokenizer_merges"]

Samples = Mapping[str, Union[str, Sequence[str]]]


def _np():  # type: ignore[no-untyped-def]
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        raise ImportError("supertok.mixture needs numpy and scipy: pip install 'supertok[science]'") from None
    return np


@dataclass
class PairTrace:
    """Pair counts of one category's sample before every merge of a merge list.

    Pairs are keys ``(left_id << 32) | right_id`` in the replay's id space (ids ``0..256``
    are bytes, merge ``t`` creates id ``256 + t`` unless its bytes already are a token), so
    keys are comparable across the categories replayed with the same merge list.

    ``counts_before(t)`` = the initial counts updated by the changes of steps ``0..t-1``.
    """

    name: str
    merge_keys: "npt.NDArray[np.uint64]"
    """Pair key of merge ``t`` (length ``T``)."""
    init_keys: "npt.NDArray[np.uint64]"
    """Pairs with a non-zero count before the first merge (sorted)."""
    init_counts: "npt.NDArray[np.uint64]"
    step_ptr: "npt.NDArray[np.int64]"
    """Changes of step ``t`` are ``change_*[step_ptr[t]:step_ptr[t + 1]]`` (length ``T + 1``)."""
    change_keys: "npt.NDArray[np.uint64]"
    change_counts: "npt.NDArray[np.uint64]"
    """Count of the pair after the step."""
    n_bytes: int
    """UTF-8 bytes of the sample."""
    n_pairs: int
    """Total pair count before the first merge (the normaliser ``Z``)."""
    transition: Optional[int] = None
    """First stage-2 merge of a SuperBPE replay (its changes re-pretokenize the sample)."""

    @property
    def n_steps(self) -> int:
        """Number of merges replayed."""
        return len(self.merge_keys)

    def counts_before(self, t: int) -> dict[tuple[int, int], int]:
        """Every non-zero pair count just before merge ``t`` (``0 <= t <= T``)."""
        if not 0 <= t <= self.n_steps:
            raise ValueError(f"step {t} is outside 0..{self.n_steps}")
        d = {int(k): int(c) for k, c in zip(self.init_keys, self.init_counts)}
        end = int(self.step_ptr[t])
        for k, c in zip(self.change_keys[:end].tolist(), self.change_counts[:end].tolist()):
            if c:
                d[k] = c
            else:
                d.pop(k, None)
        return {(k >> 32, k & 0xFFFFFFFF): c for k, c in sorted(d.items())}

    def merge_counts(self) -> "npt.NDArray[np.uint64]":
        """The count of each merged pair just before its merge."""
        np = _np()
        out = np.zeros(self.n_steps, dtype=np.uint64)
        cur = dict(zip(self.init_keys.tolist(), self.init_counts.tolist()))
        ck, cc = self.change_keys.tolist(), self.change_counts.tolist()
        ptr = self.step_ptr.tolist()
        for t, m in enumerate(self.merge_keys.tolist()):
            out[t] = cur.get(m, 0)
            for j in range(ptr[t], ptr[t + 1]):
                cur[ck[j]] = cc[j]
        return out


@dataclass
class MixtureResult:
    """The solution of :func:`infer_traces`."""

    proportions: dict[str, float]
    """Estimated share of training bytes per category (sums to 1)."""
    pair_weights: dict[str, float]
    """The LP's ``alpha`` (shares in units of pairs, before the byte conversion)."""
    objective: float
    """Total slack of the final LP (0 when every merge is explained exactly)."""
    n_constraints: int
    rounds: int
    converged: bool
    """A sweep found no violated constraint (False when ``max_rounds`` was hit)."""
    seconds_sweep: float = 0.0
    seconds_lp: float = 0.0
    step_slack: "Optional[npt.NDArray[np.float64]]" = field(default=None, repr=False)


# ---------------------------------------------------------------------- merges of a tokenizer


def _bytelevel_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


# A splitter for the Rust replay: (kind, spec), kind in regex | oniguruma | hf | none.
_Split = tuple[str, str]


def _parts(tok: Any) -> tuple[list[tuple[bytes, bytes]], Optional[_Split]]:
    """Merges (byte pairs, rank order) and the tokenizer's own splitter (None if unknown)."""
    import json
    import os

    import supertok

    if isinstance(tok, (str, os.PathLike)):
        s = os.fspath(tok)
        if s in supertok.list_encoding_names():
            tok = supertok.get_encoding(s)
        else:
            tok = supertok.Tokenizer.from_file(s)
    split: Optional[_Split] = None
    if isinstance(tok, supertok.Encoding):
        split = ("regex", tok._pat_str)
        tok = supertok.Tokenizer.from_tiktoken(tok)
    if isinstance(tok, supertok.Tokenizer):
        text = tok.to_json(False)
        spec = json.loads(text)
        if split is None:
            split = ("hf", text)
        dec = _bytelevel_decoder()

        def tb(s: str) -> bytes:
            try:
                return bytes(dec[c] for c in s)
            except KeyError:
                raise ValueError(f"merge side {s!r} is not a byte-level token") from None

        merges = []
        for m in spec["model"]["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            merges.append((tb(a), tb(b)))
        return merges, split
    if hasattr(tok, "merges") and hasattr(tok, "vocab") and hasattr(tok, "pattern"):  # TrainedBPE
        vocab = list(tok.vocab)
        return [(vocab[a], vocab[b]) for a, b in tok.merges], ("regex", tok.pattern)
    if isinstance(tok, (bytes, bytearray)) or not isinstance(tok, Iterable):
        raise TypeError(
            "expected a supertok.Tokenizer, supertok.Encoding, a path, a bundled name or a list of "
            f"(bytes, bytes) merges, not {type(tok).__name__}"
        )
    out = []
    for k, m in enumerate(tok):
        try:
            a, b = m
            if not isinstance(a, (bytes, bytearray)) or not isinstance(b, (bytes, bytearray)):
                raise TypeError
            out.append((bytes(a), bytes(b)))
        except (TypeError, ValueError):
            raise TypeError(f"merges[{k}] must be a pair of bytes, got {m!r}") from None
    return out, None


def tokenizer_merges(tok: Any) -> list[tuple[bytes, bytes]]:
    """The merges of a tokenizer as ``(left bytes, right bytes)`` in rank order.

    Accepts a :class:`supertok.Tokenizer` (its ``tokenizer.json`` merges), a
    :class:`supertok.Encoding` (merges derived from the ranks, as
    ``Tokenizer.from_tiktoken`` does), a trained BPE result, a path or bundled name, or a
    list of byte pairs.
    """
    return _parts(tok)[0]


# ---------------------------------------------------------------------- replay


def _sample_texts(name: str, v: Union[str, Sequence[str]]) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, (bytes, bytearray)):
        raise TypeError(f"samples[{name!r}] must be str or a list of str, not bytes")
    out = list(v)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"samples[{name!r}][{i}] must be str, not {type(t).__name__}")
    return out


def _split_spec(p: str) -> _Split:
    if p == "none":
        return ("none", "")
    return ("regex", _resolve_pattern(p))


def replay(
    merges_of_tokenizer: Any,
    samples_by_category: Samples,
    *,
    pattern: Optional[str] = None,
    transition: Optional[int] = None,
    stage2_pattern: Optional[str] = None,
    split_lines: bool = False,
    max_merges: Optional[int] = None,
    threads: Optional[int] = None,
) -> dict[str, PairTrace]:
    """Replay a tokenizer's merges on a sample of each category, recording every pair count
    before every merge.

    Counting and merging are the BPE trainer's own (``supertok_core::train``): pretokens are
    counted with the tokenizer's splitting, pairs are counted per pretoken weighted by its
    count, and the merges are replayed in order (merges that do not occur in a sample are
    kept, so ids and pair keys agree across categories). Categories run in parallel.

    Args:
        merges_of_tokenizer: A :class:`supertok.Tokenizer` (split exactly like its
            ``tokenizer.json`` pipeline: added tokens, normalizer, pre-tokenizer), a
            :class:`supertok.Encoding` (its split pattern), a trained BPE result, a path, a
            bundled name, or a list of ``(left bytes, right bytes)``.
        samples_by_category: ``{category: text or list of texts}``; each text is split on
            its own.
        pattern: Split regex (supertok/tiktoken syntax, or ``"o200k"``, ``"cl100k"``,
            ``"gpt2"``, or ``"none"`` for whole texts) instead of the tokenizer's own
            splitting; required for a plain merge list and for a SuperBPE replay's stage 1.
        transition: SuperBPE: index of the first stage-2 merge (``0`` = no stage 1). From
            there on the sample is re-split by ``stage2_pattern`` (default: the tokenizer's
            own splitting, which is stage 2's for a SuperBPE tokenizer), merges before the
            transition are applied again to it (untraced: they were chosen under stage-1
            counts) and "counts before merge ``transition``" are stage-2 counts.
        stage2_pattern: SuperBPE stage-2 split regex (or ``"none"``).
        split_lines: Split every text into lines first (training chunks are lines: HF
            ``train(files)``, SuperBPE's stage 2 with ``split_lines=True``); both stages.
        max_merges: Replay only the first this many merges.
        threads: Threads (default: all cores).

    Raises:
        ValueError: no pattern known, an empty sample, a bad transition, or a merge list
            whose merges use tokens no earlier merge creates.
    """
    from supertok import _core

    merges, own = _parts(merges_of_tokenizer)
    if max_merges is not None:
        if max_merges < 0:
            raise ValueError(f"max_merges must be >= 0, got {max_merges}")
        merges = merges[:max_merges]
    if transition is None:
        s1 = _split_spec(pattern) if pattern is not None else own
        if s1 is None:
            raise ValueError("the split pattern of this merge list is unknown: pass pattern=...")
        stages = [(0, s1)]
    else:
        if isinstance(transition, bool) or not isinstance(transition, int):
            raise TypeError(f"transition must be an int, not {type(transition).__name__}")
        if not 0 <= transition <= len(merges):
            raise ValueError(f"transition {transition} is outside 0..{len(merges)}")
        s2 = _split_spec(stage2_pattern) if stage2_pattern is not None else own
        if s2 is None:
            raise ValueError("a SuperBPE replay needs stage2_pattern for a plain merge list")
        if transition == 0:
            stages = [(0, s2)]
        else:
            if pattern is None:
                raise ValueError("a SuperBPE replay (transition > 0) needs the stage-1 pattern=...")
            stages = [(0, _split_spec(pattern)), (transition, s2)]
    if not isinstance(samples_by_category, Mapping) or not samples_by_category:
        raise ValueError("samples_by_category must be a non-empty mapping category -> texts")
    names = [str(k) for k in samples_by_category]
    samples = [_sample_texts(k, v) for k, v in zip(names, samples_by_category.values())]
    for k, texts in zip(names, samples):
        if not any(t.strip() for t in texts):
            raise ValueError(f"the sample of category {k!r} is empty")
    np = _np()
    try:
        raw = _core.mixture_replay(
            merges, samples, [(st, kind, spec) for st, (kind, spec) in stages], bool(split_lines), threads
        )
    except UnicodeEncodeError as e:
        raise ValueError(f"a sample contains a lone surrogate, which is not valid UTF-8: {e}") from None
    out: dict[str, PairTrace] = {}
    for name, (mk, ik, ic, ptr, ck, cc, n_bytes, n_pairs) in zip(names, raw):
        out[name] = PairTrace(
            name=name,
            merge_keys=np.frombuffer(mk, dtype=np.uint64),
            init_keys=np.frombuffer(ik, dtype=np.uint64),
            init_counts=np.frombuffer(ic, dtype=np.uint64),
            step_ptr=np.frombuffer(ptr, dtype=np.uint64).astype(np.int64),
            change_keys=np.frombuffer(ck, dtype=np.uint64),
            change_counts=np.frombuffer(cc, dtype=np.uint64),
            n_bytes=int(n_bytes),
            n_pairs=int(n_pairs),
            transition=transition,
        )
    return out


def _resolve_pattern(p: str) -> str:
    """Pattern names of the trainer (``o200k``, ``cl100k``, ``gpt2``/``r50k``, bundled
    encoding names) or a regex."""
    from supertok.registry import CL100K_PAT_STR, O200K_PAT_STR, R50K_PAT_STR

    names = {
        "o200k": O200K_PAT_STR, "o200k_base": O200K_PAT_STR,
        "cl100k": CL100K_PAT_STR, "cl100k_base": CL100K_PAT_STR,
        "gpt2": R50K_PAT_STR, "r50k": R50K_PAT_STR, "r50k_base": R50K_PAT_STR,
    }
    if not isinstance(p, str) or not p:
        raise ValueError(f"pattern must be a non-empty str, got {p!r}")
    return names.get(p, p)


# ---------------------------------------------------------------------- inference


def infer(
    tokenizer: Any,
    samples_by_category: Samples,
    *,
    pattern: Optional[str] = None,
    transition: Optional[int] = None,
    stage2_pattern: Optional[str] = None,
    split_lines: bool = False,
    max_merges: Optional[int] = None,
    threads: Optional[int] = None,
    **solver_options: Any,
) -> dict[str, float]:
    """Estimate the proportions of training bytes per category of ``tokenizer``'s training
    data from a sample of each category (:func:`replay` then :func:`infer_traces`).

    The samples should be disjoint from the training data but come from the same
    distributions; all categories the training data drew from should be given (missing
    categories bias the estimate). Returns ``{category: share}`` summing to 1.
    ``solver_options`` go to :func:`infer_traces`.
    """
    traces = replay(
        tokenizer, samples_by_category, pattern=pattern, transition=transition,
        stage2_pattern=stage2_pattern, split_lines=split_lines, max_merges=max_merges, threads=threads,
    )
    return infer_traces(traces, **solver_options).proportions


def infer_traces(
    traces: Mapping[str, PairTrace],
    *,
    per_step: int = 10,
    max_add: int = 20_000,
    max_rounds: int = 200,
    tol: float = 1e-9,
    pair_slack: bool = True,
    solver: str = "auto",
) -> MixtureResult:
    """Solve the mixture LP on replay traces with lazy constraint generation.

    Args:
        traces: From :func:`replay` (same merge list for every category).
        per_step: At most this many violated competitors added per step and sweep (the
            paper's ``competitor_batch_size`` = 10).
        max_add: A sweep stops after adding this many constraints (then the LP is re-solved
            and a new sweep starts from the first step).
        max_rounds: Give up after this many solve rounds (``converged=False``).
        tol: A constraint counts as violated if it misses by more than ``tol`` (counts are
            normalised by each sample's pair total and scaled by the median total).
        pair_slack: Use the per-pair slacks ``v_p`` (the paper's formulation).
        solver: ``"scipy"``: ``scipy.optimize.linprog(method="highs")``, re-solved from
            scratch each round; ``"highspy"``: the same HiGHS solver through its own Python
            package (``highspy``), rows added to the solved model and re-optimised from the
            previous basis (an order of magnitude faster on large problems); ``"auto"``:
            highspy when installed, else scipy. Both give the same optimum.
    """
    np = _np()
    names = list(traces)
    if not names:
        raise ValueError("no traces")
    if per_step < 1 or max_add < 1 or max_rounds < 1:
        raise ValueError("per_step, max_add and max_rounds must be >= 1")
    trs = [traces[k] for k in names]
    T = trs[0].n_steps
    for tr in trs:
        if tr.n_steps != T or not np.array_equal(tr.merge_keys, trs[0].merge_keys):
            raise ValueError("the traces were not replayed with the same merge list")
        if tr.n_pairs <= 0:
            raise ValueError(f"category {tr.name!r} has no pairs (an empty sample?)")
    n = len(names)
    lp = _make_lp(solver, n, T)
    if n == 1:
        return MixtureResult({names[0]: 1.0}, {names[0]: 1.0}, 0.0, 0, 0, True, step_slack=np.zeros(T))
    merge_keys = trs[0].merge_keys
    # global pair index over every category and step
    allk = np.unique(np.concatenate([merge_keys] + [x for tr in trs for x in (tr.init_keys, tr.change_keys)]))
    P = len(allk)
    zs = np.array([tr.n_pairs for tr in trs], dtype=np.float64)
    scale = float(np.median(zs)) / zs  # normalised counts, scaled back to raw-count magnitude
    data = _SweepData(
        m_idx=np.searchsorted(allk, merge_keys),
        init_idx=[np.searchsorted(allk, tr.init_keys) for tr in trs],
        init_val=[tr.init_counts.astype(np.float64) * s for tr, s in zip(trs, scale)],
        ch_idx=[np.searchsorted(allk, tr.change_keys) for tr in trs],
        ch_val=[tr.change_counts.astype(np.float64) * s for tr, s in zip(trs, scale)],
        ptrs=[tr.step_ptr for tr in trs],
    )
    alpha = np.full(n, 1.0 / n)
    v_step = np.zeros(T)
    v_pair = np.zeros(P)
    seen: set[tuple[int, int]] = set()
    t_sweep = t_lp = 0.0
    rounds = 0
    converged = False
    objective = 0.0
    n_rows = 0
    while rounds < max_rounds:
        rounds += 1
        t0 = time.perf_counter()
        coefs, ts, ps = _sweep(np, data, alpha, v_step, v_pair if pair_slack else None, T, P, per_step, max_add, tol, seen)
        t_sweep += time.perf_counter() - t0
        if not ts:
            converged = True
            break
        n_rows += len(ts)
        t0 = time.perf_counter()
        lp.add(np.asarray(coefs), np.asarray(ts, dtype=np.int64), np.asarray(ps, dtype=np.int64) if pair_slack else None)
        alpha, v_step, v_pair_used, objective = lp.solve()
        v_pair = np.zeros(P)
        for p, v in v_pair_used.items():
            v_pair[p] = v
        t_lp += time.perf_counter() - t0
    bpp = np.array([tr.n_bytes / tr.n_pairs for tr in trs])
    # alpha_i (pair units, normalised by Z_i) -> bytes: share_i ∝ alpha_i * bytes_i / Z_i
    w = np.clip(alpha, 0.0, None) * bpp
    props = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
    return MixtureResult(
        proportions={k: float(p) for k, p in zip(names, props)},
        pair_weights={k: float(a) for k, a in zip(names, alpha)},
        objective=float(objective),
        n_constraints=n_rows,
        rounds=rounds,
        converged=converged,
        seconds_sweep=t_sweep,
        seconds_lp=t_lp,
        step_slack=v_step,
    )


@dataclass
class _SweepData:
    m_idx: Any
    init_idx: list[Any]
    init_val: list[Any]
    ch_idx: list[Any]
    ch_val: list[Any]
    ptrs: list[Any]


def _sweep(
    np: Any, d: _SweepData, alpha: Any, v_step: Any, v_pair: Any, T: int, P: int,
    per_step: int, max_add: int, tol: float, seen: set[tuple[int, int]],
) -> tuple[list[Any], list[int], list[int]]:
    """One pass over the steps with the current solution: the violated constraints (their
    alpha coefficients, steps and competing pairs), at most ``per_step`` per step (the most
    violated first) and ``max_add`` in all, skipping those in ``seen`` (which it extends)."""
    n = len(alpha)
    counts = np.zeros((n, P))
    for i in range(n):
        counts[i, d.init_idx[i]] = d.init_val[i]
    prio = alpha @ counts  # mixed count minus the pair's slack
    if v_pair is not None:
        prio -= v_pair
    coefs: list[Any] = []
    ts: list[int] = []
    ps: list[int] = []
    for t in range(T):
        m = d.m_idx[t]
        mixed_m = prio[m] + (v_pair[m] if v_pair is not None else 0.0)
        cand = np.flatnonzero(prio > mixed_m + v_step[t] + tol)
        if len(cand):
            cand = cand[cand != m]
        if len(cand):
            order = np.argsort(-prio[cand], kind="stable")
            k = 0
            for p in cand[order].tolist():
                if k >= per_step:
                    break
                if (t, p) in seen:
                    continue
                seen.add((t, p))
                coefs.append(counts[:, m] - counts[:, p])
                ts.append(t)
                ps.append(p)
                k += 1
            if len(ts) >= max_add:
                break
        for i in range(n):  # apply step t's changes
            a, b = d.ptrs[i][t], d.ptrs[i][t + 1]
            if a == b:
                continue
            idx = d.ch_idx[i][a:b]
            new = d.ch_val[i][a:b]
            prio[idx] += alpha[i] * (new - counts[i, idx])
            counts[i, idx] = new
    return coefs, ts, ps


def _make_lp(solver: str, n: int, T: int) -> "_LP":
    if solver not in ("auto", "highspy", "scipy"):
        raise ValueError(f"solver must be 'auto', 'highspy' or 'scipy', not {solver!r}")
    if solver in ("auto", "highspy"):
        try:
            import highspy  # noqa: F401

            return _HighspyLP(n, T)
        except ImportError:
            if solver == "highspy":
                raise ImportError("solver='highspy' needs the highspy package: pip install highspy") from None
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:  # pragma: no cover
        raise ImportError("supertok.mixture.infer needs scipy (or highspy): pip install 'supertok[science]'") from None
    return _ScipyLP(n, T)


class _LP(ABC):
    """The mixture LP restricted to the constraints added so far.

    Columns: ``alpha_0..alpha_{n-1}`` in [0, 1] (sum 1), then one slack (cost 1, >= 0) per
    step and per pair that occurs in a constraint, created on first use. Row for
    (step t, pair p): ``coef . alpha + v_t + v_p >= 0``.
    """

    def __init__(self, n: int, T: int) -> None:
        self.np = _np()
        self.n, self.T = n, T
        self.col_t: dict[int, int] = {}
        self.col_p: dict[int, int] = {}
        self.n_cols = n

    def _col(self, d: dict[int, int], k: int) -> int:
        c = d.get(k)
        if c is None:
            c = d[k] = self.n_cols
            self.n_cols += 1
            self._new_slack()
        return c

    @abstractmethod
    def _new_slack(self) -> None:
        """A slack column was created (an incremental solver adds it to its model)."""

    def _rows(self, coefs: Any, ts: Any, ps: Any) -> tuple[Any, Any, Any]:
        """CSR arrays (starts, columns, values) of the new rows."""
        np = self.np
        R, n = coefs.shape
        ct = np.array([self._col(self.col_t, int(t)) for t in ts], dtype=np.int64)
        per = n + 1 + (ps is not None)
        cols = np.empty((R, per), dtype=np.int64)
        vals = np.ones((R, per))
        cols[:, :n] = np.arange(n)
        vals[:, :n] = coefs
        cols[:, n] = ct
        if ps is not None:
            cols[:, n + 1] = [self._col(self.col_p, int(p)) for p in ps]
        starts = np.arange(R, dtype=np.int64) * per
        return starts, cols.reshape(-1), vals.reshape(-1)

    def _result(self, x: Any, obj: float) -> tuple[Any, Any, dict[int, float], float]:
        np = self.np
        alpha = np.clip(x[: self.n], 0.0, None)
        alpha = alpha / alpha.sum() if alpha.sum() > 0 else np.full(self.n, 1.0 / self.n)
        v_step = np.zeros(self.T)
        for t, c in self.col_t.items():
            v_step[t] = x[c]
        v_pair = {p: float(x[c]) for p, c in self.col_p.items()}
        return alpha, v_step, v_pair, obj

    @abstractmethod
    def add(self, coefs: Any, ts: Any, ps: Any) -> None:
        """Add rows: ``coefs`` (R x n alpha coefficients), their steps and pairs."""

    @abstractmethod
    def solve(self) -> tuple[Any, Any, dict[int, float], float]:
        """``(alpha, v_step, {pair: v_pair}, objective)`` of the LP with all rows so far."""


class _HighspyLP(_LP):
    """Incremental: rows are added to the solved model, HiGHS re-optimises from the basis."""

    def __init__(self, n: int, T: int) -> None:
        super().__init__(n, T)
        np = self.np
        import highspy

        # the quiet base class of highspy.Highs (which prints a banner once per process)
        core = getattr(highspy, "_core", None)
        highs_cls: Any = getattr(core, "_Highs", None) or highspy.Highs
        self.optimal = highspy.HighsModelStatus.kOptimal
        self.h = h = highs_cls()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("presolve", "off")
        self.inf = h.getInfinity()
        none_i, none_f = np.zeros(0, dtype=np.int32), np.zeros(0)
        for _ in range(n):
            h.addCol(0.0, 0.0, 1.0, 0, none_i, none_f)
        h.addRows(1, np.ones(1), np.ones(1), n, np.zeros(1, dtype=np.int32),
                  np.arange(n, dtype=np.int32), np.ones(n))

    def _new_slack(self) -> None:
        np = self.np
        self.h.addCol(1.0, 0.0, self.inf, 0, np.zeros(0, dtype=np.int32), np.zeros(0))

    def add(self, coefs: Any, ts: Any, ps: Any) -> None:
        np = self.np
        starts, cols, vals = self._rows(coefs, ts, ps)
        R = len(starts)
        self.h.addRows(R, np.zeros(R), np.full(R, self.inf), len(cols), starts.astype(np.int32),
                       cols.astype(np.int32), vals.astype(np.float64))

    def solve(self) -> tuple[Any, Any, dict[int, float], float]:
        np = self.np
        self.h.run()
        status = self.h.getModelStatus()
        if status != self.optimal:
            raise RuntimeError(f"the mixture LP failed: {self.h.modelStatusToString(status)}")
        x = np.asarray(self.h.getSolution().col_value)
        return self._result(x, float(self.h.getInfo().objective_function_value))


class _ScipyLP(_LP):
    """scipy.optimize.linprog(method="highs") on all rows so far, solved from scratch."""

    def __init__(self, n: int, T: int) -> None:
        super().__init__(n, T)
        self.starts: list[Any] = []
        self.cols: list[Any] = []
        self.vals: list[Any] = []
        self.n_rows = 0

    def _new_slack(self) -> None:
        """Nothing to do: the matrix is built from all rows at solve time."""

    def add(self, coefs: Any, ts: Any, ps: Any) -> None:
        starts, cols, vals = self._rows(coefs, ts, ps)
        self.rows_per = (len(cols) // len(starts)) if len(starts) else 0
        self.cols.append(cols)
        self.vals.append(vals)
        self.n_rows += len(starts)
        self.starts.append(starts)

    def solve(self) -> tuple[Any, Any, dict[int, float], float]:
        import scipy.optimize
        import scipy.sparse

        np = self.np
        cols = np.concatenate(self.cols)
        vals = np.concatenate(self.vals)
        per = self.rows_per
        rows = np.repeat(np.arange(self.n_rows), per)
        # linprog wants A_ub x <= b_ub: negate ">= 0"
        A = scipy.sparse.csr_matrix((-vals, (rows, cols)), shape=(self.n_rows, self.n_cols))
        c = np.concatenate([np.zeros(self.n), np.ones(self.n_cols - self.n)])
        A_eq = np.concatenate([np.ones(self.n), np.zeros(self.n_cols - self.n)])[None, :]
        bounds = [(0.0, 1.0)] * self.n + [(0.0, None)] * (self.n_cols - self.n)
        res = scipy.optimize.linprog(
            c, A_ub=A, b_ub=np.zeros(self.n_rows), A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs"
        )
        if res.status != 0 or res.x is None:
            raise RuntimeError(f"the mixture LP failed: {res.message}")
        return self._result(res.x, float(res.fun))
