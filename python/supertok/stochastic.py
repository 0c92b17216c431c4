"""Stochastic tokenization: StochasTok and seeded BPE-dropout.

* :func:`stochastok` — StochasTok (Sims et al. 2025): randomly split tokens of an
  already-tokenized sequence into pairs of shorter tokens. The distribution is exactly the
  reference procedure's: ``floor(p * n)`` attempts, each at a uniformly random position of
  the *current* sequence; an attempt on a token without a legal split is wasted; a legal
  split is any cut of the token's bytes whose two halves are both tokens, chosen uniformly;
  halves may be split again. Runs in ``O(n + attempts)`` in Rust.
* :func:`stochastok_batch` — the same over many sequences (lists, ragged arrays, 2-D
  arrays) on all cores.
* :func:`split_table` — the table of legal splits of a tokenizer's vocabulary.
* BPE-dropout is ``Encoding.encode(text, dropout=p, seed=s)`` and
  ``Tokenizer.encode(text, dropout=p, seed=s)``; see :func:`encode_dropout` for the exact
  semantics (the paper's, as its authors implemented it; not Hugging Face's).

Randomness: a documented xoshiro256++ generator (``supertok_core::stochastic::rng``).
``seed=None`` draws a fresh seed from the OS; an explicit ``seed`` (an int in
``[0, 2**64)``) makes the output a pure function of the inputs, on every platform and with
every thread count. Row ``i`` of a batch uses stream ``i`` of the seed, so row 0 of a batch
equals a single call with the same seed. The generator's stream is not the reference's
``numpy``/``random`` stream; only the distributions agree.
"""

from __future__ import annotations

import json
import operator
import secrets
import threading
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Iterable,
    List,
    Optional,
    Sequence,
    Union,
    overload,
)

from supertok import _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "stochastok",
    "stochastok_batch",
    "split_table",
    "split_table_arrays",
    "SplitTable",
    "encode_dropout",
    "encode_dropout_hf",
]

SplitTable = _core.SplitTable

_U32_MAX = 0xFFFFFFFF
_U64_LIMIT = 1 << 64


# ---------------------------------------------------------------------------- arguments


def _check_p(p: object, what: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        try:
            import numpy as np

            if isinstance(p, (np.floating, np.integer)):
                p = float(p)
            else:
                raise TypeError
        except (ImportError, TypeError):
            raise TypeError(f"{what} must be a float in [0, 1], not {type(p).__name__}") from None
    p = float(p)  # type: ignore[arg-type]
    if not (0.0 <= p <= 1.0):  # also rejects NaN
        raise ValueError(f"{what} must be a probability in [0, 1], got {p}")
    return p


def _check_seed(seed: object) -> int:
    if seed is None:
        return secrets.randbits(64)
    if isinstance(seed, bool):
        raise TypeError("seed must be an int in [0, 2**64) or None, not bool")
    try:
        s = operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"seed must be an int in [0, 2**64) or None, not {type(seed).__name__}") from None
    if not 0 <= s < _U64_LIMIT:
        raise ValueError(f"seed must be in [0, 2**64), got {s}")
    return s


def _check_max_expansions(m: object) -> Optional[int]:
    if m is None:
        return None
    if isinstance(m, bool):
        raise TypeError("max_expansions must be a non-negative int or None, not bool")
    try:
        v = operator.index(m)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"max_expansions must be a non-negative int or None, not {type(m).__name__}") from None
    if v < 0:
        raise ValueError(f"max_expansions must be >= 0, got {v}")
    return min(v, _U64_LIMIT - 1)


def _check_threads(n: object) -> int:
    if n is None:
        import os

        return max(1, os.cpu_count() or 1)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"num_threads must be int or None, not {type(n).__name__}")
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    return n


# ---------------------------------------------------------------------------- split tables

_cache_lock = threading.Lock()
_weak_cache: "weakref.WeakKeyDictionary[Any, SplitTable]" = weakref.WeakKeyDictionary()
# objects that cannot be weakly referenced: id -> (object, table); a few entries, LRU
_strong_cache: "dict[int, tuple[Any, SplitTable]]" = {}
_STRONG_MAX = 8


