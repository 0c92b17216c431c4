"""SuperBPE: two-stage superword BPE training (Liu et al., 2025).

Stage 1 is ordinary BPE with a whitespace-aware pre-tokenizer, trained until the vocabulary
has ``transition`` tokens. Stage 2 splits the same corpus again, now into chunks that cross
whitespace (whole lines minus digit groups, with the paper's pre-tokenizer), replays the
stage-1 merges in order and continues BPE to ``vocab_size``, so later merges join words into
*superword* tokens such as ``" of the"`` or ``", I am"``. The result is a plain BPE tokenizer
(HF ``tokenizer.json``) that encodes with the stage-2 pre-tokenizer and needs ~20–30 % fewer
tokens for the same text.

Exact semantics (see ``docs/superbpe.md``):

* **Vocabulary.** Ids ``0..256`` are the bytes, stage-1 tokens follow in merge order, then
  stage-2 tokens, then special tokens. ``vocab_size`` counts all of them.
* **transition** is the vocabulary size (bytes + learned tokens) at which training switches
  to stage 2: stage 1 learns ``transition - 256`` merges. A float is a fraction of
  ``vocab_size``. ``0`` means no stage 1 at all (the paper's ``t = 0`` baseline); a
  transition of ``vocab_size`` (or ``1.0``) means no stage 2 at all: plain BPE with the
  stage-1 pre-tokenizer (the paper's BPE baseline). The reference scripts inherit ``t - 1``
  merges for a transition ``t`` (``head -n t`` of a ``merges.txt`` counts its header line);
  here the number is exact.
* **Replay.** Stage 2 replays the stage-1 merges in order on the stage-2 chunks (merge ``i``
  everywhere, left to right, then merge ``i + 1``), exactly like the reference. A stage-1
  merge whose pair never occurs in the stage-2 chunks is handled by ``unseen_merges``:
  ``"keep"`` (default) records it anyway, so the first ``transition`` tokens and merges are
  exactly the stage-1 tokenizer (and ``inherit=`` keeps the inherited ids); ``"drop"`` drops
  it like the reference fork (later tokens shift down); ``"error"`` raises.
* **Filters** (stage-2 merge loop only, not replay): a merge is rejected when its token
  contains any ``forbid`` substring or has more than ``max_words`` words (non-empty pieces
  between U+0020 spaces). The filters depend only on the token's bytes, so rejecting a pair
  once (supertok) and re-examining it whenever its count changes (the reference fork) reject
  exactly the same pairs and produce the same merges.
* **Tie-break** and counting are those of :func:`supertok.train`: highest count, then the
  smallest ``(left id, right id)``; counts are exact ``u64``; the result does not depend on
  the thread count.
* **Memory.** Stage-2 chunks are aggregated by frequency (identical lines are stored once),
  then each distinct chunk is replayed on its own and kept only as its post-replay token
  sequence; the chunk text is released as it is converted.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from supertok import _core
from supertok._core import PretokenCounts
from supertok._progress import ProgressBar
from supertok.train import (
    ITER_BATCH_BYTES,
    ITER_BATCH_TEXTS,
    _check_vocab,
    _paths,
    _peak_rss_bytes,
    _threads,
    resolve_pattern,
)

if TYPE_CHECKING:  # pragma: no cover
    from supertok.core import Encoding
    from supertok.tokenizer import Tokenizer

__all__ = [
    "PRESETS",
    "SuperBPESummary",
    "pre_tokenizer_objects",
    "train_superbpe",
    "train_superbpe_from_iterator",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The two regex generations of the reference code.
PRESETS = ("paper", "recommended")

_POLICIES = {"keep": "keep", "drop": "skip", "error": "error"}


def pre_tokenizer_objects(spec: str, stage: int) -> list[dict[str, Any]]:
    """The HF pre-tokenizer objects (before ``ByteLevel``) of a preset or regex.

    Args:
        spec: ``"paper"``, ``"recommended"``, a pattern name known to
            :func:`supertok.train.resolve_pattern` (``"o200k"``, ...) or a regex in
            tiktoken (fancy-regex) syntax, which becomes one ``Split(regex, Isolated)``.
        stage: 1 or 2 (which stage of a preset).
    """
    if not isinstance(spec, str):
        raise TypeError(f"pattern must be a str, not {type(spec).__name__}")
    if stage not in (1, 2):
        raise ValueError("stage must be 1 or 2")
    if spec not in PRESETS:
        spec = resolve_pattern(spec)
    return list(json.loads(_core.superbpe_pre_tokenizer(spec, stage)))


@dataclass
class SuperBPESummary:
    """What a SuperBPE training run did."""

    vocab_size: int
    transition: int
    """Vocabulary size at the switch to stage 2 (256 + stage-1 merges)."""
    stage1_merges: int
    """Merges learned (or inherited) in stage 1."""
    replayed_merges: int
    """Stage-1 merges recorded by the replay (all of them unless ``unseen_merges="drop"``)."""
    dropped_merges: list[tuple[bytes, bytes]]
    """Stage-1 merges dropped because they never occur in the stage-2 chunks."""
    stage2_merges: int
    rejected_pairs: int
    """Distinct pairs rejected by the ``forbid`` / ``max_words`` filters."""
    chunks: int
    """Distinct stage-2 chunks."""
    chunk_tokens: int
    """Token positions the stage-2 merge loop started from (after replay)."""
    stage1_seconds: float
    """Stage-1 counting and merges (:func:`train_superbpe` counts the stage-2 chunks at the
    same time as the stage-1 merges; that overlap is included here)."""
    stage2_count_seconds: float
    """Stage-2 chunk counting not overlapped with stage 1."""
    stage2_merge_seconds: float
    peak_memory_bytes: int | None
    stop_reason: str
    ids_preserved: bool | None = None
    """With ``inherit=``: whether the inherited tokens kept their ids."""
    special_collisions: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total training time."""
        return self.stage1_seconds + self.stage2_count_seconds + self.stage2_merge_seconds

    def line(self) -> str:
        """The one-line summary printed after training."""
        mem = "?" if self.peak_memory_bytes is None else f"{self.peak_memory_bytes / 1e6:,.0f} MB"
        s = (
            f"SuperBPE: {self.stage1_merges:,} stage-1 + {self.stage2_merges:,} stage-2 merges "
            f"(vocab {self.vocab_size:,}, transition {self.transition:,}) in {self.seconds:.2f} s "
            f"(stage 1 {self.stage1_seconds:.2f} s, chunks {self.stage2_count_seconds:.2f} s, "
            f"replay + merges {self.stage2_merge_seconds:.2f} s); {self.chunks:,} distinct chunks; "
            f"peak memory {mem}"
        )
        if self.dropped_merges:
            s += f"; {len(self.dropped_merges)} unseen stage-1 merges dropped"
        if self.stop_reason != "vocab_size":
            s += f"; stopped early ({self.stop_reason})"
        return s


