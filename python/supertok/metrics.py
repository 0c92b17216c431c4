"""Tokenizer metrics: compression, token premiums on parallel text, fertility, vocabulary
use and overlap, Rényi efficiency.

Every function takes any tokenizer :func:`supertok.metrics.as_tokenizer` accepts: a
:class:`supertok.Encoding`, a :class:`supertok.Tokenizer`, a tiktoken-style encoding, a
bundled encoding name or a file path, or a plain callable ``str -> list[int]`` (wrap it with
:func:`wrap` to give token bytes or a vocabulary size where a metric needs them).

Conventions:

* Special-token ids are never counted (corpus token count = non-special tokens, as in
  Arnett et al. 2025). Encodings encode special-token text as ordinary text.
* Corpus-level ratios are ratios of sums (not means of per-text ratios).
* "Words" are maximal runs of non-whitespace characters. Scripts written without spaces
  (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan) have no such words: fertility and the
  continued-word rate are ``nan`` for them (detected from the text, or forced with
  ``spaceless=``), never 0.
* Texts are ``str`` or a sequence of ``str``; parallel data are records
  (``[{"en": ..., "de": ...}, ...]``, missing languages allowed) or columns
  (``{"en": [...], "de": [...]}`` of equal length, ``None`` for missing).

numpy is needed by the offset-based metrics (fertility, continued-word rate) only.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from supertok._adapt import TokenizerLike, _numpy, as_tokenizer, load_tokenizer, wrap

__all__ = [
    "as_tokenizer",
    "wrap",
    "load_tokenizer",
    "load_parallel",
    "parallel_languages",
    "token_counts",
    "corpus_token_count",
    "bytes_per_token",
    "chars_per_token",
    "token_premium",
    "sentence_premiums",
    "byte_premium",
    "normalized_sequence_length",
    "fertility",
    "continued_word_rate",
    "vocab_utilization",
    "vocab_overlap",
    "renyi_entropy",
    "renyi_efficiency",
    "is_spaceless",
    "evaluate",
]

Texts = Union[str, Sequence[str]]
Parallel = Union[Sequence[Mapping[str, Optional[str]]], Mapping[str, Sequence[Optional[str]]]]

# Scripts written without spaces between words.
_SPACELESS = re.compile(
    "[\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff\u31f0-\u31ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\U00020000-\U0002fa1f]"
)
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"\S+")


def _texts(texts: Texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError(f"{what} must be str or a sequence of str, not bytes")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be str, not {type(t).__name__}")
    return out


def _nonempty(texts: list[str], what: str = "texts") -> list[str]:
    if not any(texts):
        raise ValueError(f"{what} is empty: no text to measure")
    return texts


def _encode(tok: TokenizerLike, texts: list[str]) -> list[list[int]]:
    return [tok.strip_special(ids) for ids in tok.encode_batch(texts)]


def _n_tokens(tok: TokenizerLike, texts: list[str]) -> int:
    return sum(len(ids) for ids in _encode(tok, texts))


def _n_bytes(texts: Iterable[str]) -> int:
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)


def _ratio(num: float, den: float, what: str) -> float:
    if den == 0:
        raise ValueError(f"{what}: the denominator is 0 (no tokens/text)")
    return num / den


# ---------------------------------------------------------------------- parallel data


def load_parallel(path: "str | os.PathLike[str]", languages: Optional[Iterable[str]] = None) -> list[dict[str, str]]:
    """Read a JSON-lines parallel corpus (one object ``{lang: text}`` per line).

    Args:
        path: File path (e.g. ``../shared/corpus/parallel.jsonl``).
        languages: Keep only these keys (default: all).

    Raises:
        ValueError: a line that is not a JSON object of strings (naming the line).
    """
    keep = None if languages is None else set(languages)
    rows: list[dict[str, str]] = []
    with open(os.fspath(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
                raise ValueError(f"{path}:{n}: expected an object mapping languages to strings")
            rows.append({k: v for k, v in obj.items() if keep is None or k in keep})
    return rows


def _records(parallel: Parallel) -> list[Mapping[str, Optional[str]]]:
    if isinstance(parallel, Mapping):
        cols = {k: list(v) for k, v in parallel.items()}
        lens = {len(v) for v in cols.values()}
        if len(lens) > 1:
            raise ValueError(f"parallel columns have different lengths: {sorted(lens)}")
        n = lens.pop() if lens else 0
        return [{k: v[i] for k, v in cols.items()} for i in range(n)]
    if isinstance(parallel, (str, bytes)):
        raise TypeError("parallel must be records or columns, not a string (use load_parallel(path))")
    rows = list(parallel)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise TypeError(f"parallel[{i}] must be a mapping language -> text, not {type(r).__name__}")
    return rows


def parallel_languages(parallel: Parallel, *, min_rows: int = 1) -> list[str]:
    """Languages present (non-empty) in at least ``min_rows`` rows, sorted."""
    c: Counter[str] = Counter()
    for r in _records(parallel):
        c.update(k for k, v in r.items() if isinstance(v, str) and v)
    return sorted(k for k, n in c.items() if n >= min_rows)


def _pairs(
    parallel: Parallel, ref: str, languages: Optional[Iterable[str]]
) -> tuple[list[Mapping[str, Optional[str]]], list[str]]:
    rows = _records(parallel)
    langs = parallel_languages(rows) if languages is None else list(languages)
    if not any(isinstance(r.get(ref), str) and r.get(ref) for r in rows):
        raise ValueError(f"the reference language {ref!r} has no text in the parallel data")
    return rows, langs


def _lang_rows(rows: list[Mapping[str, Optional[str]]], lang: str, ref: str) -> list[int]:
    out = []
    for i, r in enumerate(rows):
        a, b = r.get(lang), r.get(ref)
        if isinstance(a, str) and a and isinstance(b, str) and b:
            out.append(i)
    return out


# ---------------------------------------------------------------------- counts


def token_counts(tok: Any, texts: Texts) -> Counter[int]:
    """How often each (non-special) id occurs in the tokenization of ``texts``."""
    t = as_tokenizer(tok)
    c: Counter[int] = Counter()
    for ids in _encode(t, _texts(texts)):
        c.update(ids)
    return c


def corpus_token_count(tok: Any, texts: Texts) -> int:
    """CTC: the number of non-special tokens ``tok`` produces for ``texts``."""
    return _n_tokens(as_tokenizer(tok), _texts(texts))


def bytes_per_token(tok: Any, texts: Texts) -> float:
    """UTF-8 bytes per non-special token over ``texts`` (compression)."""
    ts = _nonempty(_texts(texts))
    return _ratio(_n_bytes(ts), _n_tokens(as_tokenizer(tok), ts), "bytes_per_token")


def chars_per_token(tok: Any, texts: Texts) -> float:
    """Characters (code points) per non-special token over ``texts``."""
    ts = _nonempty(_texts(texts))
    return _ratio(sum(len(t) for t in ts), _n_tokens(as_tokenizer(tok), ts), "chars_per_token")


def _row_token_counts(t: TokenizerLike, rows: list[Mapping[str, Optional[str]]], lang: str, idx: list[int]) -> list[int]:
    texts = [rows[i][lang] for i in idx]
    return [len(ids) for ids in _encode(t, texts)]  # type: ignore[arg-type]


def token_premium(
    tok: Any, parallel: Parallel, ref: str = "en", *, languages: Optional[Iterable[str]] = None
) -> dict[str, float]:
    """Token premium of each language: CTC(language) / CTC(ref) over the rows that have both.

    A premium of 1.5 means the tokenizer needs 50% more tokens for the same content than for
    the reference language (Petrov et al. 2023 "premium"; parity is a premium of 1). The
    reference itself gets 1.0.

    Raises:
        ValueError: the reference language is absent, or a language shares no row with it.
    """
    t = as_tokenizer(tok)
    rows, langs = _pairs(parallel, ref, languages)
    ref_idx = _lang_rows(rows, ref, ref)
    ref_counts = dict(zip(ref_idx, _row_token_counts(t, rows, ref, ref_idx)))
    out: dict[str, float] = {}
    for lang in langs:
        idx = _lang_rows(rows, lang, ref)
        if not idx:
            raise ValueError(f"language {lang!r} shares no row with the reference {ref!r}")
        num = sum(_row_token_counts(t, rows, lang, idx)) if lang != ref else sum(ref_counts[i] for i in idx)
        out[lang] = _ratio(num, sum(ref_counts[i] for i in idx), f"token_premium[{lang}]")
    return out


def sentence_premiums(
    tok: Any, parallel: Parallel, ref: str = "en", *, languages: Optional[Iterable[str]] = None
) -> dict[str, list[float]]:
    """Per-row ratios tokens(language) / tokens(ref), in row order, for each language
    (rows where the reference has 0 tokens are skipped)."""
    t = as_tokenizer(tok)
    rows, langs = _pairs(parallel, ref, languages)
    out: dict[str, list[float]] = {}
    for lang in langs:
        idx = _lang_rows(rows, lang, ref)
        a = _row_token_counts(t, rows, lang, idx)
        b = _row_token_counts(t, rows, ref, idx)
        out[lang] = [x / y for x, y in zip(a, b) if y]
    return out


def byte_premium(
    parallel: Parallel, ref: str = "en", *, languages: Optional[Iterable[str]] = None
) -> dict[str, float]:
    """Byte premium of each language: UTF-8 bytes(language) / bytes(ref) over the rows that
    have both (Arnett, Chang, Bergen 2024). Tokenizer-independent."""
    rows, langs = _pairs(parallel, ref, languages)
    out: dict[str, float] = {}
    for lang in langs:
        idx = _lang_rows(rows, lang, ref)
        if not idx:
            raise ValueError(f"language {lang!r} shares no row with the reference {ref!r}")
        out[lang] = _ratio(
            _n_bytes(rows[i][lang] for i in idx),  # type: ignore[misc]
            _n_bytes(rows[i][ref] for i in idx),  # type: ignore[misc]
            f"byte_premium[{lang}]",
        )
    return out


def normalized_sequence_length(tok: Any, ref_tok: Any, texts: Texts) -> float:
    """NSL (Dagan et al. 2024): tokens of ``tok`` / tokens of ``ref_tok`` on the same texts."""
    ts = _nonempty(_texts(texts))
    return _ratio(
        _n_tokens(as_tokenizer(tok), ts), _n_tokens(as_tokenizer(ref_tok), ts), "normalized_sequence_length"
    )


# ---------------------------------------------------------------------- words


def is_spaceless(texts: Texts, *, threshold: float = 0.3, sample_chars: int = 200_000) -> bool:
    """Whether ``texts`` are mostly written in scripts without spaces between words: the
    share of letters from Han, kana, Thai, Lao, Khmer, Myanmar or Tibetan exceeds
    ``threshold`` (in the first ``sample_chars`` characters)."""
    n_sp = n_let = 0
    left = sample_chars
    for t in _texts(texts):
        s = t[:left]
        n_sp += len(_SPACELESS.findall(s))
        n_let += len(_LETTER.findall(s))
        left -= len(s)
        if left <= 0:
            break
    return n_let > 0 and n_sp / n_let > threshold


def _char_to_byte(text: str) -> Any:
    """Byte offset of every character index 0..len(text) (inclusive)."""
    np = _numpy()
    if text.isascii():
        return np.arange(len(text) + 1, dtype=np.int64)
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bl = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
    out = np.zeros(len(cp) + 1, dtype=np.int64)
    np.cumsum(bl, out=out[1:])
    return out


def _word_token_counts(
    t: TokenizerLike, texts: list[str], counts: Optional[Counter[int]] = None
) -> tuple[int, int, Any]:
    """(non-special tokens, words, tokens overlapping each word) over ``texts``; adds the
    non-special ids to ``counts`` when given."""
    np = _numpy()
    n_tok = 0
    per_word = []
    for text, (ids, starts, ends) in zip(texts, t.encode_batch_with_offsets(texts)):
        if t.special_ids and ids:
            keep = np.fromiter((i not in t.special_ids for i in ids), dtype=bool, count=len(ids))
            starts, ends = starts[keep], ends[keep]
            ids = [i for i in ids if i not in t.special_ids]
        if counts is not None:
            counts.update(ids)
        n_tok += len(starts)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        if not spans:
            continue
        c2b = _char_to_byte(text)
        sp = np.asarray(spans, dtype=np.int64)
        ws, we = c2b[sp[:, 0]], c2b[sp[:, 1]]
        # tokens overlapping [ws, we): start < we and end > ws; starts and ends are sorted
        nonempty = ends > starts
        s, e = starts[nonempty], ends[nonempty]
        per_word.append(np.searchsorted(s, we, "left") - np.searchsorted(e, ws, "right"))
    counts_w = np.concatenate(per_word) if per_word else np.zeros(0, dtype=np.int64)
    return n_tok, len(counts_w), counts_w


def fertility(tok: Any, texts: Texts, *, spaceless: Optional[bool] = None) -> float:
    """Non-special tokens per whitespace-delimited word (``nan`` for scripts without spaces,
    see the module notes; ``spaceless`` forces the decision)."""
    ts = _nonempty(_texts(texts))
    if is_spaceless(ts) if spaceless is None else spaceless:
        return math.nan
    words = sum(len(_WORD.findall(t)) for t in ts)
    if words == 0:
        return math.nan
    return _n_tokens(as_tokenizer(tok), ts) / words


def continued_word_rate(tok: Any, texts: Texts, *, spaceless: Optional[bool] = None) -> float:
    """Share of whitespace-delimited words covered by two or more tokens (Rust et al. 2021's
    "proportion of continued words"; 1 minus it is TokLens' STRR). A token counts for every
    word whose bytes it overlaps (leading spaces are not part of words), so a SuperBPE token
    spanning whole words continues none of them. ``nan`` for scripts without spaces.

    Needs byte offsets: the tokenizer's own (``Tokenizer``) or cumulative token byte lengths.
    """
    ts = _nonempty(_texts(texts))
    if is_spaceless(ts) if spaceless is None else spaceless:
        return math.nan
    _, n_words, counts = _word_token_counts(as_tokenizer(tok), ts)
    if n_words == 0:
        return math.nan
    return float((counts >= 2).sum()) / n_words


# ---------------------------------------------------------------------- vocabulary


def vocab_utilization(tok: Any, texts: Texts, *, vocab_size: Optional[int] = None) -> float:
    """Distinct non-special ids seen in ``texts`` / the number of non-special tokens (or
    ``vocab_size``)."""
    t = as_tokenizer(tok)
    seen = len(token_counts(t, texts))
    v = t.vocab_size if vocab_size is None else int(vocab_size)
    if v <= 0:
        raise ValueError(f"vocab_size must be positive, got {v}")
    return seen / v


def vocab_overlap(tok_a: Any, tok_b: Any, *, return_counts: bool = False) -> Union[float, tuple[float, int, int, int]]:
    """Jaccard overlap of the byte-normalised vocabularies (sets of token byte strings,
    special tokens excluded): ``|A ∩ B| / |A ∪ B|``.

    Comparing bytes, not token strings, makes ``"▁Café"``-, ``"ĠCafÃ©"``- and tiktoken-style
    vocabularies comparable. With ``return_counts`` returns ``(jaccard, |A|, |B|, |A ∩ B|)``.
    """
    a = as_tokenizer(tok_a).byte_vocab()
    b = as_tokenizer(tok_b).byte_vocab()
    shared = len(a & b)
    union = len(a | b)
    j = shared / union if union else math.nan
    return (j, len(a), len(b), shared) if return_counts else j


def _count_values(counts: Any) -> list[float]:
    if isinstance(counts, Mapping):
        vals = list(counts.values())
    else:
        try:
            import numpy as np

            if isinstance(counts, np.ndarray):
                vals = counts.reshape(-1).tolist()
            else:
                vals = list(counts)
        except ImportError:  # pragma: no cover
            vals = list(counts)
    out = []
    for v in vals:
        f = float(v)
        if f < 0 or math.isnan(f):
            raise ValueError(f"counts must be non-negative numbers, got {v!r}")
        if f > 0:
            out.append(f)
    return out


def renyi_entropy(counts: Any, power: float = 2.5) -> float:
    """Rényi entropy (natural log) of the unigram distribution given by ``counts`` (a mapping
    token -> count or a sequence/array of counts): ``log(sum p^a) / (1 - a)``; Shannon
    entropy at ``a = 1``."""
    vals = _count_values(counts)
    if not vals:
        raise ValueError("counts are empty")
    a = float(power)
    if a < 0 or math.isnan(a):
        raise ValueError(f"power must be >= 0, got {power}")
    total = math.fsum(vals)
    ps = [v / total for v in vals]
    if a == 1.0:
        return -math.fsum(p * math.log(p) for p in ps)
    if math.isinf(a):
        return -math.log(max(ps))
    return math.log(math.fsum(p**a for p in ps)) / (1.0 - a)


def renyi_efficiency(counts: Any, *, power: float = 2.5, vocab_size: Optional[int] = None) -> float:
    """Rényi efficiency (Zouhar et al. 2023): ``H_a(p) / log(V)``, with ``V`` the number of
    distinct observed tokens or ``vocab_size``.

    ``counts``: a mapping token -> count (e.g. :func:`token_counts`) or a sequence/array of
    counts. Golden values (``tests/test_metrics.py``): the whitespace tokens of
    ``"pick @@ed pick @@l @@ed pick @@les"`` give 0.803153 at ``a = 3`` and 0.826506 at
    ``a = 2.5``.
    """
    vals = _count_values(counts)
    v = len(vals) if vocab_size is None else int(vocab_size)
    if v < len(vals):
        raise ValueError(f"vocab_size {v} is smaller than the {len(vals)} observed tokens")
    if v <= 1:
        return math.nan
    return renyi_entropy(vals, power) / math.log(v)


# ---------------------------------------------------------------------- all at once


def evaluate(
    tok: Any,
    texts: Texts,
    *,
    power: float = 2.5,
    spaceless: Optional[bool] = None,
    words: bool = True,
) -> dict[str, float]:
    """Every single-corpus metric from one tokenization of ``texts``.

    Keys: ``tokens``, ``bytes``, ``chars``, ``bytes_per_token``, ``chars_per_token``,
    ``fertility``, ``continued_word_rate`` (``nan`` when words are undefined or
    ``words=False``), ``vocab_utilization`` (``nan`` when the vocabulary size is unknown),
    ``renyi_efficiency`` (observed vocabulary, ``power``).
    """
    t = as_tokenizer(tok)
    ts = _nonempty(_texts(texts))
    sp = is_spaceless(ts) if spaceless is None else spaceless
    n_bytes = _n_bytes(ts)
    n_chars = sum(len(x) for x in ts)
    out: dict[str, float] = {"bytes": float(n_bytes), "chars": float(n_chars)}
    counts: Counter[int] = Counter()
    if words and not sp and (t.has_token_bytes or t._offsets is not None):
        n_tok, n_words, per_word = _word_token_counts(t, ts, counts)
        cwr = float((per_word >= 2).sum()) / n_words if n_words else math.nan
    else:
        for ids in _encode(t, ts):
            counts.update(ids)
        n_tok = sum(counts.values())
        n_words = 0 if sp else sum(len(_WORD.findall(x)) for x in ts)
        cwr = math.nan
    if n_tok == 0:
        raise ValueError("the tokenizer produced no tokens for these texts")
    out["tokens"] = float(n_tok)
    out["bytes_per_token"] = n_bytes / n_tok
    out["chars_per_token"] = n_chars / n_tok
    out["fertility"] = n_tok / n_words if n_words and not sp else math.nan
    out["continued_word_rate"] = cwr
    try:
        out["vocab_utilization"] = len(counts) / t.vocab_size
    except TypeError:
        out["vocab_utilization"] = math.nan
    out["renyi_efficiency"] = renyi_efficiency(counts, power=power)
    return out