def _gpt2_unicode_to_byte() -> dict[str, int]:
    # The byte <-> printable-character map of byte-level BPE (GPT-2, HF ByteLevel).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _table_from_hf(tok: Any) -> SplitTable:
    """Split table of a Hugging Face ``tokenizers.Tokenizer`` with a byte-level BPE model."""
    spec = json.loads(tok.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"StochasTok needs a BPE model, this tokenizer's model is {model.get('type')!r}")
    components = [spec.get("pre_tokenizer"), spec.get("decoder")]

    def has_byte_level(c: Any) -> bool:
        if not isinstance(c, dict):
            return False
        if c.get("type") == "ByteLevel":
            return True
        return any(has_byte_level(x) for x in c.get("pretokenizers", []) + c.get("decoders", []))

    if not any(has_byte_level(c) for c in components):
        raise ValueError(
            "StochasTok supports byte-level BPE tokenizers only (no ByteLevel pre-tokenizer or "
            "decoder found): splitting tokens of other models does not preserve the decoded text"
        )
    u2b = _gpt2_unicode_to_byte()
    added = {int(t["id"]): t["content"] for t in spec.get("added_tokens", [])}
    tokens: list[tuple[bytes, int]] = []
    for s, i in model["vocab"].items():
        if i in added:
            continue
        try:
            tokens.append((bytes(u2b[c] for c in s), int(i)))
        except KeyError:
            raise ValueError(f"token {s!r} (id {i}) is not a byte-level token") from None
    return SplitTable.from_tokens(tokens, sorted(added))


def _build_table(tokenizer: Any) -> SplitTable:
    core = getattr(tokenizer, "_core_bpe", None)
    if isinstance(core, _core.CoreEncoding):
        return SplitTable.from_encoding(core)
    core = getattr(tokenizer, "_core", None)
    if isinstance(core, _core.CoreTokenizer):
        return SplitTable.from_tokenizer(core)
    module = type(tokenizer).__module__ or ""
    if module.startswith("tiktoken") and hasattr(tokenizer, "_mergeable_ranks"):
        ranks = tokenizer._mergeable_ranks
        specials = list(tokenizer._special_tokens.values())
        return SplitTable.from_tokens(list(ranks.items()), specials)
    if module.startswith("tokenizers") and hasattr(tokenizer, "to_str"):
        return _table_from_hf(tokenizer)
    raise TypeError(
        "tokenizer must be a supertok.Encoding, a supertok.Tokenizer, an encoding name, a "
        "tiktoken.Encoding, a byte-level BPE tokenizers.Tokenizer or a SplitTable, not "
        f"{type(tokenizer).__name__}"
    )


def split_table(tokenizer: Any) -> SplitTable:
    """The :class:`SplitTable` of ``tokenizer`` (built once per tokenizer object, then cached).

    ``tokenizer`` may be a :class:`supertok.Encoding`, a :class:`supertok.Tokenizer`, an
    encoding name (``"gpt2"``), a ``tiktoken.Encoding``, a byte-level BPE
    ``tokenizers.Tokenizer``, or a ``SplitTable``.
    Special (and added) tokens are never split and never produced.

    The table lists, for every token id, every cut of its bytes into two halves that are
    both tokens (``table.splits(id)``, in cut order); ``split_table_arrays`` gives it as
    numpy CSR arrays.
    """
    if isinstance(tokenizer, SplitTable):
        return tokenizer
    if isinstance(tokenizer, str):
        from supertok.registry import get_encoding

        tokenizer = get_encoding(tokenizer)
    with _cache_lock:
        try:
            hit = _weak_cache.get(tokenizer)
            weak = True
        except TypeError:
            entry = _strong_cache.get(id(tokenizer))
            hit = entry[1] if entry is not None and entry[0] is tokenizer else None
            weak = False
    if hit is not None:
        return hit
    table = _build_table(tokenizer)
    with _cache_lock:
        if weak:
            _weak_cache[tokenizer] = table
        else:
            if len(_strong_cache) >= _STRONG_MAX:
                _strong_cache.pop(next(iter(_strong_cache)))
            _strong_cache[id(tokenizer)] = (tokenizer, table)
    return table


def split_table_arrays(tokenizer: Any) -> "tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]":
    """The split table as numpy CSR arrays ``(offsets, left, right)``: the legal splits of
    id ``t`` are ``zip(left[offsets[t]:offsets[t+1]], right[offsets[t]:offsets[t+1]])``."""
    import numpy as np

    o, l, r = split_table(tokenizer).csr_bytes()
    return (np.frombuffer(o, dtype=np.uint32), np.frombuffer(l, dtype=np.uint32), np.frombuffer(r, dtype=np.uint32))


# ---------------------------------------------------------------------------- numpy helpers


