"""Fast byte-level BPE training.

* :func:`train` (files) and :func:`train_from_iterator` (any iterable of ``str``) count
  pretokens in parallel with the GIL released, in bounded memory (it grows with the number of
  distinct pretokens, not with the corpus), then run the merge loop;
* counting is separable for scale-out: :func:`count_pretokens` /
  :func:`count_pretokens_from_iterator` return :class:`PretokenCounts` (mergeable with ``+``,
  picklable, saveable) and :func:`train_from_counts` trains on them.

Vocabulary layout: ids ``0..256`` are the single bytes (id = byte value); merge ``i`` creates
id ``256 + i`` (unless its bytes are already a token — a different split of the same bytes —
in which case the merge is recorded with that id and the vocabulary does not grow, as in HF's
``BpeTrainer``); special tokens come last, in the order given. ``vocab_size`` counts all of
them: at most ``vocab_size - 256 - len(special_tokens)`` tokens are learned.

Tie-break: the pair with the highest count is merged; among equal counts the smallest
``(left id, right id)``. Counts are exact ``u64``; the result does not depend on the thread
count, the order of the data or how the counts were sharded.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

from supertok import _core
from supertok._core import PretokenCounts
from supertok._progress import ProgressBar

if TYPE_CHECKING:  # pragma: no cover
    from supertok.tokenizer import Tokenizer

    TrainReturn = Union[Tokenizer, tuple[Tokenizer, "TrainSummary"]]

__all__ = [
    "PretokenCounts",
    "TrainSummary",
    "TrainedBPE",
    "count_pretokens",
    "count_pretokens_from_iterator",
    "resolve_pattern",
    "train",
    "train_from_counts",
    "train_from_iterator",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Batch size (bytes of text) handed to Rust by the iterator paths.
ITER_BATCH_BYTES = 8 << 20
#: Maximum number of texts per batch of the iterator paths.
ITER_BATCH_TEXTS = 16384


def resolve_pattern(pattern: str) -> str:
    """The split regex for a pattern name (``"o200k"``, ``"cl100k"``, ``"gpt2"``/``"r50k"``,
    also with the ``_base`` suffix); any other string is taken as a regex."""
    from supertok.registry import CL100K_PAT_STR, O200K_PAT_STR, R50K_PAT_STR

    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
    names = {
        "o200k": O200K_PAT_STR,
        "o200k_base": O200K_PAT_STR,
        "cl100k": CL100K_PAT_STR,
        "cl100k_base": CL100K_PAT_STR,
        "gpt4": CL100K_PAT_STR,
        "gpt2": R50K_PAT_STR,
        "r50k": R50K_PAT_STR,
        "r50k_base": R50K_PAT_STR,
    }
    if pattern in names:
        return names[pattern]
    if not pattern:
        raise ValueError("pattern must not be empty")
    return pattern


def _threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def _paths(files: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    out = [os.fspath(f) for f in files]
    if not out:
        raise ValueError("no files given")
    for p in out:
        if not isinstance(p, str):
            raise TypeError(f"file paths must be str or os.PathLike, got {type(p).__name__}")
        if os.path.isdir(p):
            raise IsADirectoryError(f"{p}: is a directory, not a text file")
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file")
    return out


def _check_vocab(vocab_size: int, special_tokens: Sequence[str]) -> list[str]:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, not {type(vocab_size).__name__}")
    if isinstance(special_tokens, str):
        raise TypeError("special_tokens must be a sequence of str, not a single str")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str):
            raise TypeError(f"special tokens must be str, got {type(s).__name__}")
    if vocab_size < 256 + len(specials):
        raise ValueError(
            f"vocab_size must be at least 256 + the number of special tokens "
            f"= {256 + len(specials)}, got {vocab_size}"
        )
    return specials


def _peak_rss_bytes() -> int | None:
    """Peak resident memory of this process (None where unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r) if sys.platform == "darwin" else int(r) * 1024
    except Exception:  # noqa: BLE001
        return None