# ---------------------------------------------------------------------------- arguments


def _stage1_merges(transition: int | float | None, vocab_size: int, n_specials: int, inherited: int | None) -> int:
    """Number of stage-1 merges (inherited or trained) for ``transition``."""
    limit = vocab_size - n_specials
    if transition is None:
        if inherited is None:
            raise TypeError("transition=None is only allowed with inherit= (it inherits every merge)")
        return min(inherited, limit - 256)
    if isinstance(transition, bool) or not isinstance(transition, (int, float)):
        raise TypeError(f"transition must be an int, a float fraction or None, not {type(transition).__name__}")
    if isinstance(transition, float):
        if not (0.0 <= transition <= 1.0) or transition != transition:
            raise ValueError(f"a fractional transition must be in [0, 1], got {transition!r}")
        t = min(int(round(transition * vocab_size)), limit)
        n = max(0, t - 256)
    else:
        if transition == 0:
            n = 0
        elif transition < 256:
            raise ValueError(
                f"transition is a vocabulary size (256 bytes + stage-1 merges): 0 or at least 256, got {transition}"
            )
        elif transition > limit:
            raise ValueError(
                f"transition {transition} exceeds the vocabulary ({vocab_size} including {n_specials} special tokens)"
            )
        else:
            n = transition - 256
    if inherited is not None and n > inherited:
        raise ValueError(f"transition needs {n} inherited merges but the tokenizer has only {inherited}")
    return n


