"""One interface over every kind of tokenizer the science tools accept.

:func:`as_tokenizer` turns a :class:`supertok.Encoding`, a :class:`supertok.Tokenizer`, a
tiktoken-style encoding (duck-typed), a plain callable ``str -> list[int]``, a bundled
encoding name or a path (``tokenizer.json`` / ``.tiktoken``) into a :class:`TokenizerLike`
that the metrics, the alignment and the CLI use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

__all__ = ["TokenizerLike", "as_tokenizer", "load_tokenizer", "wrap"]


def _numpy():  # type: ignore[no-untyped-def]
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        raise ImportError(
            "this supertok science function needs numpy: pip install 'supertok[numpy]'"
        ) from None
    return np


class TokenizerLike:
    """A tokenizer seen through the operations the science tools need.

    Build one with :func:`as_tokenizer` (or :func:`wrap` for a plain callable). Methods that
    need information a plain callable does not provide (token bytes, vocabulary size) raise
    ``TypeError`` naming what is missing.
    """

    def __init__(
        self,
        name: str,
        encode: Callable[[str], Sequence[int]],
        *,
        encode_batch: Optional[Callable[[list[str]], list[list[int]]]] = None,
        token_bytes: Optional[Callable[[int], bytes]] = None,
        vocab_ids: Optional[Callable[[], Iterable[int]]] = None,
        vocab_size: Optional[int] = None,
        special_ids: Iterable[int] = (),
        offsets: Optional[Callable[[str], tuple[list[int], list[tuple[int, int]]]]] = None,
        lossless: bool = False,
        length_table: Optional[Callable[[], Iterable[tuple[int, int]]]] = None,
    ) -> None:
        """Low-level constructor; prefer :func:`as_tokenizer` / :func:`wrap`.

        Args:
            name: Display name.
            encode: Text -> token ids (special tokens in the text may become special ids;
                they are excluded from every count).
            encode_batch: Optional faster batch version of ``encode``.
            token_bytes: Id -> the token's bytes (needed for offsets, overlap, alignment).
            vocab_ids: Yields every non-special id of the vocabulary.
            vocab_size: Number of non-special tokens (denominator of vocabulary utilisation).
            special_ids: Ids that are special tokens (never counted).
            offsets: Text -> (ids, byte offsets) when the tokenizer knows them itself.
            lossless: The token bytes of ``encode(text)`` always concatenate to the UTF-8
                bytes of ``text`` (true for tiktoken-style encodings).
            length_table: Optional fast source of ``(id, byte length)`` for the whole
                vocabulary, special tokens included.
        """
        self.name = name
        self._encode = encode
        self._encode_batch = encode_batch
        self._token_bytes = token_bytes
        self._vocab_ids = vocab_ids
        self._vocab_size = vocab_size
        self.special_ids: frozenset[int] = frozenset(int(i) for i in special_ids)
        self._offsets = offsets
        self.lossless = lossless
        self._lengths: Optional[Any] = None
        self._length_table = length_table

    def __repr__(self) -> str:
        return f"<TokenizerLike {self.name!r}>"

    # ------------------------------------------------------------------ encoding

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special ids included if the tokenizer emits them)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        ids = self._encode(text)
        return _check_ids(ids, self.name)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (in parallel when the tokenizer supports it)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
        if self._encode_batch is not None:
            return [_check_ids(ids, self.name) for ids in self._encode_batch(texts)]
        return [self.encode(t) for t in texts]

    def strip_special(self, ids: Sequence[int]) -> list[int]:
        """``ids`` without special-token ids."""
        if not self.special_ids:
            return list(ids)
        sp = self.special_ids
        return [i for i in ids if i not in sp]

    # ------------------------------------------------------------------ vocabulary

    @property
    def has_token_bytes(self) -> bool:
        """Whether :meth:`token_bytes` is available."""
        return self._token_bytes is not None

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token."""
        if self._token_bytes is None:
            raise TypeError(
                f"tokenizer {self.name!r} cannot give token bytes; wrap a plain callable with "
                "supertok.metrics.wrap(fn, token_bytes=...)"
            )
        try:
            return self._token_bytes(int(token_id))
        except (KeyError, IndexError) as e:
            raise ValueError(f"token id {token_id} is not in the vocabulary of {self.name!r}") from e

    def vocab_ids(self) -> list[int]:
        """Every non-special id of the vocabulary."""
        if self._vocab_ids is None:
            raise TypeError(
                f"tokenizer {self.name!r} does not expose its vocabulary; wrap it with "
                "supertok.metrics.wrap(fn, vocab=...)"
            )
        return [i for i in self._vocab_ids() if i not in self.special_ids]

    @property
    def vocab_size(self) -> int:
        """Number of non-special tokens."""
        if self._vocab_size is None:
            raise TypeError(
                f"tokenizer {self.name!r} has no known vocabulary size; pass vocab_size=..."
            )
        return self._vocab_size

    def byte_vocab(self) -> set[bytes]:
        """The set of (non-special) token byte strings: the byte-normalised vocabulary."""
        return {self.token_bytes(i) for i in self.vocab_ids()}

    def token_lengths(self, ids: Any) -> "npt.NDArray[np.int64]":
        """Byte length of each id in ``ids`` (special ids count their text's bytes).

        Uses a per-id table built once from the vocabulary when it is known.

        Raises:
            ValueError: an id that is not in the vocabulary.
        """
        np = _numpy()
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if int(arr.min()) < 0:
            raise ValueError(f"negative token id {int(arr.min())}")
        if self._lengths is None and self._length_table is not None:
            pairs = list(self._length_table())
            table = np.full(max((i for i, _ in pairs), default=-1) + 1, -1, dtype=np.int64)
            for i, n in pairs:
                table[i] = n
            self._lengths = table
        elif self._lengths is None and self._vocab_ids is not None:
            all_ids = sorted(set(self._vocab_ids()) | self.special_ids)
            table = np.full(all_ids[-1] + 1 if all_ids else 0, -1, dtype=np.int64)
            for i in all_ids:
                table[i] = len(self.token_bytes(i))
            self._lengths = table
        table = self._lengths
        if table is not None and int(arr.max()) < len(table):
            lens = table[arr]
            if (lens < 0).any():
                bad = int(arr[np.argmax(lens < 0)])
                raise ValueError(f"token id {bad} is not in the vocabulary of {self.name!r}")
            return lens
        uniq, inv = np.unique(arr, return_inverse=True)
        ul = np.empty(len(uniq), dtype=np.int64)
        for k, u in enumerate(uniq.tolist()):
            ul[k] = len(self.token_bytes(u))
        return ul[inv.reshape(-1)]

    # ------------------------------------------------------------------ offsets

    def encode_with_offsets(self, text: str) -> tuple[list[int], "npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]:
        """``(ids, starts, ends)``: ids (special ids included) and byte offsets into
        ``text.encode("utf-8")``.

        Uses the tokenizer's own offsets when it has them (HF ``Tokenizer``), otherwise the
        cumulative byte lengths of the tokens, which must then add up to the text's length.
        """
        return self.encode_batch_with_offsets([text])[0]

    def encode_batch_with_offsets(
        self, texts: Sequence[str]
    ) -> list[tuple[list[int], "npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]]:
        """:meth:`encode_with_offsets` for each text (batch-encoded when possible)."""
        np = _numpy()
        out = []
        if self._offsets is not None:
            for text in texts:
                if not isinstance(text, str):
                    raise TypeError(f"text must be str, not {type(text).__name__}")
                ids, offs = self._offsets(text)
                ids = _check_ids(ids, self.name)
                arr = np.asarray(offs, dtype=np.int64).reshape(-1, 2)
                out.append((ids, arr[:, 0].copy(), arr[:, 1].copy()))
            return out
        for text, ids in zip(texts, self.encode_batch(texts)):
            lens = self.token_lengths(ids)
            ends = np.cumsum(lens)
            n = len(text.encode("utf-8", "surrogatepass"))
            total = int(ends[-1]) if len(ends) else 0
            if total != n:
                raise ValueError(
                    f"the tokens of {self.name!r} hold {total} bytes but the text has {n}: offsets "
                    "cannot be derived from token lengths (the tokenizer normalises or drops text)"
                )
            out.append((ids, ends - lens, ends))
        return out


def _check_ids(ids: Any, name: str) -> list[int]:
    try:
        out = [int(i) for i in ids]
    except (TypeError, ValueError):
        raise TypeError(f"tokenizer {name!r} must return a sequence of ints, got {type(ids).__name__}") from None
    return out


def wrap(
    fn: Callable[[str], Sequence[int]],
    *,
    name: Optional[str] = None,
    token_bytes: Optional[Callable[[int], bytes] | Mapping[int, bytes] | Sequence[bytes]] = None,
    vocab_size: Optional[int] = None,
    special_ids: Iterable[int] = (),
) -> TokenizerLike:
    """Make a plain callable ``str -> list[int]`` usable by the science tools.

    Args:
        fn: Text -> token ids.
        name: Display name (default: the function's name).
        token_bytes: Id -> bytes, as a function, a mapping or a sequence indexed by id. With a
            mapping or sequence the vocabulary (and its size) is known too.
        vocab_size: Number of non-special tokens (default: from ``token_bytes`` when it is a
            mapping or sequence).
        special_ids: Ids never to count.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    tb: Optional[Callable[[int], bytes]] = None
    vocab_ids: Optional[Callable[[], Iterable[int]]] = None
    specials = frozenset(int(i) for i in special_ids)
    if token_bytes is not None:
        if callable(token_bytes):
            tb = token_bytes  # type: ignore[assignment]
        elif isinstance(token_bytes, Mapping):
            table = {int(k): bytes(v) for k, v in token_bytes.items()}

            def tb(i: int, _t: dict[int, bytes] = table) -> bytes:
                try:
                    return _t[i]
                except KeyError:
                    raise KeyError(f"token id {i} is not in the vocabulary") from None

            vocab_ids = lambda _t=table: sorted(_t)  # noqa: E731
            if vocab_size is None:
                vocab_size = len([k for k in table if k not in specials])
        else:
            seq = [bytes(b) for b in token_bytes]

            def tb(i: int, _s: list[bytes] = seq) -> bytes:
                if not 0 <= i < len(_s):
                    raise KeyError(f"token id {i} is not in the vocabulary")
                return _s[i]

            vocab_ids = lambda _s=seq: range(len(_s))  # noqa: E731
            if vocab_size is None:
                vocab_size = len([k for k in range(len(seq)) if k not in specials])
    return TokenizerLike(
        name or str(getattr(fn, "__name__", "callable")),
        fn,
        token_bytes=tb,
        vocab_ids=vocab_ids,
        vocab_size=vocab_size,
        special_ids=specials,
    )


def _from_encoding(enc: Any, name: Optional[str] = None) -> TokenizerLike:
    """A tiktoken-style encoding (supertok.Encoding or tiktoken.Encoding)."""
    specials = dict(getattr(enc, "_special_tokens", {}) or {})
    special_ids = set(specials.values())
    core = getattr(enc, "_core_bpe", None)
    n_mergeable: Optional[int] = None
    if core is not None and hasattr(core, "n_mergeable"):
        n_mergeable = int(core.n_mergeable())

    def vocab_ids() -> Iterable[int]:
        ranks = getattr(enc, "_mergeable_ranks", None)
        if isinstance(ranks, dict):
            return sorted(ranks.values())
        return [enc.encode_single_token(b) for b in enc.token_byte_values()]

    if n_mergeable is None:
        n_mergeable = len(list(vocab_ids()))

    def encode_batch(texts: list[str]) -> list[list[int]]:
        return enc.encode_ordinary_batch(texts)

    def token_bytes(i: int) -> bytes:
        return enc.decode_single_token_bytes(i)

    def length_table() -> Iterable[tuple[int, int]]:
        ranks = getattr(enc, "_mergeable_ranks", None)
        if not isinstance(ranks, dict):
            ranks = {enc.decode_single_token_bytes(i): i for i in vocab_ids()}
        out = [(r, len(b)) for b, r in ranks.items()]
        out += [(i, len(s.encode("utf-8"))) for s, i in specials.items()]
        return out

    return TokenizerLike(
        name or str(getattr(enc, "name", "encoding")),
        enc.encode_ordinary,
        encode_batch=encode_batch,
        token_bytes=token_bytes,
        vocab_ids=vocab_ids,
        vocab_size=n_mergeable,
        special_ids=special_ids,
        lossless=True,
        length_table=length_table,
    )


def _from_hf(tok: Any, name: Optional[str] = None) -> TokenizerLike:
    """A supertok.Tokenizer (HF tokenizer.json)."""
    specials = set(tok.special_tokens.values())

    def encode(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    def encode_batch(texts: list[str]) -> list[list[int]]:
        return tok.encode_batch(texts, add_special_tokens=False)

    def token_bytes(i: int) -> bytes:
        if tok.id_to_token(i) is None:
            raise KeyError(f"token id {i} is not in the vocabulary")
        return tok.decode_bytes([i])

    def vocab_ids() -> Iterable[int]:
        return sorted(tok.get_vocab().values())

    def offsets(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        return tok.encode_with_offsets(text, add_special_tokens=False)

    return TokenizerLike(
        name or "tokenizer",
        encode,
        encode_batch=encode_batch,
        token_bytes=token_bytes,
        vocab_ids=vocab_ids,
        vocab_size=tok.vocab_size - len(specials),
        special_ids=specials,
        offsets=offsets,
    )


def as_tokenizer(tok: Any, name: Optional[str] = None) -> TokenizerLike:
    """Accept any supported tokenizer and return a :class:`TokenizerLike`.

    Accepted: :class:`TokenizerLike`; :class:`supertok.Encoding` and tiktoken-style encodings
    (anything with ``encode_ordinary`` and ``decode_single_token_bytes``);
    :class:`supertok.Tokenizer`; a ``str`` naming a bundled encoding or a path to a
    ``tokenizer.json`` / ``.tiktoken`` file (see :func:`load_tokenizer`); a plain callable
    ``str -> list[int]`` (no token bytes: use :func:`wrap` to supply them).

    Adapters hold per-vocabulary tables (token byte lengths), so the last 8 tokenizer objects
    and paths seen are cached together with their adapters (which keeps them alive).
    """
    from supertok.tokenizer import Tokenizer

    if isinstance(tok, TokenizerLike):
        return tok
    if isinstance(tok, (str, os.PathLike)):
        key = ("path", os.fspath(tok))
        hit = _CACHE.get(key)
        if hit is None:
            hit = _CACHE[key] = (None, load_tokenizer(tok))
        return hit[1]
    if isinstance(tok, Tokenizer) or (
        hasattr(tok, "encode_ordinary") and hasattr(tok, "decode_single_token_bytes")
    ):
        # adapters hold per-vocabulary tables: build one per tokenizer object (kept alive
        # with it in a small cache)
        hit = _CACHE.get(("obj", id(tok)))
        if hit is not None and hit[0] is tok and name is None:
            return hit[1]
        t = _from_hf(tok, name) if isinstance(tok, Tokenizer) else _from_encoding(tok, name)
        if name is None:
            _CACHE[("obj", id(tok))] = (tok, t)
        return t
    if callable(tok):
        return wrap(tok, name=name)
    raise TypeError(
        "expected a supertok.Encoding, a supertok.Tokenizer, a tiktoken-style encoding, a "
        f"callable str -> list[int], a bundled encoding name or a path; got {type(tok).__name__}"
    )


class _Lru(dict):  # type: ignore[type-arg]
    """A tiny insertion-ordered cache holding at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.size:
            del self[next(iter(self))]


_CACHE: _Lru = _Lru(8)

_PATTERN_ALIASES = {"cl100k": "cl100k_base", "o200k": "o200k_base", "r50k": "r50k_base"}


def load_tokenizer(spec: "str | os.PathLike[str]", *, pattern: str = "cl100k_base") -> TokenizerLike:
    """A tokenizer from a bundled encoding name (``cl100k_base``, ``o200k_base``, ...), a
    ``tokenizer.json`` path or a ``.tiktoken`` path.

    A ``.tiktoken`` file holds no split pattern: ``pattern`` (a bundled encoding name whose
    pattern to use, or a regex) supplies it; it has no special tokens.

    Raises:
        ValueError: an unknown name or an unreadable/unsupported file.
    """
    import supertok
    from supertok.registry import get_encoding, list_encoding_names

    s = os.fspath(spec)
    if s in list_encoding_names():
        return _from_encoding(get_encoding(s), s)
    if not os.path.exists(s):
        raise ValueError(
            f"{s!r} is neither a bundled encoding ({', '.join(list_encoding_names())}) nor an "
            "existing tokenizer.json / .tiktoken file"
        )
    base = os.path.basename(s)
    if s.endswith(".tiktoken"):
        pat = _PATTERN_ALIASES.get(pattern, pattern)
        pat_str = get_encoding(pat)._pat_str if pat in list_encoding_names() else pat
        ranks = supertok.load_tiktoken_bpe(s)
        enc = supertok.Encoding(base, pat_str=pat_str, mergeable_ranks=ranks, special_tokens={})
        return _from_encoding(enc, base)
    tok = supertok.Tokenizer.from_file(s)
    name = base if base != "tokenizer.json" else os.path.basename(os.path.dirname(os.path.abspath(s))) or base
    return _from_hf(tok, name)