def count_pretokens(
    files: PathLike | Iterable[PathLike],
    pattern: str = "o200k",
    *,
    threads: int | None = None,
    errors: str = "strict",
    show_progress: bool = True,
    split_lines: bool = False,
) -> PretokenCounts:
    """Count the pretokens of text files (UTF-8), streamed in blocks with the GIL released.

    Each file is one text: pretokens never span two files. Files are read in ~1 MiB blocks cut
    only at a newline with non-whitespace on both sides, which never changes the pieces of the
    GPT-2, cl100k and o200k patterns.

    Args:
        files: A path or a list of paths.
        pattern: ``"o200k"``, ``"cl100k"``, ``"gpt2"`` or a regex (fancy-regex syntax).
        threads: Worker threads (default: all cores).
        errors: ``"strict"`` (invalid UTF-8 raises ``ValueError`` naming the file and byte
            offset) or ``"replace"`` (U+FFFD).
        show_progress: Show a progress bar.
        split_lines: Pretokenize every line (with its ``\\n``) on its own, as HF's
            ``train(files)`` does; by default pretokens may span lines (``"\\n\\n"``,
            ``".\\n"``), exactly as the encoder will see the text.
    """
    paths = _paths(files)
    pat = resolve_pattern(pattern)
    total = sum(os.path.getsize(p) for p in paths)
    bar = ProgressBar(total, "Counting pretokens", "B", show_progress)
    try:
        counts = _core.count_files(paths, pat, _threads(threads), errors, bar.update_to, split_lines)
        bar.update_to(total)
    finally:
        bar.close()
    return counts


def count_pretokens_from_iterator(
    texts: Iterable[str],
    pattern: str = "o200k",
    *,
    threads: int | None = None,
    show_progress: bool = True,
    split_lines: bool = False,
) -> PretokenCounts:
    """Count the pretokens of an iterable of ``str`` (each item is one text).

    Items are pulled in batches (~8 MB) and counted in parallel with the GIL released (a batch
    is counted while the next one is pulled); only two batches and the distinct pretokens are
    kept in memory. ``split_lines``: see :func:`count_pretokens`.
    """
    pat = resolve_pattern(pattern)
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of str, not a single str/bytes (wrap it in a list)")
    counter = _core.PretokenCounter(pat, _threads(threads), split_lines)
    bar = ProgressBar(None, "Counting pretokens", "B", show_progress)
    done = 0
    batch: list[str] = []
    size = 0
    try:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts must be str; item {i} is {type(t).__name__}")
            batch.append(t)
            size += len(t)
            if size >= ITER_BATCH_BYTES or len(batch) >= ITER_BATCH_TEXTS:
                counter.add_texts(batch)
                done += size
                bar.update_to(done)
                batch, size = [], 0
        if batch:
            counter.add_texts(batch)
            done += size
            bar.update_to(done)
    finally:
        bar.close()
    return counter.finish()


@dataclass
class TrainSummary:
    """What a training run did."""

    merges: int
    vocab_size: int
    unique_pretokens: int
    pretoken_occurrences: int
    count_seconds: float
    merge_seconds: float
    peak_memory_bytes: int | None
    stop_reason: str
    special_collisions: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary printed after training."""
        mem = "?" if self.peak_memory_bytes is None else f"{self.peak_memory_bytes / 1e6:,.0f} MB"
        s = (
            f"Trained {self.merges:,} merges (vocab {self.vocab_size:,}) on "
            f"{self.unique_pretokens:,} unique pretokens ({self.pretoken_occurrences:,} occurrences) in "
            f"{self.count_seconds + self.merge_seconds:.2f} s (counting {self.count_seconds:.2f} s, "
            f"merges {self.merge_seconds:.2f} s), peak memory {mem}"
        )
        if self.stop_reason != "vocab_size":
            s += f"; stopped early ({self.stop_reason})"
        return s


@dataclass
class TrainedBPE:
    """The raw result of training: vocabulary, merges, pattern and special tokens."""

    vocab: list[bytes]
    """Token bytes by id (bytes, learned tokens, then special tokens)."""
    merges: list[tuple[int, int]]
    """Merges as ``(left id, right id)`` in rank order."""
    merge_counts: list[int]
    """Pair count of each merge when it was made."""
    pattern: str
    special_tokens: dict[str, int]
    summary: TrainSummary

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Non-special tokens as a tiktoken ``mergeable_ranks`` dict (rank = id)."""
        specials = set(self.special_tokens.values())
        return {b: i for i, b in enumerate(self.vocab) if i not in specials}

    def to_encoding(self, name: str = "trained") -> Any:
        """A tiktoken-compatible :class:`supertok.Encoding` with this vocabulary."""
        from supertok.core import Encoding

        return Encoding(
            name,
            pat_str=self.pattern,
            mergeable_ranks=self.mergeable_ranks(),
            special_tokens=dict(self.special_tokens),
        )