def _filters(forbid: Sequence[str], max_words: int | None) -> tuple[list[bytes], int | None]:
    if isinstance(forbid, (str, bytes)):
        raise TypeError("forbid must be a sequence of str (e.g. (': ',)), not a single str")
    out = []
    for f in forbid:
        if isinstance(f, str):
            b = f.encode("utf-8")
        elif isinstance(f, bytes):
            b = f
        else:
            raise TypeError(f"forbid entries must be str, got {type(f).__name__}")
        if not b:
            raise ValueError("forbid entries must not be empty")
        out.append(b)
    if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise ValueError(f"max_words must be a positive int or None, got {max_words!r}")
    return out, max_words


def _inherit_parts(inherit: Any) -> tuple[list[tuple[bytes, bytes]], dict[bytes, int]]:
    """Merges (bytes) in rank order and ``bytes -> id`` of a Tokenizer or Encoding."""
    from supertok.tokenizer import Tokenizer

    if isinstance(inherit, Tokenizer):
        tok = inherit
    elif hasattr(inherit, "_mergeable_ranks") or hasattr(inherit, "_core_bpe"):
        tok = Tokenizer.from_tiktoken(inherit)
    else:
        raise TypeError(
            f"inherit must be a supertok.Tokenizer or a (supertok/tiktoken) Encoding, not {type(inherit).__name__}"
        )
    merges, vocab = _core.tokenizer_bpe_parts(tok._core)
    return [(bytes(a), bytes(b)) for a, b in merges], {bytes(b): i for i, b in vocab}


def _preserve_ids(
    vocab: list[bytes], merges: list[tuple[int, int]], n_inherited: int, ids: dict[bytes, int]
) -> tuple[list[bytes], list[tuple[int, int]]] | None:
    """Renumber so that the first ``256 + n_inherited`` tokens get their inherited ids, when
    those ids are exactly ``0 .. 256 + n_inherited - 1``."""
    n = 256 + n_inherited
    perm = []
    for b in vocab[:n]:
        i = ids.get(b)
        if i is None:
            return None
        perm.append(i)
    if sorted(perm) != list(range(n)):
        return None
    perm += list(range(n, len(vocab)))
    new_vocab: list[bytes] = [b""] * len(vocab)
    for old, new in enumerate(perm):
        new_vocab[new] = vocab[old]
    return new_vocab, [(perm[a], perm[b]) for a, b in merges]


# ---------------------------------------------------------------------------- training


@dataclass
class _Plan:
    vocab_size: int
    specials: list[str]
    stage1_objs: list[dict[str, Any]]
    stage2_objs: list[dict[str, Any]]
    n1: int
    inherited: list[tuple[bytes, bytes]] | None
    inherited_ids: dict[bytes, int] | None
    forbid: list[bytes]
    max_words: int | None
    policy: str
    threads: int | None
    show_progress: bool

    @property
    def no_stage2(self) -> bool:
        return self.inherited is None and self.n1 > 0 and 256 + self.n1 >= self.vocab_size - len(self.specials)


def _plan(
    vocab_size: int,
    transition: int | float | None,
    pattern: str,
    stage2_pattern: str | None,
    max_words: int | None,
    forbid: Sequence[str],
    inherit: Any,
    threads: int | None,
    show_progress: bool,
    special_tokens: Sequence[str],
    unseen_merges: str,
) -> _Plan:
    specials = _check_vocab(vocab_size, special_tokens)
    if unseen_merges not in _POLICIES:
        raise ValueError(f'unseen_merges must be "keep", "drop" or "error", got {unseen_merges!r}')
    if stage2_pattern is None:
        stage2_pattern = pattern if pattern in PRESETS else "paper"
    s2 = pre_tokenizer_objects(stage2_pattern, 2)
    inherited = ids = None
    if inherit is not None:
        inherited, ids = _inherit_parts(inherit)
        s1: list[dict[str, Any]] = []
    else:
        s1 = pre_tokenizer_objects(pattern, 1)
    n1 = _stage1_merges(transition, vocab_size, len(specials), None if inherited is None else len(inherited))
    fb, mw = _filters(forbid, max_words)
    return _Plan(
        vocab_size=vocab_size,
        specials=specials,
        stage1_objs=s1,
        stage2_objs=s2,
        n1=n1,
        inherited=None if inherited is None else inherited[:n1],
        inherited_ids=ids,
        forbid=fb,
        max_words=mw,
        policy=_POLICIES[unseen_merges],
        threads=_threads(threads),
        show_progress=show_progress,
    )


def _check_counts(counts: PretokenCounts) -> None:
    if counts.all_whitespace():
        raise ValueError(
            "the corpus is empty or whitespace-only: nothing to train on"
            if len(counts) == 0 or counts.total() == 0
            else "the corpus is whitespace-only: nothing to train on"
        )


def _train_stage1(plan: _Plan, counts: PretokenCounts, final: bool) -> tuple[list[bytes], list[tuple[int, int]], str, list[str]]:
    """Stage-1 BPE on ``counts``: to ``vocab_size`` (with the special tokens) when ``final``,
    else to the transition (special tokens' texts are still never learned)."""
    _check_counts(counts)
    if final:
        size = plan.vocab_size
    else:
        size = 256 + plan.n1 + len(plan.specials)
    bar = ProgressBar(size - len(plan.specials) - 256, "Stage 1 merges", "merges", plan.show_progress)
    try:
        vocab, merges, _mc, spec, stop, collisions, _n = _core.train_from_counts(
            counts, size, plan.specials, 1, None, lambda n: bar.update_to(n - 256)
        )
        bar.update_to(len(vocab) - len(spec) - 256)
    finally:
        bar.close()
    n_regular = len(vocab) - len(spec)
    # The core returns bytes objects and (int, int) tuples: no per-item conversion needed.
    return vocab[:n_regular], merges, stop, list(collisions)


def _finish(
    plan: _Plan,
    chunks: PretokenCounts,
    stage1: list[tuple[bytes, bytes]],
    stage1_seconds: float,
    count2_seconds: float,
    collisions1: list[str],
    return_summary: bool,
    trained1: tuple[list[bytes], list[tuple[int, int]]] | None = None,
) -> Any:
    """Stage 2 and the tokenizer. The stage-1 merges are ``stage1`` (byte pairs), or, for a
    trained stage 1, ``trained1`` = the trainer's ``(vocab, id merges)`` with ``stage1``
    empty (the core builds its replay table from the ids: no byte pairs are made)."""
    from supertok.tokenizer import Tokenizer

    _check_counts(chunks)
    n_chunks_total = len(chunks)
    rbar = ProgressBar(n_chunks_total, "Stage 2 replay", "chunks", plan.show_progress)
    mbar = ProgressBar(plan.vocab_size - len(plan.specials) - 256, "Stage 2 merges", "merges", plan.show_progress)
    # Keeping inherited ids renumbers the result in Python (_preserve_ids), so that case
    # needs the token and merge lists; otherwise the core returns the finished tokenizer
    # (its stage-1 part built while the stage-2 merge loop runs).
    need_lists = plan.inherited is not None and plan.inherited_ids is not None
    if trained1 is not None and need_lists:  # pragma: no cover - need_lists implies inherit
        stage1 = [(trained1[0][a], trained1[0][b]) for a, b in trained1[1]]
        trained1 = None
    n_stage1 = len(trained1[1]) if trained1 is not None else len(stage1)
    core_tok = None
    t0 = time.perf_counter()
    try:
        # Both entry points take the same arguments; the tokenizer one also takes the
        # stage-2 pre-tokenizer (before the threads and progress callbacks).
        head = (chunks, stage1, plan.vocab_size, plan.specials, plan.policy, plan.forbid, plan.max_words)
        tail = (plan.threads, rbar.update_to, lambda n: mbar.update_to(n - 256))
        if need_lists:
            vocab, merges, _mcounts, spec, stop, collisions, stats, dropped = _core.superbpe_stage2(*head, *tail)
            n_vocab, n_merges = len(vocab), len(merges)
        else:
            ids = {} if trained1 is None else {"stage1_vocab": trained1[0], "stage1_merges": trained1[1]}
            core_tok, n_vocab, n_merges, spec, stop, collisions, stats, dropped = _core.superbpe_stage2_tokenizer(
                *head, json.dumps(plan.stage2_objs), *tail, **ids
            )
        rbar.update_to(n_chunks_total)
        mbar.update_to(n_vocab - len(spec) - 256)
    finally:
        rbar.close()
        mbar.close()
    merge_seconds = time.perf_counter() - t0
    n_replayed, n_chunks, n_positions, n_rejected = stats
    preserved = None
    if need_lists:
        assert plan.inherited is not None and plan.inherited_ids is not None
        n_regular = len(vocab) - len(spec)
        # Straight from the core: bytes objects and (int, int) tuples (no copies needed).
        regular: list[bytes] = vocab[:n_regular]
        merge_list: list[tuple[int, int]] = merges
        res = None
        if not dropped:
            res = _preserve_ids(regular, merge_list, len(plan.inherited), plan.inherited_ids)
        preserved = res is not None
        if res is None:
            warnings.warn(
                "the inherited tokens could not keep their ids (unseen merges were dropped, or the "
                "inherited ids are not 0 .. 256 + #merges - 1); they were renumbered",
                stacklevel=3,
            )
        else:
            regular, merge_list = res
    specials = dict(spec)
    all_collisions = sorted(set(collisions1) | set(collisions))
    if all_collisions:
        warnings.warn(
            "merges that would have produced the text of a special token were skipped "
            f"(the special token keeps its own id): {all_collisions!r}",
            stacklevel=3,
        )
    if core_tok is None:
        # The core's own output needs none of Tokenizer.from_bpe's per-merge Python checks
        # (the core constructor still validates everything).
        core_tok = _core.CoreTokenizer.from_bpe(regular, merge_list, json.dumps(plan.stage2_objs), None, specials)
    tok = Tokenizer(core_tok)
    summary = SuperBPESummary(
        vocab_size=n_vocab,
        transition=256 + n_stage1,
        stage1_merges=n_stage1,
        replayed_merges=n_replayed,
        dropped_merges=[(bytes(a), bytes(b)) for a, b in dropped],
        stage2_merges=n_merges - n_replayed,
        rejected_pairs=n_rejected,
        chunks=n_chunks,
        chunk_tokens=n_positions,
        stage1_seconds=stage1_seconds,
        stage2_count_seconds=count2_seconds,
        stage2_merge_seconds=merge_seconds,
        peak_memory_bytes=_peak_rss_bytes(),
        stop_reason=stop,
        ids_preserved=preserved,
        special_collisions=all_collisions,
    )
    if plan.show_progress:
        print(summary.line(), file=sys.stderr)
    return (tok, summary) if return_summary else tok


def _bpe_only(plan: _Plan, counts: PretokenCounts, t0: float, return_summary: bool) -> Any:
    """transition >= vocab_size: plain BPE with the stage-1 pre-tokenizer."""
    from supertok.tokenizer import Tokenizer

    vocab, merges, stop, collisions = _train_stage1(plan, counts, final=True)
    spec = {s: len(vocab) + i for i, s in enumerate(plan.specials)}
    tok = Tokenizer.from_bpe(vocab, merges, pre_tokenizer=plan.stage1_objs, special_tokens=spec)
    if collisions:
        warnings.warn(f"merges that would have produced a special token were skipped: {collisions!r}", stacklevel=3)
    summary = SuperBPESummary(
        vocab_size=len(vocab) + len(spec),
        transition=len(vocab),
        stage1_merges=len(merges),
        replayed_merges=0,
        dropped_merges=[],
        stage2_merges=0,
        rejected_pairs=0,
        chunks=0,
        chunk_tokens=0,
        stage1_seconds=time.perf_counter() - t0,
        stage2_count_seconds=0.0,
        stage2_merge_seconds=0.0,
        peak_memory_bytes=_peak_rss_bytes(),
        stop_reason=stop,
        special_collisions=list(collisions),
    )
    if plan.show_progress:
        print(summary.line(), file=sys.stderr)
    return (tok, summary) if return_summary else tok


