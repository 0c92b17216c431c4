"""Exact byte-level probabilities from token language models.

:class:`ByteLM` turns a token LM into a byte LM: it sums the LM's probabilities over every
canonical token path that covers a byte prefix (the valid covering tree), so the result
does not depend on where the prompt happens to cut a token. The tokenizer-side work is in
Rust (``supertok._core.ByteTree``); the model is any object with

``model.logprobs(prefixes: Sequence[Sequence[int]]) -> np.ndarray``  of shape
``(len(prefixes), n_vocab)``: natural-log next-token probabilities after each token prefix
(an empty prefix means the start of the text). Rows must be normalised.

A model may also offer ``model.logprobs_tree(prefix, tokens, parents)`` returning
``(1 + len(tokens), n_vocab)`` rows: row 0 after ``prefix``, row ``i + 1`` after
``prefix + path(i)`` where ``path(i) = path(parents[i]) + [tokens[i]]`` and
``parents[i] == -1`` means directly after ``prefix`` (parents come before children). ByteLM
uses it when present (it lets a model reuse its KV cache across the tree).

numpy is required (``pip install supertok[numpy]``).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

from supertok import _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["ByteLM", "ByteStream", "ByteEnsemble", "ByteStats", "byte_tokenizer"]

_Text = Union[str, bytes]
# prompt bytes pushed before the nodes still alive are evaluated (bounds one model call)
_PROMPT_SEGMENT = 2048
# prefixes per model.logprobs call when evaluating a stream's pending nodes
_MAX_BATCH = 16
_BT_CACHE: dict[int, Any] = {}


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover
        raise ImportError("supertok.ByteLM needs numpy: pip install 'supertok[numpy]'") from e
    return numpy


def byte_tokenizer(tokenizer: Any) -> "_core.ByteTokenizer":
    """The Rust-side analysis (``_core.ByteTokenizer``) of a tokenizer, cached per object.

    Accepts a :class:`supertok.Encoding`, an object with a ``byte_tokenizer()`` method (such
    as an HF-style :class:`supertok.Tokenizer`), or a ``_core.ByteTokenizer``.
    """
    if isinstance(tokenizer, _core.ByteTokenizer):
        return tokenizer
    key = id(tokenizer)
    hit = _BT_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    if isinstance(getattr(tokenizer, "_core", None), _core.CoreTokenizer):
        bt = _core.ByteTokenizer.from_hf(tokenizer._core)
    elif hasattr(tokenizer, "byte_tokenizer"):
        bt = tokenizer.byte_tokenizer()
    elif hasattr(tokenizer, "_core_bpe"):
        bt = _core.ByteTokenizer.from_encoding(tokenizer._core_bpe)
    else:
        raise TypeError(
            "tokenizer must be a supertok.Encoding, a supertok.Tokenizer or a "
            f"_core.ByteTokenizer, not {type(tokenizer).__name__}"
        )
    _BT_CACHE[key] = (tokenizer, bt)
    return bt


def _as_bytes(text: _Text, what: str = "text") -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"{what} must be str or bytes, not {type(text).__name__}")


def _transform(rows: "np.ndarray", temperature: float, top_p: float) -> "np.ndarray":
    """Apply temperature and nucleus truncation to natural-log token distributions."""
    np = _np()
    if temperature == 1.0 and top_p >= 1.0:
        return rows
    out = rows / temperature if temperature != 1.0 else rows.copy()
    out -= np.logaddexp.reduce(out, axis=1, keepdims=True)
    if top_p < 1.0:
        for r in out:
            order = np.argsort(-r, kind="stable")
            p = np.exp(r[order])
            keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)
            r[order[keep:]] = -np.inf
            r -= np.logaddexp.reduce(r)
    return out


@dataclass
class ByteStats:
    """Work counters of :class:`ByteLM` calls: pass ``stats=ByteStats()`` to a method and
    read it afterwards (counts add up over calls).

    * ``bytes``: bytes pushed through covering trees (0 for :meth:`ByteLM.logprob`);
    * ``positions``: LM positions requested (tree nodes evaluated; for
      :meth:`ByteLM.logprob`, the canonical tokens plus the end-of-text position);
    * ``heads``, ``max_heads``: live heads summed over the pushed bytes, and their maximum;
    * ``values_read``: model row entries the Rust side read;
    * ``tree_seconds`` / ``row_seconds``: time in the Rust calls that maintain the tree and
      answer probability queries / that read model rows (wall clock, binding overhead
      included); ``tree_cpu_seconds`` / ``row_cpu_seconds``: the same as CPU time of the
      calling thread (steadier on a loaded machine);
    * ``core_tree_seconds`` / ``core_row_seconds``: the part of those spent inside the Rust
      core itself (no binding or Python overhead);
    * ``model_seconds``: time in the model's ``logprobs`` / ``logprobs_tree``; ``model_calls``.
    """

    bytes: int = 0
    positions: int = 0
    heads: int = 0
    max_heads: int = 0
    values_read: int = 0
    tree_seconds: float = 0.0
    tree_cpu_seconds: float = 0.0
    row_seconds: float = 0.0
    row_cpu_seconds: float = 0.0
    core_tree_seconds: float = 0.0
    core_row_seconds: float = 0.0
    model_seconds: float = 0.0
    model_calls: int = 0

    def add(self, other: "ByteStats") -> "ByteStats":
        """Add another set of counters to this one (``max_heads`` takes the maximum)."""
        for f in fields(self):
            if f.name == "max_heads":
                self.max_heads = max(self.max_heads, other.max_heads)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def _tree_counters(self, c: dict) -> None:
        self.bytes += c["bytes"]
        self.heads += c["heads"]
        self.max_heads = max(self.max_heads, c["max_heads"])
        self.values_read += c["values_read"]
        self.core_tree_seconds += c["tree_ns"] * 1e-9
        self.core_row_seconds += c["row_ns"] * 1e-9


class _Clock:
    """Wall and thread-CPU time of a block, added to two ByteStats fields."""

    __slots__ = ("stats", "wall", "cpu", "t0", "c0")

    def __init__(self, stats: ByteStats, wall: str, cpu: str):
        self.stats, self.wall, self.cpu = stats, wall, cpu

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = time.thread_time()

    def __exit__(self, *exc: Any) -> None:
        st = self.stats
        setattr(st, self.wall, getattr(st, self.wall) + time.perf_counter() - self.t0)
        setattr(st, self.cpu, getattr(st, self.cpu) + time.thread_time() - self.c0)


class ByteStream:
    """A byte stream being scored or generated by a :class:`ByteLM` (streaming API).

    Create with :meth:`ByteLM.stream`; :meth:`push` bytes, read :meth:`logprobs` (the
    257-way next-byte distribution) or :meth:`logprob_next`.

    ``known``: bytes the stream will be fed first (rows are then summarised for them only).
    ``scoring``: only the known bytes and the end of the text will be scored.
    ``prompt``: ``known`` is a prompt that is only asked about after its end; its bytes are
    pushed without evaluating the nodes in between (see :meth:`ByteLM.stream`).
    """

    def __init__(
        self,
        lm: "ByteLM",
        known: bytes = b"",
        temperature: float = 1.0,
        top_p: float = 1.0,
        *,
        scoring: bool = False,
        prompt: bool = False,
        stats: Optional[ByteStats] = None,
    ):
        self.lm = lm
        self._tree = _core.ByteTree(
            lm._bt,
            known if known else None,
            bool(scoring and known),
            bool(prompt and known and not scoring),
        )
        self._known = bytes(known)
        self._trunk: list[int] = []
        self._temperature = float(temperature)
        self._top_p = float(top_p)
        self.evaluated = 0
        self.rust_seconds = 0.0
        self._stats = stats
        self._reported: Optional[dict] = None
        self._evaluate()

    def copy(self) -> "ByteStream":
        """An independent copy of this stream (it reports to no :class:`ByteStats`)."""
        new = object.__new__(ByteStream)
        new.lm = self.lm
        new._tree = self._tree.copy()
        new._known = self._known
        new._trunk = list(self._trunk)
        new._temperature = self._temperature
        new._top_p = self._top_p
        new.evaluated = self.evaluated
        new.rust_seconds = self.rust_seconds
        new._stats = None
        new._reported = None
        return new

    @property
    def text(self) -> bytes:
        """Bytes pushed so far."""
        return self._tree.text()

    @property
    def trunk(self) -> list[int]:
        """Committed tokens: a prefix of the canonical encoding of every continuation."""
        self._sync()
        return list(self._trunk)

    def _sync(self) -> None:
        c = self._tree.take_committed()
        if c:
            self._trunk.extend(c)

    def _evaluate(self) -> None:
        self._sync()
        ids, tokens, parents, where = self._tree.pending_tree()
        if not ids:
            return
        st = self._stats
        for a, b, rows, index in self.lm._tree_rows(self._trunk, tokens, parents, where, st):
            if self._temperature != 1.0 or self._top_p < 1.0:
                rows = _transform(np_f64(rows[index]), self._temperature, self._top_p)
                index = None
            if st is not None:
                st.positions += b - a
            t0 = time.perf_counter()
            if st is None:
                self._tree.set_rows(ids[a:b], rows, index, self.lm.eot)
            else:
                with _Clock(st, "row_seconds", "row_cpu_seconds"):
                    self._tree.set_rows(ids[a:b], rows, index, self.lm.eot)
            self.rust_seconds += time.perf_counter() - t0
            self.evaluated += b - a
        self._sync()

    def _score_push(self, b: int) -> float:
        """``logprob_next(b)`` then ``_push_byte(b)`` with one Rust call."""
        t0 = time.perf_counter()
        if self._stats is None:
            lp = self._tree.score_push(b)
        else:
            with _Clock(self._stats, "tree_seconds", "tree_cpu_seconds"):
                lp = self._tree.score_push(b)
        self.rust_seconds += time.perf_counter() - t0
        self._evaluate()
        return lp

    def _push_byte(self, b: int) -> None:
        t0 = time.perf_counter()
        if self._stats is None:
            self._tree.push(b)
        else:
            with _Clock(self._stats, "tree_seconds", "tree_cpu_seconds"):
                self._tree.push(b)
        self.rust_seconds += time.perf_counter() - t0
        self._evaluate()

    def push(self, data: Union[bytes, int]) -> None:
        """Append bytes (or one byte given as an int)."""
        if isinstance(data, int):
            data = bytes([data])
        data = _as_bytes(data, "data")
        i = 0
        if self._tree.in_prompt():
            # prompt bytes (nothing is asked inside the prompt): push them without
            # evaluating, then evaluate only the nodes still alive at the end of each
            # segment (segments bound the size of one model call)
            rest = len(self._known) - len(self._tree.text())
            end = min(len(data), rest)
            while i < end:
                j = min(end, i + _PROMPT_SEGMENT)
                t0 = time.perf_counter()
                if self._stats is None:
                    self._tree.push_prompt(data[i:j])
                else:
                    with _Clock(self._stats, "tree_seconds", "tree_cpu_seconds"):
                        self._tree.push_prompt(data[i:j])
                self.rust_seconds += time.perf_counter() - t0
                self._evaluate()
                i = j
        for b in data[i:]:
            self._push_byte(b)

    def logprobs(self) -> "np.ndarray":
        """Normalised next-byte log-probabilities: 256 bytes + end of text (index 256)."""
        np = _np()
        if self._stats is None:
            total, masses = self._tree.masses()
        else:
            with _Clock(self._stats, "tree_seconds", "tree_cpu_seconds"):
                total, masses = self._tree.masses()
        if not math.isfinite(total):
            raise ValueError(
                f"the model gives probability zero to the prefix {self.text[-40:]!r}"
            )
        return np.asarray(masses, dtype=np.float64) - total

    def logprob_next(self, byte: Optional[int]) -> float:
        """log P(next byte = ``byte`` | text); ``None`` for the end of text."""
        if self._stats is None:
            return self._tree.target_logprob(byte)
        with _Clock(self._stats, "tree_seconds", "tree_cpu_seconds"):
            return self._tree.target_logprob(byte)

    def counters(self) -> dict:
        """Tree counters (evaluated nodes, bytes, heads, values read, Rust-internal ns, ...)."""
        return self._tree.counters()

    def report(self) -> None:
        """Add this stream's tree counters (bytes, heads, values read) to its
        :class:`ByteStats` (done by the :class:`ByteLM` methods; call it once when driving a
        stream yourself)."""
        if self._stats is None:
            return
        c = self._tree.counters()
        prev = self._reported or {k: 0 for k in c}
        delta = {k: (c[k] - prev[k]) if k != "max_heads" else c[k] for k in c}
        self._stats._tree_counters(delta)
        self._reported = c


def np_f64(a: Any) -> "np.ndarray":
    np = _np()
    return np.ascontiguousarray(a, dtype=np.float64)


class ByteLM:
    """A byte-level language model from a token LM and its tokenizer.

    Args:
        tokenizer: a :class:`supertok.Encoding` (tiktoken encodings), a
            :class:`supertok.Tokenizer` (HF byte-level BPE, SuperBPE) or a
            ``_core.ByteTokenizer``.
        model: see the module docstring for the protocol.
        eot: id of the token that ends a text (default: the tokenizer's end-of-text).
    """

    def __init__(self, tokenizer: Any, model: Any, eot: Optional[int] = None):
        self.tokenizer = tokenizer
        self._bt = byte_tokenizer(tokenizer)
        if not hasattr(model, "logprobs"):
            raise TypeError("model must have a logprobs(prefixes) method")
        self.model = model
        self.eot = self._bt.eot() if eot is None else int(eot)
        if self.eot is None:
            raise ValueError("the tokenizer has no end-of-text token; pass eot=")
        self._checked = False

    # ------------------------------------------------------------------ model access

    def _rows(
        self, trunk: list[int], paths: Sequence[Sequence[int]], stats: Optional[ByteStats] = None
    ) -> tuple["np.ndarray", list[int]]:
        """Model rows for the token paths after ``trunk``: ``(array, index)`` where the row
        of ``paths[k]`` is ``array[index[k]]``. The array is C-contiguous float32 (when the
        model returns float32) or float64, and is not copied further."""
        np = _np()
        t0 = time.perf_counter()
        tree_fn = getattr(self.model, "logprobs_tree", None)
        if tree_fn is not None:
            # trie of the paths below the trunk
            node: dict[tuple, int] = {(): -1}
            tokens: list[int] = []
            parents: list[int] = []
            for p in paths:
                for k in range(1, len(p) + 1):
                    key = tuple(p[:k])
                    if key not in node:
                        node[key] = len(tokens)
                        tokens.append(int(p[k - 1]))
                        parents.append(node[tuple(p[: k - 1])])
            rows = _as_rows(tree_fn(trunk, tokens, parents))
            if rows.ndim != 2 or rows.shape[0] != len(tokens) + 1:
                raise ValueError(
                    f"model.logprobs_tree returned shape {rows.shape}, expected ({len(tokens) + 1}, n_vocab)"
                )
            index = [node[tuple(p)] + 1 for p in paths]
        else:
            prefixes = [trunk + list(p) for p in paths]
            rows = _as_rows(self.model.logprobs(prefixes))
            if rows.ndim != 2 or rows.shape[0] != len(prefixes):
                raise ValueError(
                    f"model.logprobs returned shape {rows.shape}, expected ({len(prefixes)}, n_vocab)"
                )
            index = list(range(len(prefixes)))
        if stats is not None:
            stats.model_seconds += time.perf_counter() - t0
            stats.model_calls += 1
        self._check_rows(rows, index)
        return rows, index

    def _check_rows(self, rows: "np.ndarray", index: Sequence[int]) -> None:
        np = _np()
        if rows.shape[1] == 0:
            raise ValueError("model rows are empty")
        if not self._checked and len(index):
            self._checked = True
            with np.errstate(invalid="ignore"):
                z = float(np.logaddexp.reduce(rows[index[0]].astype(np.float64)))
            if not abs(z) < 1e-3:
                raise ValueError(
                    f"model rows must be normalised natural-log probabilities (logsumexp = {z:.4g})"
                )

    def _tree_rows(
        self,
        trunk: list[int],
        tokens: Sequence[int],
        parents: Sequence[int],
        where: Sequence[int],
        stats: Optional[ByteStats] = None,
    ) -> Iterator[tuple[int, int, "np.ndarray", list[int]]]:
        """Model rows for pending nodes given as a token tree below ``trunk`` (see
        ``_core.ByteTree.pending_tree``): yields ``(a, b, array, index)`` where the row of
        pending node ``a + k`` (``k < b - a``) is ``array[index[k]]``. A model with
        ``logprobs_tree`` gets the whole tree in one call; otherwise the prefixes are sent in
        batches of at most ``_MAX_BATCH``."""
        tree_fn = getattr(self.model, "logprobs_tree", None)
        if tree_fn is not None:
            t0 = time.perf_counter()
            rows = _as_rows(tree_fn(trunk, list(tokens), list(parents)))
            if rows.ndim != 2 or rows.shape[0] != len(tokens) + 1:
                raise ValueError(
                    f"model.logprobs_tree returned shape {rows.shape}, expected ({len(tokens) + 1}, n_vocab)"
                )
            if stats is not None:
                stats.model_seconds += time.perf_counter() - t0
                stats.model_calls += 1
            index = [w + 1 for w in where]
            self._check_rows(rows, index)
            yield 0, len(where), rows, index
            return
        # token path below the trunk of every tree node (parents come first)
        paths: list[list[int]] = []
        for t, p in zip(tokens, parents):
            paths.append((paths[p] if p >= 0 else []) + [int(t)])
        for a in range(0, len(where), _MAX_BATCH):
            b = min(len(where), a + _MAX_BATCH)
            sub = [paths[w] if w >= 0 else [] for w in where[a:b]]
            rows, index = self._rows(trunk, sub, stats)
            yield a, b, rows, index

    # ------------------------------------------------------------------ streaming

    def stream(
        self,
        prefix: _Text = b"",
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stats: Optional[ByteStats] = None,
    ) -> ByteStream:
        """A :class:`ByteStream` that has consumed ``prefix``. ``temperature`` and ``top_p``
        are applied to every token distribution before marginalisation. Work done by the
        stream is added to ``stats`` (call :meth:`ByteStream.report` for its tree counters).

        The prefix is consumed in prompt mode: nothing is asked inside it, so its bytes are
        pushed without evaluating tree nodes, and only the nodes still alive at its end
        (about one per canonical token of the prefix, plus the live heads) are sent to the
        model, in one call (or one per 2 KB segment of a long prefix)."""
        data = _as_bytes(prefix, "prefix")
        _check_sampling(temperature, top_p)
        s = ByteStream(self, data, temperature, top_p, prompt=True, stats=stats)
        if data:
            s.push(data)
        return s

    # ------------------------------------------------------------------ scoring

    def next_byte_logprobs(self, prefix: _Text, *, stats: Optional[ByteStats] = None) -> "np.ndarray":
        """Natural-log probabilities of the next byte after ``prefix``: an array of 257
        (256 bytes, then the end of text), summing to 1 in probability."""
        s = self.stream(prefix, stats=stats)
        out = s.logprobs()
        s.report()
        return out

    def byte_logprobs(
        self, text: _Text, *, eos: bool = False, stats: Optional[ByteStats] = None
    ) -> "np.ndarray":
        """log P(byte_i | bytes before it) for every byte of ``text`` in one pass; with
        ``eos`` a last entry log P(end of text | text) is appended. Exact for a model that
        puts no mass on non-canonical token strings; for any model the entries sum to
        :meth:`logprob` (with ``eos``)."""
        np = _np()
        data = _as_bytes(text)
        s = ByteStream(self, data, scoring=True, stats=stats)
        out = np.empty(len(data) + (1 if eos else 0), dtype=np.float64)
        for i, b in enumerate(data):
            out[i] = s._score_push(b)
        if eos:
            out[len(data)] = s.logprob_next(None)
        s.report()
        return out

    def logprob(self, text: _Text, *, stats: Optional[ByteStats] = None) -> float:
        """log P(the text is exactly ``text``): the log-probability of its canonical
        encoding followed by end-of-text, in one forward pass (``len(encode(text)) + 1``
        LM positions)."""
        np = _np()
        data = _as_bytes(text)
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError:
            return float("-inf")
        toks = list(self._bt.encode(s))
        total = 0.0
        step = 256
        for a in range(0, len(toks) + 1, step):
            b = min(len(toks) + 1, a + step)
            rows, index = self._rows([], [toks[:i] for i in range(a, b)], stats)
            if stats is not None:
                stats.positions += b - a
            for k, i in enumerate(range(a, b)):
                t = toks[i] if i < len(toks) else self.eot
                r = rows[index[k]]
                total += float(r[t]) if t < r.shape[0] else float("-inf")
        return float(np.float64(total))

    def encode(self, text: _Text) -> list[int]:
        """The canonical encoding of ``text`` (what :meth:`logprob` scores)."""
        return list(self._bt.encode(_as_bytes(text).decode("utf-8")))

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        prompt: _Text = b"",
        max_bytes: int = 256,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
        stop: Optional[Callable[[bytes], bool]] = None,
        stats: Optional[ByteStats] = None,
    ) -> str:
        """Sample a continuation of ``prompt`` byte by byte from the exact byte-level
        distribution (temperature and top-p act on the token distributions). Stops at the
        end of text, after ``max_bytes`` bytes, or when ``stop(generated_bytes)`` is true.
        Returns the generated text (invalid trailing UTF-8 is replaced)."""
        return self.generate_bytes(
            prompt, max_bytes, temperature=temperature, top_p=top_p, seed=seed, stop=stop, stats=stats
        ).decode("utf-8", "replace")

    def generate_bytes(
        self,
        prompt: _Text = b"",
        max_bytes: int = 256,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
        stop: Optional[Callable[[bytes], bool]] = None,
        stats: Optional[ByteStats] = None,
    ) -> bytes:
        """Like :meth:`generate` but returns the raw generated bytes."""
        _check_sampling(temperature, top_p)
        rng = random.Random(seed)
        s = self.stream(prompt, temperature=temperature, top_p=top_p, stats=stats)
        out = bytearray()
        for _ in range(int(max_bytes)):
            b = _sample(s.logprobs(), rng)
            if b == 256:
                break
            s._push_byte(b)
            out.append(b)
            if stop is not None and stop(bytes(out)):
                break
        s.report()
        return bytes(out)

    def complete(
        self,
        prompt: _Text,
        max_tokens: int = 64,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
    ) -> str:
        """Exact prompt-boundary fix, then ordinary token-level sampling.

        Samples one token path whose decoding starts with ``prompt`` with its probability
        under the model (all covers of the prompt, not just its tokenization), then
        continues token by token. Returns the text after ``prompt``."""
        _check_sampling(temperature, top_p)
        np = _np()
        rng = random.Random(seed)
        data = _as_bytes(prompt, "prompt")
        s = self.stream(data, temperature=temperature, top_p=top_p)
        path = s._tree.sample_cover(rng.random(), rng.random())
        if path is None:
            raise ValueError("the model gives probability zero to the prompt")
        toks = s.trunk + list(path)
        specials = set(self._bt.special_ids())
        for _ in range(int(max_tokens)):
            rows, index = self._rows([], [toks])
            row = _transform(np_f64(rows[index]), temperature, top_p)[0]
            t = _sample(row, rng)
            if t == self.eot or t in specials:
                break
            toks.append(t)
        full = self._bt.decode([t for t in toks if t not in specials])
        return full[len(data):].decode("utf-8", "replace")

    # ------------------------------------------------------------------ ensembles

    @staticmethod
    def ensemble(
        lms: Sequence["ByteLM"], mode: str = "mixture", weights: Optional[Sequence[float]] = None
    ) -> "ByteEnsemble":
        """Combine byte LMs (possibly with different tokenizers) per byte: ``"mixture"``
        averages probabilities, ``"product"`` multiplies them (weights as exponents) and
        renormalises."""
        return ByteEnsemble(lms, mode, weights)


def _as_rows(a: Any) -> "np.ndarray":
    """A C-contiguous float32/float64 array (float32 stays float32: no copy)."""
    np = _np()
    a = np.asarray(a)
    if a.dtype != np.float32:
        a = a.astype(np.float64, copy=False)
    return np.ascontiguousarray(a)


def _check_sampling(temperature: float, top_p: float) -> None:
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def _sample(logp: "np.ndarray", rng: random.Random) -> int:
    np = _np()
    p = np.exp(logp - np.max(logp))
    c = np.cumsum(p)
    if not c[-1] > 0:
        raise ValueError("cannot sample from an all-zero distribution")
    i = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
    return min(i, len(p) - 1)


class ByteEnsemble:
    """Per-byte combination of byte LMs (see :meth:`ByteLM.ensemble`)."""

    def __init__(self, lms: Sequence[ByteLM], mode: str = "mixture", weights: Optional[Sequence[float]] = None):
        lms = list(lms)
        if not lms:
            raise ValueError("an ensemble needs at least one ByteLM")
        for m in lms:
            if not isinstance(m, (ByteLM, ByteEnsemble)):
                raise TypeError(f"ensemble members must be ByteLM, not {type(m).__name__}")
        if mode not in ("mixture", "product"):
            raise ValueError(f"mode must be 'mixture' or 'product', not {mode!r}")
        if weights is None:
            weights = [1.0 / len(lms)] * len(lms)
        weights = [float(w) for w in weights]
        if len(weights) != len(lms) or any(not (w >= 0 and math.isfinite(w)) for w in weights):
            raise ValueError("weights must be one non-negative number per model")
        if mode == "mixture":
            s = sum(weights)
            if not s > 0:
                raise ValueError("mixture weights must not all be zero")
            weights = [w / s for w in weights]
        self.lms = lms
        self.mode = mode
        self.weights = weights

    def _combine(self, rows: list["np.ndarray"]) -> "np.ndarray":
        np = _np()
        if self.mode == "mixture":
            with np.errstate(divide="ignore"):
                lw = np.log(np.asarray(self.weights))
            out = np.logaddexp.reduce(np.stack([r + w for r, w in zip(rows, lw)]), axis=0)
        else:
            out = sum((w * r if w else np.zeros_like(r)) for r, w in zip(rows, self.weights))
        return out - np.logaddexp.reduce(out)

    def next_byte_logprobs(self, prefix: _Text) -> "np.ndarray":
        """Combined 257-way next-byte log-distribution."""
        return self._combine([m.next_byte_logprobs(prefix) for m in self.lms])

    def byte_logprobs(self, text: _Text, *, eos: bool = False) -> "np.ndarray":
        """Per-byte log-probabilities of ``text`` under the ensemble."""
        np = _np()
        data = _as_bytes(text)
        if self.mode == "mixture" and all(isinstance(m, ByteLM) for m in self.lms):
            per = np.stack([m.byte_logprobs(data, eos=eos) for m in self.lms])
            lw = np.log(np.asarray(self.weights))[:, None]
            return np.logaddexp.reduce(per + lw, axis=0)
        streams = [m.stream(b"") for m in self.lms] if all(isinstance(m, ByteLM) for m in self.lms) else None
        if streams is None:
            raise TypeError("nested product ensembles are scored via next_byte_logprobs")
        out = []
        for b in data:
            out.append(self._combine([s.logprobs() for s in streams])[b])
            for s in streams:
                s.push(b)
        if eos:
            out.append(self._combine([s.logprobs() for s in streams])[256])
        return np.asarray(out, dtype=np.float64)

    def logprob(self, text: _Text) -> float:
        """log P(text, end) under the per-byte ensemble (chain rule)."""
        return float(self.byte_logprobs(text, eos=True).sum())

    def generate(
        self,
        prompt: _Text = b"",
        max_bytes: int = 256,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: Optional[int] = None,
    ) -> str:
        """Sample from the ensemble byte by byte (transforms act on each member's token
        distributions)."""
        _check_sampling(temperature, top_p)
        if not all(isinstance(m, ByteLM) for m in self.lms):
            raise TypeError("generate needs ByteLM members")
        rng = random.Random(seed)
        streams = [m.stream(prompt, temperature=temperature, top_p=top_p) for m in self.lms]
        out = bytearray()
        for _ in range(int(max_bytes)):
            b = _sample(self._combine([s.logprobs() for s in streams]), rng)
            if b == 256:
                break
            for s in streams:
                s.push(b)
            out.append(b)
        return bytes(out).decode("utf-8", "replace")