def _build(result: TrainedBPE, return_summary: bool = False) -> TrainReturn:
    """Turn the raw result into a :class:`supertok.Tokenizer` (HF ``tokenizer.json`` model,
    fast encoder, ``to_tiktoken()``); with ``return_summary`` a ``(tokenizer, TrainSummary)``
    pair."""
    tok = _to_tokenizer(result)
    return (tok, result.summary) if return_summary else tok


def _to_tokenizer(result: TrainedBPE) -> Tokenizer:
    from supertok.tokenizer import Tokenizer

    n_regular = len(result.vocab) - len(result.special_tokens)
    return Tokenizer.from_bpe(
        result.vocab[:n_regular],
        result.merges,
        pattern=result.pattern,
        special_tokens=dict(result.special_tokens),
    )


def _train_counts(
    counts: PretokenCounts,
    vocab_size: int,
    specials: list[str],
    min_frequency: int,
    max_token_length: int | None,
    pattern: str,
    show_progress: bool,
    count_seconds: float,
) -> TrainedBPE:
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 0:
        raise ValueError(f"min_frequency must be a non-negative int, got {min_frequency!r}")
    if max_token_length is not None and (
        isinstance(max_token_length, bool) or not isinstance(max_token_length, int) or max_token_length < 2
    ):
        raise ValueError(f"max_token_length must be an int >= 2 or None, got {max_token_length!r}")
    if counts.all_whitespace():
        raise ValueError(
            "the corpus is empty or whitespace-only: nothing to train on"
            if len(counts) == 0 or counts.total() == 0
            else "the corpus is whitespace-only: nothing to train on"
        )
    target = vocab_size - len(specials)
    bar = ProgressBar(target - 256, "Merging", "merges", show_progress)
    t0 = time.perf_counter()
    try:
        vocab, merges, mcounts, spec, stop, collisions, n_pre = _core.train_from_counts(
            counts,
            vocab_size,
            specials,
            max(1, min_frequency),
            max_token_length,
            lambda n: bar.update_to(n - 256),
        )
        bar.update_to(len(vocab) - len(spec) - 256)
    finally:
        bar.close()
    merge_seconds = time.perf_counter() - t0
    summary = TrainSummary(
        merges=len(merges),
        vocab_size=len(vocab),
        unique_pretokens=n_pre,
        pretoken_occurrences=counts.total(),
        count_seconds=count_seconds,
        merge_seconds=merge_seconds,
        peak_memory_bytes=_peak_rss_bytes(),
        stop_reason=stop,
        special_collisions=list(collisions),
    )
    if collisions:
        import warnings

        warnings.warn(
            "merges that would have produced the text of a special token were skipped "
            f"(the special token keeps its own id): {sorted(set(collisions))!r}",
            stacklevel=3,
        )
    if show_progress:
        print(summary.line(), file=sys.stderr)
    return TrainedBPE(
        vocab=list(vocab),
        merges=[tuple(m) for m in merges],
        merge_counts=list(mcounts),
        pattern=pattern,
        special_tokens=dict(spec),
        summary=summary,
    )