def train_superbpe(
    files: PathLike | Iterable[PathLike],
    vocab_size: int,
    transition: int | float | None,
    *,
    pattern: str = "paper",
    stage2_pattern: str | None = None,
    max_words: int | None = 4,
    forbid: Sequence[str] = (": ",),
    split_lines: bool = True,
    inherit: "Tokenizer | Encoding | None" = None,
    threads: int | None = None,
    show_progress: bool = True,
    special_tokens: Sequence[str] = (),
    unseen_merges: str = "keep",
    errors: str = "strict",
    return_summary: bool = False,
) -> Any:
    """Train a SuperBPE tokenizer on text files.

    Args:
        files: A path or a list of paths (UTF-8 text).
        vocab_size: Final vocabulary size (256 bytes + learned tokens + special tokens).
        transition: Vocabulary size at the switch to stage 2 (an int: ``256 + stage-1
            merges``), or a float fraction of ``vocab_size`` (the paper's best downstream
            setting is ``0.9``; ``0.8`` is a good compromise). ``0``: no stage 1 (the paper's
            ``t = 0``); ``vocab_size`` / ``1.0``: no stage 2 (plain BPE with the stage-1
            pre-tokenizer). With ``inherit=``, the number of inherited tokens (``None``: all).
        pattern: Stage-1 pre-tokenizer: ``"paper"``, ``"recommended"``, a pattern name
            (``"o200k"``, ...) or a regex (tiktoken syntax).
        stage2_pattern: Stage-2 (and encoding) pre-tokenizer: ``"paper"``, ``"recommended"``
            or a regex; default: the same preset as ``pattern`` (``"paper"`` for a regex).
        max_words: Stage-2 tokens have at most this many space-separated words (``None``:
            no limit).
        forbid: Stage-2 tokens never contain these substrings (``()``: none).
        split_lines: Training chunks are lines (each keeps its ``\\n``), as in the reference
            (HF's file trainer reads line by line). Also what makes the tokenizer
            newline-shardable.
        inherit: Extend this tokenizer (a :class:`supertok.Tokenizer` or an Encoding, e.g.
            ``supertok.get_encoding("o200k_base")``) instead of training stage 1: its first
            ``transition - 256`` merges are replayed. With ``unseen_merges="keep"`` the
            inherited tokens keep their ids when they are ``0 .. transition - 1``.
        threads: Worker threads (default: all cores). The result does not depend on it.
        show_progress: Progress bars and a summary line on stderr.
        special_tokens: Special tokens (the last ids).
        unseen_merges: ``"keep"``, ``"drop"`` or ``"error"``: what replay does with a
            stage-1 merge that never occurs in the stage-2 chunks (see the module docs).
        errors: ``"strict"`` or ``"replace"`` for invalid UTF-8.
        return_summary: Return ``(tokenizer, SuperBPESummary)``.

    Returns:
        A :class:`supertok.Tokenizer` (saves as an HF ``tokenizer.json``).

    Raises:
        ValueError: bad arguments, an empty corpus, invalid UTF-8 (naming file and offset).
        OSError: a file cannot be read.
    """
    paths = _paths(files)
    plan = _plan(
        vocab_size, transition, pattern, stage2_pattern, max_words, forbid, inherit, threads,
        show_progress, special_tokens, unseen_merges,
    )
    total = sum(os.path.getsize(p) for p in paths)

    def count(objs: list[dict[str, Any]], desc: str, show: bool = True) -> PretokenCounts:
        bar = ProgressBar(total, desc, "B", plan.show_progress and show)
        try:
            c = _core.superbpe_count_files(
                paths, json.dumps(objs), plan.threads, errors, bar.update_to, split_lines
            )
            bar.update_to(total)
        finally:
            bar.close()
        return c

    t0 = time.perf_counter()
    stage1: list[tuple[bytes, bytes]] = []
    trained1: tuple[list[bytes], list[tuple[int, int]]] | None = None
    collisions1: list[str] = []
    chunks: PretokenCounts | None = None
    if plan.inherited is not None:
        stage1 = plan.inherited
    elif plan.n1 > 0:
        counts1 = count(plan.stage1_objs, "Stage 1 counting")
        if plan.no_stage2:
            return _bpe_only(plan, counts1, t0, return_summary)
        # The stage-1 merge loop runs on one thread: count the stage-2 chunks meanwhile
        # (both release the GIL). Its progress bar is not shown (two bars would interleave).
        with ThreadPoolExecutor(max_workers=1) as ex:
            fut = ex.submit(count, plan.stage2_objs, "Stage 2 chunks", False)
            vocab1, merges1, _stop, collisions1 = _train_stage1(plan, counts1, final=False)
            del counts1
            chunks = fut.result()
        trained1 = (vocab1, merges1)
    t1 = time.perf_counter()
    if chunks is None:
        chunks = count(plan.stage2_objs, "Stage 2 chunks")
    t2 = time.perf_counter()
    return _finish(plan, chunks, stage1, t1 - t0, t2 - t1, collisions1, return_summary, trained1)


