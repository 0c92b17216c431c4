"""The tiktoken-compatible :class:`Encoding`.

Same names, signatures and semantics as ``tiktoken.Encoding`` (tiktoken 0.14), with a Rust
core that releases the GIL, plus ``encode_bytes`` and ``count``.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, AbstractSet, Any, Collection, Literal, NoReturn, Sequence, Union

from supertok import _core

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

__all__ = ["Encoding"]

_AllowedSpecial = Union[Literal["all"], AbstractSet[str]]
_DisallowedSpecial = Union[Literal["all"], Collection[str]]


def _fix_surrogates(text: str) -> str:
    # Python strings may hold lone surrogates, which are not valid UTF-8. tiktoken turns
    # surrogate pairs into the code point they encode and lone surrogates into U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_str(text: object, what: str = "text") -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")


class Encoding:
    """A byte-level BPE encoding with tiktoken's semantics.

    ``Encoding(name, pat_str=..., mergeable_ranks=..., special_tokens=...)`` builds a custom
    encoding exactly like ``tiktoken.Encoding``; :func:`supertok.get_encoding` returns the
    bundled ones (``cl100k_base``, ``o200k_base``, ``r50k_base``/``gpt2``).
    """

    def __init__(
        self,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ):
        """Create an encoding.

        Args:
            name: Name of the encoding.
            pat_str: Regex used to split text into pieces (tiktoken/fancy-regex syntax).
            mergeable_ranks: Token bytes -> rank; ranks must equal merge priority.
            special_tokens: Special-token string -> id.
            explicit_n_vocab: If given, the number of tokens (mergeable + special), checked.

        Raises:
            TypeError: wrong argument types.
            ValueError: inconsistent vocabulary (duplicate ranks, empty tokens,
                ``explicit_n_vocab`` mismatch) or an invalid pattern.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be str, not {type(name).__name__}")
        if not isinstance(pat_str, str):
            raise TypeError(f"pat_str must be str, not {type(pat_str).__name__}")
        if not isinstance(mergeable_ranks, dict):
            raise TypeError(f"mergeable_ranks must be a dict, not {type(mergeable_ranks).__name__}")
        if not isinstance(special_tokens, dict):
            raise TypeError(f"special_tokens must be a dict, not {type(special_tokens).__name__}")
        core = _core.CoreEncoding(mergeable_ranks, special_tokens, pat_str)
        self._init(name, pat_str, core, special_tokens, explicit_n_vocab)
        self.__dict__["_mergeable_ranks"] = mergeable_ranks

    def _init(
        self,
        name: str,
        pat_str: str,
        core: _core.CoreEncoding,
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None,
    ) -> None:
        self.name = name
        self._pat_str = pat_str
        self._special_tokens = dict(special_tokens)
        self._core_bpe = core
        self.max_token_value = core.max_token_value()
        if explicit_n_vocab:
            n = core.n_mergeable() + len(special_tokens)
            if n != explicit_n_vocab or self.max_token_value != explicit_n_vocab - 1:
                raise ValueError(
                    f"encoding {name!r}: explicit_n_vocab={explicit_n_vocab} but there are "
                    f"{n} tokens with max token value {self.max_token_value}"
                )
        self._special_token_values = set(self._special_tokens.values())
        self._specials_overlap = core.specials_overlap()

    @classmethod
    def _from_tiktoken_file(
        cls,
        name: str,
        path: str,
        *,
        pat_str: str,
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ) -> "Encoding":
        """Build an encoding straight from a ``.tiktoken`` file (parsed in Rust)."""
        self = cls.__new__(cls)
        core = _core.CoreEncoding.from_tiktoken_file(path, special_tokens, pat_str)
        self._init(name, pat_str, core, special_tokens, explicit_n_vocab)
        return self

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    @functools.cached_property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> rank (built on first access for bundled encodings)."""
        return self._core_bpe.mergeable_ranks()

    # ------------------------------------------------------------------ special tokens

    def _resolve_special(
        self, text: str, allowed_special: _AllowedSpecial, disallowed_special: _DisallowedSpecial
    ) -> tuple[object, object]:
        """Turn tiktoken's allowed/disallowed arguments into what the core takes, raising
        for disallowed special tokens exactly where tiktoken raises."""
        if allowed_special == "all":
            allowed: object = True
            allowed_set: AbstractSet[str] = self.special_tokens_set
        else:
            allowed = allowed_special if allowed_special else None
            allowed_set = allowed_special
        if disallowed_special == "all":
            if allowed is True:
                return True, None
            if not allowed_set:
                disallowed: object = True
            else:
                disallowed = self.special_tokens_set - set(allowed_set)
            return allowed, disallowed
        if not disallowed_special:
            return allowed, None
        if isinstance(disallowed_special, str):
            # tiktoken iterates the string's characters
            disallowed_special = frozenset(disallowed_special)
        disallowed_fs = frozenset(disallowed_special)
        if self._specials_overlap or not disallowed_fs <= self.special_tokens_set:
            # exotic: strings that are not special tokens, or overlapping special tokens:
            # search like tiktoken does, in Python
            if match := _special_token_regex(disallowed_fs).search(text):
                raise_disallowed_special_token(match.group())
            return allowed, None
        return allowed, disallowed_fs

    # ------------------------------------------------------------------ encoding

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode a string into tokens, ignoring special tokens.

        Equivalent to ``encode(text, disallowed_special=())`` (but faster).

        >>> enc.encode_ordinary("hello world")
        [31373, 995]
        """
        _check_str(text)
        try:
            return self._core_bpe.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._core_bpe.encode_ordinary(_fix_surrogates(text))

    def encode_ordinary_parallel(self, text: str, *, num_threads: int | None = None) -> list[int]:
        """Encode one long text on several threads; the result is identical to
        ``encode_ordinary(text)``.

        The text is cut only at positions where the split pattern provably starts a new
        piece whatever follows (an ASCII letter followed by an ASCII non-letter other than
        ``'``, or a newline followed by an ASCII character that is neither whitespace nor
        ``/``), and each part is pre-tokenized with the whole text as context, so the pieces,
        and hence the tokens, are exactly those of a sequential pass. Only the bundled
        patterns (r50k, cl100k, o200k) have such a proof; other patterns, texts shorter than
        128 KiB and texts without a safe position run on one thread.

        Args:
            text: The text.
            num_threads: Threads to use (default: the number of CPUs).
        """
        _check_str(text)
        n = _threads(num_threads if num_threads is not None else (os.cpu_count() or 1))
        try:
            return self._core_bpe.encode_ordinary_parallel(text, n)
        except UnicodeEncodeError:
            return self._core_bpe.encode_ordinary_parallel(_fix_surrogates(text), n)

    def encode(
        self,
        text: str,
        *,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
        dropout: float | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """Encode a string into tokens.

        Text matching a special token raises ``ValueError`` unless the token is in
        ``allowed_special`` (then it becomes the special id) or excluded from
        ``disallowed_special`` (then it is encoded as ordinary text). ``"all"`` means every
        special token.

        ``dropout=p`` enables seeded BPE-dropout: each applicable merge is skipped with
        probability ``p`` (``0``: plain encoding, ``1``: bytes); ``seed`` (int in
        ``[0, 2**64)``, ``None`` for a fresh one) makes it reproducible. See
        :func:`supertok.stochastic.encode_dropout` for the exact semantics.

        >>> enc.encode("hello <|endoftext|>", allowed_special="all")
        [31373, 220, 50256]
        """
        _check_str(text)
        allowed, disallowed = self._resolve_special(text, allowed_special, disallowed_special)
        if dropout is not None:
            from supertok.stochastic import encode_dropout

            try:
                return encode_dropout(self._core_bpe, text, allowed, disallowed, dropout, seed)
            except UnicodeEncodeError:
                return encode_dropout(self._core_bpe, _fix_surrogates(text), allowed, disallowed, dropout, seed)
        try:
            return self._core_bpe.encode(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.encode(_fix_surrogates(text), allowed, disallowed)

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
    ) -> "npt.NDArray[np.uint32]":
        """Encode a string into a read-only ``numpy.uint32`` array (no per-token Python objects)."""
        import numpy as np

        _check_str(text)
        allowed, disallowed = self._resolve_special(text, allowed_special, disallowed_special)
        try:
            buf = self._core_bpe.encode_to_bytes(text, allowed, disallowed)
        except UnicodeEncodeError:
            buf = self._core_bpe.encode_to_bytes(_fix_surrogates(text), allowed, disallowed)
        return np.frombuffer(buf, dtype=np.uint32)

    def count(
        self,
        text: str,
        *,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
    ) -> int:
        """Number of tokens ``encode`` would return, without building the list."""
        _check_str(text)
        allowed, disallowed = self._resolve_special(text, allowed_special, disallowed_special)
        try:
            return self._core_bpe.count(text, allowed, disallowed)
        except UnicodeEncodeError:
            return self._core_bpe.count(_fix_surrogates(text), allowed, disallowed)

    def encode_ordinary_batch(self, text: list[str], *, num_threads: int = 8) -> list[list[int]]:
        """Encode a list of strings in parallel (Rust threads, GIL released), ignoring special tokens."""
        texts = _check_batch(text)
        try:
            return self._core_bpe.encode_ordinary_batch(texts, _threads(num_threads))
        except UnicodeEncodeError:
            return self._core_bpe.encode_ordinary_batch(
                [_fix_surrogates(t) for t in texts], _threads(num_threads)
            )

    def encode_batch(
        self,
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
    ) -> list[list[int]]:
        """Encode a list of strings in parallel. See :meth:`encode` for the special-token arguments."""
        texts = _check_batch(text)
        allowed, disallowed = self._resolve_batch(texts, allowed_special, disallowed_special)
        try:
            return self._core_bpe.encode_batch(texts, _threads(num_threads), allowed, disallowed)
        except UnicodeEncodeError:
            texts = [_fix_surrogates(t) for t in texts]
            return self._core_bpe.encode_batch(texts, _threads(num_threads), allowed, disallowed)

    def encode_batch_to_numpy(
        self,
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
    ) -> "tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]":
        """Encode a batch into one flat ``uint32`` array plus ``uint64`` row offsets
        (``len(text) + 1`` entries; row ``i`` is ``ids[offsets[i]:offsets[i+1]]``)."""
        import numpy as np

        texts = _check_batch(text)
        allowed, disallowed = self._resolve_batch(texts, allowed_special, disallowed_special)
        try:
            ids, offs = self._core_bpe.encode_batch_to_bytes(
                texts, _threads(num_threads), allowed, disallowed
            )
        except UnicodeEncodeError:
            texts = [_fix_surrogates(t) for t in texts]
            ids, offs = self._core_bpe.encode_batch_to_bytes(
                texts, _threads(num_threads), allowed, disallowed
            )
        return np.frombuffer(ids, dtype=np.uint32), np.frombuffer(offs, dtype=np.uint64)

    def _resolve_batch(
        self, texts: list[str], allowed_special: _AllowedSpecial, disallowed_special: _DisallowedSpecial
    ) -> tuple[object, object]:
        result: tuple[object, object] = (None, None)
        for t in texts or [""]:
            result = self._resolve_special(t, allowed_special, disallowed_special)
        return result

    def encode_with_unstable(
        self,
        text: str,
        *,
        allowed_special: _AllowedSpecial = set(),  # noqa: B006
        disallowed_special: _DisallowedSpecial = "all",
    ) -> tuple[list[int], list[list[int]]]:
        """Encode into stable tokens and the possible completion sequences of the unstable tail.

        The stable tokens represent a prefix of ``text``; every completion continues them so
        that the result decodes to a string starting with ``text``. Completions are returned
        sorted (tiktoken returns them in arbitrary order).
        """
        _check_str(text)
        allowed, disallowed = self._resolve_special(text, allowed_special, disallowed_special)
        return self._core_bpe.encode_with_unstable(text, allowed, disallowed)

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """Encode text (or bytes) that is exactly one token, special tokens included.

        Raises ``KeyError`` if it is not a token.
        """
        if isinstance(text_or_bytes, str):
            text_or_bytes = text_or_bytes.encode("utf-8", "surrogatepass")
        elif not isinstance(text_or_bytes, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected str or bytes, not {type(text_or_bytes).__name__}")
        return self._core_bpe.encode_single_token(bytes(text_or_bytes))

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encode raw bytes, which need not be valid UTF-8 (tiktoken's ``_encode_bytes``).

        ``decode_bytes(encode_bytes(b)) == b`` for every ``b``.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        return self._core_bpe.encode_bytes(bytes(data))

    # ------------------------------------------------------------------ decoding

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """Decode tokens into bytes. Raises ``KeyError`` for an unknown id."""
        return self._core_bpe.decode_bytes(tokens)

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decode tokens into a string; ``errors`` is passed to ``bytes.decode``.

        The default ``"replace"`` is lossy when tokens split a UTF-8 character.
        """
        return self._core_bpe.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """Bytes of one token (special tokens included). Raises ``KeyError`` if unknown."""
        if not isinstance(token, int):
            raise TypeError(f"token must be int, not {type(token).__name__}")
        return self._core_bpe.decode_single_token_bytes(token)

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """Bytes of each token, e.g. ``[b'hello', b' world']``."""
        return self._core_bpe.decode_tokens_bytes(tokens)

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """Decode into text plus, for each token, the index of the first character that
        contains bytes of it. Raises ``UnicodeDecodeError`` if the bytes are not valid UTF-8.
        """
        data, offsets = self._core_bpe.decode_with_offsets_bytes(tokens)
        return data.decode("utf-8", errors="strict"), offsets

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        """Decode a batch of token lists into strings."""
        return [
            b.decode("utf-8", errors=errors)
            for b in self._core_bpe.decode_bytes_batch(list(batch), _threads(num_threads))
        ]

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        """Decode a batch of token lists into bytes."""
        return self._core_bpe.decode_bytes_batch(list(batch), _threads(num_threads))

    # ------------------------------------------------------------------ misc

    def token_byte_values(self) -> list[bytes]:
        """All mergeable token byte strings, sorted."""
        return self._core_bpe.token_byte_values()

    @property
    def eot_token(self) -> int:
        """Id of ``<|endoftext|>``."""
        return self._special_tokens["<|endoftext|>"]

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        """The special-token strings."""
        return set(self._special_tokens.keys())

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is a special-token id."""
        if not isinstance(token, int):
            raise TypeError(f"token must be int, not {type(token).__name__}")
        return token in self._special_token_values

    @property
    def n_vocab(self) -> int:
        """``max_token_value + 1`` (tiktoken's definition)."""
        return self.max_token_value + 1

    # ------------------------------------------------------------------ private (tiktoken)

    def _encode_single_piece(self, text_or_bytes: str | bytes) -> list[int]:
        if isinstance(text_or_bytes, str):
            text_or_bytes = text_or_bytes.encode("utf-8")
        return self._core_bpe.encode_single_piece(bytes(text_or_bytes))

    def _encode_only_native_bpe(self, text: str) -> list[int]:
        import regex

        ret: list[int] = []
        for piece in regex.findall(regex.compile(self._pat_str), text):
            ret.extend(self._core_bpe.encode_single_piece(piece.encode("utf-8")))
        return ret

    def _encode_bytes(self, text: bytes) -> list[int]:
        return self.encode_bytes(text)

    # ------------------------------------------------------------------ pickling

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Registered encodings pickle by name; others as a content-addressed payload (the
        vocabulary is serialized once per object and built once per process, see
        ``supertok._ship``)."""
        from supertok import _ship, registry

        if registry._ENCODINGS.get(self.name) is self:
            return (registry.get_encoding, (self.name,))
        state = _ship.encoding_state(self)
        digest, payload = state
        _ship.note_pickled(self, digest, payload)
        return (_ship.restore, ("Encoding", digest, payload))

    def __setstate__(self, value: object) -> None:
        # pickles made before __reduce__ existed: a registered name or the constructor's kwargs
        from supertok import registry

        if isinstance(value, str):
            self.__dict__ = registry.get_encoding(value).__dict__
            return
        assert isinstance(value, dict)
        self.__init__(**value)  # type: ignore[misc]


def _threads(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"num_threads must be int, not {type(n).__name__}")
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    return n


def _check_batch(text: object) -> list[str]:
    if isinstance(text, (str, bytes)):
        raise TypeError("expected a list of str, got a single " + type(text).__name__)
    texts = list(text)  # type: ignore[call-overload]
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text[{i}] must be str, not {type(t).__name__}")
    return texts


@functools.lru_cache(maxsize=128)
def _special_token_regex(tokens: frozenset[str]):  # type: ignore[no-untyped-def]
    try:
        import regex as re
    except ImportError:  # pragma: no cover
        import re  # type: ignore[no-redef]
    inner = "|".join(re.escape(token) for token in tokens)
    return re.compile(f"({inner})")


def raise_disallowed_special_token(token: str) -> NoReturn:
    """Raise tiktoken's ``ValueError`` for a disallowed special token."""
    raise ValueError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )
