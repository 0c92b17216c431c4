"""HF ``tokenizer.json`` interop: :class:`Tokenizer` loads, encodes, decodes and saves
byte-level BPE tokenizers exactly like HF ``tokenizers`` 0.23 (same ids, offsets and
decoded text), with a Rust core that releases the GIL.

Supported components (anything else raises ``ValueError`` naming the component and its JSON
path): model BPE (byte-level vocabulary, merges as ``"a b"`` or ``["a", "b"]``,
``ignore_merges``, ``unk_token``/``fuse_unk``; no ``dropout`` field (seeded dropout is
``encode(text, dropout=p, seed=s)``), no ``byte_fallback``, no
affixes); pre-tokenizers ``ByteLevel``, ``Split`` (regex or string, all behaviors,
``invert``), ``Digits``, ``Whitespace``, ``WhitespaceSplit``, ``Punctuation``, ``Sequence``
(``ByteLevel`` must come last); normalizers ``NFC``, ``NFKC``, ``NFD``, ``NFKD``,
``Lowercase``, ``Prepend``, ``Replace``, ``Strip``, ``Sequence``; added tokens (special or
not; ``lstrip``, ``rstrip``, ``normalized``, ``single_word``); post-processors
``ByteLevel``, ``TemplateProcessing``, ``Sequence``; decoder ``ByteLevel`` (or none).
``truncation`` and ``padding`` must be null.

Regexes are Oniguruma patterns in HF; supertok runs them on fancy-regex in its Oniguruma
mode, and runs SuperBPE's right-aligned digit grouping ``(?=(\\d{3})+(?!\\d))`` natively in
O(n) (HF is quadratic there).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from supertok import _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

    from supertok.core import Encoding

__all__ = ["Tokenizer"]

_PathLike = Union[str, "os.PathLike[str]"]


def _check_str(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")
    return text


def _surrogate_error(e: UnicodeEncodeError) -> TypeError:
    return TypeError(
        f"text contains a lone surrogate ({e.object[e.start:e.end]!r} at index {e.start}), "
        "which is not valid UTF-8; HF tokenizers rejects it with TypeError too"
    )


def _default_threads() -> int:
    return min(8, os.cpu_count() or 1)


class Tokenizer:
    """A byte-level BPE tokenizer read from (or written as) an HF ``tokenizer.json``.

    Build one with :meth:`from_file`, :meth:`from_str`, :meth:`from_bpe` (a freshly trained
    BPE) or :meth:`from_tiktoken`.
    """

    __slots__ = ("_core", "_ship_state")

    def __init__(self, core: _core.CoreTokenizer) -> None:
        """Wrap a core tokenizer (use the ``from_*`` constructors instead)."""
        if not isinstance(core, _core.CoreTokenizer):
            raise TypeError("use Tokenizer.from_file, from_str, from_bpe or from_tiktoken")
        self._core = core
        self._ship_state: tuple[str, bytes] | None = None

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_file(cls, path: _PathLike) -> "Tokenizer":
        """Load a ``tokenizer.json`` file.

        Raises:
            OSError: the file cannot be read.
            ValueError: invalid JSON or an unsupported component (the message names the
                file and the JSON path).
        """
        return cls(_core.CoreTokenizer.from_file(os.fspath(path)))

    @classmethod
    def from_str(cls, json_text: str) -> "Tokenizer":
        """Load a tokenizer from the text of a ``tokenizer.json``."""
        _check_str(json_text, "json_text")
        return cls(_core.CoreTokenizer.from_str(json_text))

    @classmethod
    def from_bpe(
        cls,
        vocab: Sequence[bytes],
        merges: Sequence[tuple[int, int]],
        *,
        pre_tokenizer: Sequence[Mapping[str, Any]] | None = None,
        pattern: str | None = None,
        special_tokens: Mapping[str, int] | None = None,
    ) -> "Tokenizer":
        """A tokenizer for a freshly trained byte-level BPE.

        Args:
            vocab: Token bytes; the index is the id.
            merges: Merged id pairs ``(left, right)``; the rank is the position. The result
                of each merge must be the token whose bytes are ``vocab[left] + vocab[right]``.
            pre_tokenizer: HF JSON pre-tokenizer objects (e.g.
                ``{"type": "Digits", "individual_digits": False}``), applied before
                ``ByteLevel(add_prefix_space=False, use_regex=False)``. Regexes in them are
                Oniguruma patterns (HF's syntax).
            pattern: Shortcut for ``[Split(pattern, Isolated)]``, in tiktoken/supertok regex
                syntax (converted to Oniguruma syntax when written: ``x{1,3}+`` is
                possessive here and becomes ``(?>x{1,3})``). If both are ``None``, the
                GPT-4 (cl100k) pattern is used.
            special_tokens: Special-token string -> id (ids must not be regular tokens).
                They are written as added tokens with ``special=True`` and also into the
                model vocabulary, so HF assigns them exactly these ids.

        The result saves (:meth:`save`) a ``tokenizer.json`` that HF ``tokenizers`` and
        ``transformers.PreTrainedTokenizerFast`` load with identical ids (ByteLevel decoder).

        Raises:
            TypeError: wrong argument types.
            ValueError: inconsistent vocabulary or merges, bad pre-tokenizer objects.
        """
        if pre_tokenizer is not None and pattern is not None:
            raise ValueError("give either pre_tokenizer or pattern, not both")
        if not isinstance(vocab, list):
            vocab = list(vocab)
        merge_list = []
        for k, m in enumerate(merges):
            try:
                a, b = m
                merge_list.append((int(a), int(b)))
            except (TypeError, ValueError):
                raise TypeError(f"merges[{k}] must be a pair of ints, got {m!r}") from None
        pre_json = None
        if pre_tokenizer is not None:
            if isinstance(pre_tokenizer, Mapping):
                raise TypeError("pre_tokenizer must be a list of pre-tokenizer objects (dicts)")
            pre_json = json.dumps([dict(p) for p in pre_tokenizer])
        if pattern is not None:
            _check_str(pattern, "pattern")
        specials = dict(special_tokens or {})
        return cls(_core.CoreTokenizer.from_bpe(vocab, merge_list, pre_json, pattern, specials))

    @classmethod
    def from_tiktoken(cls, encoding: "Encoding") -> "Tokenizer":
        """An HF tokenizer equivalent to a tiktoken-style :class:`supertok.Encoding` (or a
        ``tiktoken.Encoding``).

        Merges are derived from the ranks (each token's merge is the split that
        rank-limited BPE gives for its bytes, as ``transformers`` does), ``ignore_merges`` is
        set (tiktoken emits a piece that is a token as a whole), the split pattern is
        converted to Oniguruma syntax, and special tokens become special added tokens.

        Semantic differences that remain: HF always matches added tokens in the text, while
        tiktoken only matches the special tokens a call allows (``allowed_special``); HF
        never raises on special-token text. On ordinary text the ids are identical (this is
        differentially tested on cl100k/o200k/r50k).
        """
        ranks = _mergeable_ranks(encoding)
        specials = dict(encoding._special_tokens)
        return cls(_core.CoreTokenizer.from_tiktoken(ranks, specials, encoding._pat_str))

    def to_tiktoken(self, name: str = "hf") -> "Encoding":
        """The equivalent tiktoken-style :class:`supertok.Encoding`, where the semantics allow.

        Requires: no normalizer, no template post-processor, a pre-tokenizer that is
        ``ByteLevel(add_prefix_space=False)`` alone or one ``Split(regex, Isolated)`` followed
        by ``ByteLevel(add_prefix_space=False, use_regex=False)``, merge results in increasing
        id order, and every token produced by the merges from its own bytes (so that
        tiktoken's rank-of-result merging and whole-piece rule give HF's ids). Added tokens
        become special tokens: the Encoding matches them only when allowed
        (``allowed_special``), HF always does.

        Raises:
            ValueError: naming the condition that does not hold.
        """
        from supertok.core import Encoding

        ranks, specials, pattern = self._core.tiktoken_parts()
        return Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)

    # ------------------------------------------------------------------ encoding

    def encode(
        self,
        text: str,
        add_special_tokens: bool = True,
        *,
        dropout: float | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """Token ids of ``text`` (HF's ``encode(text).ids``).

        ``add_special_tokens`` controls the template post-processor's tokens (BOS/EOS);
        added tokens in the text are always matched, as in HF.

        ``dropout=p`` enables seeded BPE-dropout (each applicable merge skipped with
        probability ``p``; ``0``: plain encoding, ``1``: bytes), reproducible with ``seed``;
        see :func:`supertok.stochastic.encode_dropout_hf`.
        """
        if dropout is not None:
            from supertok.stochastic import encode_dropout_hf

            try:
                return encode_dropout_hf(self._core, _check_str(text), bool(add_special_tokens), dropout, seed)
            except UnicodeEncodeError as e:
                raise _surrogate_error(e) from None
        try:
            return self._core.encode(_check_str(text), bool(add_special_tokens))
        except UnicodeEncodeError as e:
            raise _surrogate_error(e) from None

    def encode_with_offsets(
        self, text: str, add_special_tokens: bool = True, *, char_offsets: bool = False
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, for each token, its ``(start, end)`` in ``text``.

        Offsets are byte offsets into ``text.encode("utf-8")`` (HF's Rust ``encode``), or
        character offsets into ``text`` with ``char_offsets=True`` (HF's Python
        ``encode(text).offsets``). A token that covers part of a multi-byte character gets
        the whole character, as in HF; template tokens get ``(0, 0)``.
        """
        try:
            return self._core.encode_with_offsets(
                _check_str(text), bool(add_special_tokens), bool(char_offsets)
            )
        except UnicodeEncodeError as e:
            raise _surrogate_error(e) from None

    def encode_batch(
        self,
        texts: Sequence[str],
        add_special_tokens: bool = True,
        *,
        num_threads: int | None = None,
    ) -> list[list[int]]:
        """Encode many texts in parallel (rayon, GIL released); order is kept."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not str")
        texts = list(texts)
        for i, t in enumerate(texts):
            _check_str(t, f"texts[{i}]")
        n = _default_threads() if num_threads is None else int(num_threads)
        try:
            return self._core.encode_batch(texts, bool(add_special_tokens), max(1, n))
        except UnicodeEncodeError as e:
            raise _surrogate_error(e) from None

    def encode_to_numpy(
        self, text: str | Sequence[str], add_special_tokens: bool = True, *, num_threads: int | None = None
    ) -> "npt.NDArray[np.uint32]" | tuple["npt.NDArray[np.uint32]", "npt.NDArray[np.uint64]"]:
        """Ids as a ``numpy.uint32`` array.

        For a list of texts, returns ``(ids, ends)``: all ids concatenated and the end index
        of each text's ids (``numpy.uint64``), encoded in parallel.
        """
        import numpy as np

        try:
            if isinstance(text, str):
                buf = self._core.encode_to_bytes(text, bool(add_special_tokens))
                return np.frombuffer(buf, dtype=np.uint32)
            texts = list(text)
            for i, t in enumerate(texts):
                _check_str(t, f"text[{i}]")
            n = _default_threads() if num_threads is None else int(num_threads)
            buf, ends = self._core.encode_batch_to_bytes(texts, bool(add_special_tokens), max(1, n))
        except UnicodeEncodeError as e:
            raise _surrogate_error(e) from None
        return np.frombuffer(buf, dtype=np.uint32), np.asarray(ends, dtype=np.uint64)

    # ------------------------------------------------------------------ decoding

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` as HF decodes it (invalid UTF-8 becomes U+FFFD; unknown ids are
        skipped, as in HF)."""
        return self._core.decode(ids, bool(skip_special_tokens))

    def decode_bytes(self, ids: Sequence[int], skip_special_tokens: bool = False) -> bytes:
        """The bytes behind :meth:`decode`, before UTF-8 decoding."""
        return self._core.decode_bytes(ids, bool(skip_special_tokens))

    # ------------------------------------------------------------------ vocabulary

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string (byte-level form, e.g. ``"Ġthe"``), or ``None``."""
        return self._core.token_to_id(_check_str(token, "token"))

    def id_to_token(self, id: int) -> str | None:
        """Token string of an id, or ``None``."""
        return self._core.id_to_token(int(id))

    @property
    def vocab_size(self) -> int:
        """Number of tokens including added tokens (HF's ``get_vocab_size()``)."""
        return self._core.vocab_size()

    def get_vocab_size(self) -> int:
        """Same as :attr:`vocab_size` (HF's method name)."""
        return self._core.vocab_size()

    def get_vocab(self) -> dict[str, int]:
        """Token string -> id, including added tokens (HF's ``get_vocab()``)."""
        return self._core.get_vocab()

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special added tokens -> id."""
        return dict(self._core.special_tokens())

    @property
    def newline_shardable(self) -> bool:
        """Whether no token spans a newline followed by a non-whitespace character, so that
        long pieces (SuperBPE paragraphs) can be cut there and encoded in parallel with
        identical ids. Checked once when the tokenizer is built."""
        return bool(_core.tokenizer_newline_shardable(self._core))

    @property
    def two_level_split(self) -> int | None:
        """The merge rank ``R`` at which long pieces are encoded in two levels (merges below
        ``R`` per word, through a cache, then the merges from ``R`` on over the resulting
        tokens), or ``None`` when the ordinary path is used. Chosen at load time for
        vocabularies with superwords (SuperBPE): ``R`` is the first merge producing a token
        that spans a space, used only if no merge below ``R`` takes a token that a merge
        from ``R`` on produces (which makes the two levels exact)."""
        r = _core.tokenizer_two_level_split(self._core)
        return None if r is None else int(r)

    def encode_long(
        self, text: str, add_special_tokens: bool = True, *, num_threads: int | None = None, task_bytes: int = 1 << 16
    ) -> list[int]:
        """Encode one long text on several threads (GIL released); identical ids to
        :meth:`encode`. Pieces, and the newline-cut lines of long pieces when
        :attr:`newline_shardable`, are merged in parallel in tasks of ~``task_bytes``."""
        n = _default_threads() if num_threads is None else int(num_threads)
        if task_bytes < 1:
            raise ValueError(f"task_bytes must be positive, got {task_bytes}")
        try:
            return _core.tokenizer_encode_parallel(self._core, _check_str(text), bool(add_special_tokens), max(1, n), int(task_bytes))
        except UnicodeEncodeError as e:
            raise _surrogate_error(e) from None

    # ------------------------------------------------------------------ saving

    def to_json(self, pretty: bool = True) -> str:
        """The ``tokenizer.json`` text (HF's key order; 2-space indentation when pretty)."""
        return self._core.to_json(bool(pretty))

    def save(self, path: _PathLike, pretty: bool = True) -> None:
        """Write ``tokenizer.json`` to ``path``."""
        data = self.to_json(pretty)
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(data)

    # ------------------------------------------------------------------ pickling

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as a content-addressed, compressed ``tokenizer.json`` payload: serialized
        once per object, built once per process (see ``supertok._ship``)."""
        from supertok import _ship

        digest, payload = _ship.tokenizer_state(self)
        _ship.note_pickled(self, digest, payload)
        return (_ship.restore, ("Tokenizer", digest, payload))

    def _set_ship_state(self, state: tuple[str, bytes]) -> None:
        self._ship_state = state

    def __repr__(self) -> str:
        return f"<supertok.Tokenizer vocab_size={self.vocab_size}>"


def _from_json(text: str) -> Tokenizer:
    return Tokenizer.from_str(text)


def _mergeable_ranks(encoding: Any) -> dict[bytes, int]:
    ranks = getattr(encoding, "_mergeable_ranks", None)
    if isinstance(ranks, dict):
        return ranks
    core = getattr(encoding, "_core_bpe", None)
    if core is not None and hasattr(core, "token_byte_values"):
        out: dict[bytes, int] = {}
        for b in core.token_byte_values():
            out[b] = encoding.encode_single_token(b)
        return out
    raise TypeError("from_tiktoken needs a supertok.Encoding or tiktoken.Encoding")