def train_superbpe_from_iterator(
    texts: Iterable[str],
    vocab_size: int,
    transition: int | float | None,
    *,
    pattern: str = "paper",
    stage2_pattern: str | None = None,
    max_words: int | None = 4,
    forbid: Sequence[str] = (": ",),
    split_lines: bool = True,
    inherit: "Tokenizer | Encoding | None" = None,
    threads: int | None = None,
    show_progress: bool = True,
    special_tokens: Sequence[str] = (),
    unseen_merges: str = "keep",
    return_summary: bool = False,
) -> Any:
    """Train a SuperBPE tokenizer on an iterable of ``str`` (each item is one text; with
    ``split_lines`` every line is a training chunk of its own).

    The iterable is consumed once: both stages are counted in the same pass (in parallel,
    with the GIL released, in batches of ~8 MB). Same options as :func:`train_superbpe`.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of str, not a single str/bytes (wrap it in a list)")
    plan = _plan(
        vocab_size, transition, pattern, stage2_pattern, max_words, forbid, inherit, threads,
        show_progress, special_tokens, unseen_merges,
    )
    need1 = plan.inherited is None and plan.n1 > 0
    c1 = _core.SuperbpeCounter(json.dumps(plan.stage1_objs), plan.threads, split_lines) if need1 else None
    c2 = None if plan.no_stage2 else _core.SuperbpeCounter(json.dumps(plan.stage2_objs), plan.threads, split_lines)
    bar = ProgressBar(None, "Counting", "B", plan.show_progress)
    done = 0
    batch: list[str] = []
    size = 0
    t0 = time.perf_counter()

    def flush() -> None:
        if c1 is not None:
            c1.add_texts(batch)
        if c2 is not None:
            c2.add_texts(batch)

    try:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts must be str; item {i} is {type(t).__name__}")
            batch.append(t)
            size += len(t)
            if size >= ITER_BATCH_BYTES or len(batch) >= ITER_BATCH_TEXTS:
                flush()
                done += size
                bar.update_to(done)
                batch, size = [], 0
        if batch:
            flush()
            done += size
            bar.update_to(done)
        counts1 = c1.finish() if c1 is not None else None
        chunks = c2.finish() if c2 is not None else None
    finally:
        bar.close()
    count_seconds = time.perf_counter() - t0
    stage1: list[tuple[bytes, bytes]] = []
    trained1: tuple[list[bytes], list[tuple[int, int]]] | None = None
    collisions1: list[str] = []
    t1 = time.perf_counter()
    if plan.inherited is not None:
        stage1 = plan.inherited
    elif counts1 is not None:
        if plan.no_stage2:
            return _bpe_only(plan, counts1, t0, return_summary)
        vocab1, merges1, _stop, collisions1 = _train_stage1(plan, counts1, final=False)
        del counts1
        trained1 = (vocab1, merges1)
    t2 = time.perf_counter()
    if chunks is None:  # pragma: no cover - no_stage2 implies counts1
        raise RuntimeError("internal error: no stage-2 counts")
    return _finish(plan, chunks, stage1, count_seconds + (t2 - t1), 0.0, collisions1, return_summary, trained1)