def _is_ndarray(x: object) -> bool:
    t = type(x)
    for klass in t.__mro__:
        if klass.__module__ == "numpy" and klass.__name__ == "ndarray":
            return True
    return False


def _to_u32(a: Any, what: str = "ids") -> Any:
    """Validate an integer array and return a C-contiguous uint32 copy/view."""
    import numpy as np

    if a.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an integer array, got dtype {a.dtype}")
    if a.size:
        if a.dtype.kind == "i":
            neg = a < 0
            if neg.any():
                pos = int(np.argmax(neg.ravel()))
                raise ValueError(f"token id {int(a.ravel()[pos])} at position {pos} is not in the vocabulary")
        if a.dtype.itemsize > 4:
            big = a > _U32_MAX
            if big.any():
                pos = int(np.argmax(big.ravel()))
                raise ValueError(f"token id {int(a.ravel()[pos])} at position {pos} is not in the vocabulary")
    return np.ascontiguousarray(a, dtype=np.uint32)


def _out_dtype(dtype: Any, table: SplitTable) -> Any:
    """The input dtype if every id of the vocabulary fits in it, else uint32."""
    import numpy as np

    m = table.max_id
    if m is None or m <= np.iinfo(dtype).max:
        return dtype
    return np.dtype(np.uint32)


def _from_buffer(buf: bytearray, dtype: Any) -> Any:
    import numpy as np

    a = np.frombuffer(buf, dtype=np.uint32)
    return a if a.dtype == dtype else a.astype(dtype)


# ---------------------------------------------------------------------------- StochasTok

# Ragged batches are passed to Rust in chunks of about this many tokens: the buffers of a
# chunk stay below the allocator's mmap threshold and are reused, instead of two fresh
# full-size copies (numpy's ``tobytes`` and the result) whose page faults would dominate.
_CHUNK_TOKENS = 1 << 21


def _check_offsets(offs: Any, n_values: int) -> None:
    import numpy as np

    if len(offs) == 0:
        raise ValueError("invalid ragged offsets: need at least one offset (0)")
    if int(offs[0]) != 0:
        raise ValueError(f"invalid ragged offsets: the first offset must be 0, got {int(offs[0])}")
    if int(offs[-1]) != n_values:
        raise ValueError(
            f"invalid ragged offsets: the last offset must equal the number of values ({n_values}), "
            f"got {int(offs[-1])}"
        )
    bad = np.nonzero(offs[1:] < offs[:-1])[0]
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"invalid ragged offsets: offsets[{i + 1}] = {int(offs[i + 1])} < offsets[{i}] = {int(offs[i])}")


def _ragged(table: SplitTable, values: Any, offs: Any, p: float, m: Optional[int], s: int, threads: int) -> Any:
    """StochasTok over ragged rows (uint32 values, uint64 offsets); returns (values, offsets)
    as numpy arrays. Row ``i`` always uses stream ``i``, however the rows are chunked."""
    import numpy as np

    n = len(values)
    if n <= _CHUNK_TOKENS:
        vb, ob = table.stochastok_ragged(values.tobytes(), offs.tobytes(), p, m, s, threads)
        return np.frombuffer(vb, dtype=np.uint32), np.frombuffer(ob, dtype=np.uint64)
    _check_offsets(offs, n)
    n_rows = len(offs) - 1
    lens = np.diff(offs).astype(np.float64)
    attempts = np.floor(lens * p)  # the core's floor(n * p), in double precision
    if m is not None:
        attempts = np.minimum(attempts, float(m))
    out = np.empty(n + int(attempts.sum()), dtype=np.uint32)  # upper bound on the result
    out_offs = np.zeros(n_rows + 1, dtype=np.uint64)
    pos = 0
    r0 = 0
    while r0 < n_rows:
        r1 = int(np.searchsorted(offs, offs[r0] + np.uint64(_CHUNK_TOKENS), side="right")) - 1
        r1 = min(max(r1, r0 + 1), n_rows)
        a, b = int(offs[r0]), int(offs[r1])
        vb, ob = table.stochastok_ragged(
            values[a:b].tobytes(), (offs[r0 : r1 + 1] - offs[r0]).tobytes(), p, m, s, threads, r0
        )
        chunk = np.frombuffer(vb, dtype=np.uint32)
        out[pos : pos + len(chunk)] = chunk
        out_offs[r0 + 1 : r1 + 1] = np.frombuffer(ob, dtype=np.uint64)[1:] + np.uint64(pos)
        pos += len(chunk)
        r0 = r1
    return out[:pos], out_offs