def train_from_counts(
    counts: PretokenCounts,
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = (),
    min_frequency: int = 1,
    max_token_length: int | None = None,
    pattern: str | None = None,
    show_progress: bool = True,
    return_summary: bool = False,
) -> TrainReturn:
    """Train on pretoken counts (e.g. merged from shards counted elsewhere).

    Args:
        counts: From :func:`count_pretokens` / :func:`count_pretokens_from_iterator`
            (possibly summed with ``+``).
        vocab_size: Total vocabulary size (256 bytes + learned tokens + special tokens).
        special_tokens: Special tokens; they get the last ids. A merge that would produce a
            special token's text is skipped and reported (a warning and
            ``summary.special_collisions``), never duplicated.
        min_frequency: Stop when the best pair occurs fewer times than this.
        max_token_length: Never learn tokens longer than this many bytes.
        pattern: The split pattern for the tokenizer; defaults to ``counts.pattern``.
        show_progress: Progress bar and final summary line on stderr.
        return_summary: Return ``(tokenizer, TrainSummary)`` instead of the tokenizer.

    Returns:
        A :class:`supertok.Tokenizer` (saves as HF ``tokenizer.json``; ``to_tiktoken()``).
    """
    if not isinstance(counts, PretokenCounts):
        raise TypeError(f"counts must be a PretokenCounts, not {type(counts).__name__}")
    specials = _check_vocab(vocab_size, special_tokens)
    pat = resolve_pattern(pattern) if pattern is not None else counts.pattern
    if pat is None:
        raise ValueError("these counts have no pattern; pass pattern=...")
    res = _train_counts(counts, vocab_size, specials, min_frequency, max_token_length, pat, show_progress, 0.0)
    return _build(res, return_summary)


def train(
    files: PathLike | Iterable[PathLike],
    vocab_size: int,
    *,
    pattern: str = "o200k",
    special_tokens: Sequence[str] = (),
    min_frequency: int = 1,
    max_token_length: int | None = None,
    threads: int | None = None,
    show_progress: bool = True,
    errors: str = "strict",
    split_lines: bool = False,
    return_summary: bool = False,
) -> TrainReturn:
    """Train a byte-level BPE tokenizer on text files.

    Args:
        files: A path or a list of paths (UTF-8 text; each file is one text).
        vocab_size: Total vocabulary size (256 bytes + learned tokens + special tokens).
        pattern: ``"o200k"``, ``"cl100k"``, ``"gpt2"`` or a regex.
        special_tokens: Special tokens (last ids).
        min_frequency: Stop when the best pair occurs fewer times than this.
        max_token_length: Never learn tokens longer than this many bytes.
        threads: Worker threads for counting (default: all cores).
        show_progress: Progress bars and the final summary line on stderr.
        errors: ``"strict"`` or ``"replace"`` for invalid UTF-8.
        split_lines: Pretokenize each line on its own (HF ``train(files)`` behaviour).
        return_summary: Return ``(tokenizer, TrainSummary)`` instead of the tokenizer.

    Returns:
        A :class:`supertok.Tokenizer` (encodes with the fast encoder, saves as HF
        ``tokenizer.json``, ``to_tiktoken()`` gives a tiktoken-compatible Encoding).
    """
    specials = _check_vocab(vocab_size, special_tokens)
    pat = resolve_pattern(pattern)
    t0 = time.perf_counter()
    counts = count_pretokens(
        files, pat, threads=threads, errors=errors, show_progress=show_progress, split_lines=split_lines
    )
    count_seconds = time.perf_counter() - t0
    res = _train_counts(
        counts, vocab_size, specials, min_frequency, max_token_length, pat, show_progress, count_seconds
    )
    return _build(res, return_summary)


def train_from_iterator(
    texts: Iterable[str],
    vocab_size: int,
    *,
    pattern: str = "o200k",
    special_tokens: Sequence[str] = (),
    min_frequency: int = 1,
    max_token_length: int | None = None,
    threads: int | None = None,
    show_progress: bool = True,
    split_lines: bool = False,
    return_summary: bool = False,
) -> TrainReturn:
    """Train a byte-level BPE tokenizer on an iterable of ``str`` (each item is one text).

    Same options as :func:`train`.
    """
    specials = _check_vocab(vocab_size, special_tokens)
    pat = resolve_pattern(pattern)
    t0 = time.perf_counter()
    counts = count_pretokens_from_iterator(
        texts, pat, threads=threads, show_progress=show_progress, split_lines=split_lines
    )
    count_seconds = time.perf_counter() - t0
    res = _train_counts(
        counts, vocab_size, specials, min_frequency, max_token_length, pat, show_progress, count_seconds
    )
    return _build(res, return_summary)