IdsLike = Union[Sequence[int], "npt.NDArray[Any]"]


@overload
def stochastok(
    ids: List[int], tokenizer: Any, p: float = ..., seed: Optional[int] = ..., max_expansions: Optional[int] = ...
) -> List[int]: ...
@overload
def stochastok(
    ids: "npt.NDArray[Any]", tokenizer: Any, p: float = ..., seed: Optional[int] = ..., max_expansions: Optional[int] = ...
) -> "npt.NDArray[Any]": ...
@overload
def stochastok(
    ids: Iterable[int], tokenizer: Any, p: float = ..., seed: Optional[int] = ..., max_expansions: Optional[int] = ...
) -> List[int]: ...
def stochastok(
    ids: Any,
    tokenizer: Any,
    p: float = 0.1,
    seed: Optional[int] = None,
    max_expansions: Optional[int] = None,
) -> Any:
    """StochasTok-expand one token sequence.

    Makes ``floor(p * len(ids))`` attempts; each picks a uniformly random position of the
    current sequence and, if that token has legal splits, replaces it by one of them chosen
    uniformly (see the module docstring). The result decodes to exactly the same bytes and
    is at most ``floor(p * len(ids))`` (and at most ``max_expansions``) tokens longer.

    Args:
        ids: token ids: a list (or any iterable of ints) or a 1-D numpy integer array.
        tokenizer: a :class:`supertok.Encoding`, a :class:`supertok.Tokenizer`, an encoding
            name, a ``tiktoken.Encoding``, a byte-level BPE ``tokenizers.Tokenizer`` or a
            :class:`SplitTable`.
        p: proportion of attempts, in ``[0, 1]`` (the reference's ``expand_prop``).
        seed: int in ``[0, 2**64)`` for a reproducible result; ``None`` for a fresh seed.
        max_expansions: stop after this many successful splits (``None``: no cap).

    Returns:
        A list for list/iterable input; a numpy array for numpy input (same dtype when every
        id of the vocabulary fits in it, else ``uint32``).

    Raises:
        TypeError: wrong argument types (non-integer ids, a 2-D array, ...).
        ValueError: ``p`` outside ``[0, 1]``, an id not in the vocabulary, a bad seed.
    """
    table = split_table(tokenizer)
    p = _check_p(p)
    s = _check_seed(seed)
    m = _check_max_expansions(max_expansions)
    if _is_ndarray(ids):
        if ids.ndim != 1:
            raise TypeError(f"ids must be 1-D, got a {ids.ndim}-D array (use stochastok_batch for batches)")
        if ids.size == 0:
            return ids.copy()  # nothing to split (numpy makes [] float64: accept it)
        a = _to_u32(ids)
        out = table.stochastok_buffer(a.tobytes(), p, m, s)
        return _from_buffer(out, _out_dtype(ids.dtype, table))
    return table.stochastok(ids, p, m, s)


def stochastok_batch(
    batch: Any,
    tokenizer: Any,
    p: float = 0.1,
    seed: Optional[int] = None,
    max_expansions: Optional[int] = None,
    *,
    offsets: Any = None,
    num_threads: Optional[int] = None,
) -> Any:
    """StochasTok-expand many sequences independently, in parallel (GIL released).

    Row ``i`` uses stream ``i`` of ``seed``: the result does not depend on ``num_threads``,
    and row 0 equals ``stochastok(batch[0], tokenizer, p, seed, max_expansions)``.

    Forms of ``batch``:

    * a sequence of sequences (lists or 1-D numpy arrays) → a list with one result per row,
      each of the same kind as :func:`stochastok` returns for it;
    * a 2-D numpy integer array ``(rows, length)`` → ``(values, offsets)``: the expanded rows
      concatenated (``uint32``, or the input dtype if the vocabulary fits in it) and
      ``uint64`` row offsets (``rows + 1`` entries), since rows grow by different amounts;
    * a flat 1-D numpy array with ``offsets=`` (ragged rows ``batch[offsets[i]:offsets[i+1]]``,
      like ``Encoding.encode_batch_to_numpy``) → ``(values, offsets)``.

    Args:
        p, seed, max_expansions: as for :func:`stochastok` (``max_expansions`` is per row).
        num_threads: worker threads (default: all cores).
    """
    table = split_table(tokenizer)
    p = _check_p(p)
    s = _check_seed(seed)
    m = _check_max_expansions(max_expansions)
    threads = _check_threads(num_threads)
    if offsets is not None or (_is_ndarray(batch) and batch.ndim == 2):
        import numpy as np

        if offsets is None:
            rows, length = batch.shape
            values = _to_u32(batch).reshape(-1)
            offs = np.arange(rows + 1, dtype=np.uint64) * np.uint64(length)
        else:
            if not _is_ndarray(batch) or batch.ndim != 1:
                raise TypeError("with offsets=, batch must be a 1-D numpy integer array of values")
            values = _to_u32(batch)
            o = np.asarray(offsets)
            if o.ndim != 1 or o.dtype.kind not in "iu":
                raise TypeError("offsets must be a 1-D integer array")
            if o.size and o.dtype.kind == "i" and (o < 0).any():
                raise ValueError("invalid ragged offsets: negative offset")
            offs = np.ascontiguousarray(o, dtype=np.uint64)
        vals, offs_out = _ragged(table, values, offs, p, m, s, threads)
        dtype = _out_dtype(batch.dtype, table)
        return (vals if vals.dtype == dtype else vals.astype(dtype)), offs_out
    if isinstance(batch, (str, bytes)) or _is_ndarray(batch):
        raise TypeError("batch must be a sequence of token sequences, a 2-D array, or values with offsets=")
    rows_list = list(batch)
    if any(_is_ndarray(r) for r in rows_list):
        import numpy as np

        arrays = []
        for i, r in enumerate(rows_list):
            if not _is_ndarray(r):
                r = np.asarray(r, dtype=np.int64) if len(r) else np.zeros(0, dtype=np.int64)
            if r.ndim != 1:
                raise TypeError(f"row {i} must be 1-D, got {r.ndim}-D")
            arrays.append(r if r.size else np.zeros(0, dtype=np.uint32))
        values = np.concatenate([_to_u32(r) for r in arrays]) if arrays else np.zeros(0, dtype=np.uint32)
        offs = np.zeros(len(arrays) + 1, dtype=np.uint64)
        np.cumsum([len(r) for r in arrays], out=offs[1:])
        flat, o = _ragged(table, values, offs, p, m, s, threads)
        out: list[Any] = []
        for i, r in enumerate(rows_list):
            piece = flat[int(o[i]) : int(o[i + 1])]
            if _is_ndarray(r) and r.size == 0:
                out.append(r.copy())
            elif _is_ndarray(r):
                out.append(piece.astype(_out_dtype(r.dtype, table), copy=True))
            else:
                out.append(piece.tolist())
        return out
    return table.stochastok_batch(rows_list, p, m, s, threads)


# ---------------------------------------------------------------------------- BPE-dropout


def encode_dropout(core: Any, text: str, allowed: Any, disallowed: Any, dropout: object, seed: object) -> List[int]:
    """BPE-dropout encoding used by ``Encoding.encode(text, dropout=p, seed=s)``.

    Semantics (Provilkov et al. 2020, as implemented by the authors in subword-nmt): each
    piece starts as bytes; at every merge step each applicable merge (each adjacent
    mergeable pair, at every position) is dropped independently with probability ``p``; the
    best surviving pair (lowest rank, then leftmost) is merged at all its surviving
    positions; the piece is final when every applicable merge was dropped. A piece in which
    no merge was dropped is encoded exactly as without dropout (including tiktoken's rule
    that a piece that is itself a token is emitted whole), so ``p = 0`` is plain encoding and
    ``p = 1`` gives bytes. Hugging Face ``tokenizers`` differs (it draws for stale heap
    entries, re-inserts skipped merges after any non-skipped pop and merges one position at
    a time), and drops noticeably less at the same ``p``. Special-token handling is that of
    plain ``encode``. See ``docs/stochastic.md``.
    """
    p = _check_p(dropout, "dropout")
    s = _check_seed(seed)
    return _core.encode_dropout(core, text, allowed, disallowed, p, s)


def encode_dropout_hf(core: Any, text: str, add_special_tokens: bool, dropout: object, seed: object) -> List[int]:
    """BPE-dropout encoding used by ``Tokenizer.encode(text, dropout=p, seed=s)``: the
    semantics of :func:`encode_dropout` applied to each pre-tokenized piece of an HF
    byte-level BPE tokenizer (added tokens, normalizer, pre-tokenizer and post-processor
    unchanged). With ``ignore_merges``, a piece that is a token stays whole when no merge was
    dropped (HF ignores ``ignore_merges`` whenever dropout is on)."""
    p = _check_p(dropout, "dropout")
    s = _check_seed(seed)
    return _core.encode_dropout_hf(core, text, add_special_tokens, p, s)
