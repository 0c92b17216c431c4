"""Chunk alignment of two tokenizations of the same text (for cross-tokenizer distillation,
BPE vs SuperBPE comparisons, byte-level probability work).

A *chunk* is a maximal run of tokens on each side that covers the same bytes: chunk
boundaries are the byte offsets where both sides have a token boundary (the exact,
offset-based core of ALM's alignment, Minixhofer et al. 2025). ``words=True`` keeps only
the boundaries followed by whitespace (or the end), giving whitespace-bounded chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from supertok._adapt import TokenizerLike, _numpy, as_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

__all__ = ["align", "align_offsets", "token_ends"]

_WS = frozenset(b" \t\n\r\x0b\x0c")


def _space_at(data: bytes, pos: int) -> bool:
    """Whether a whitespace character starts at byte ``pos`` of ``data`` (ASCII or any
    Unicode whitespace, e.g. U+00A0, U+3000)."""
    c = data[pos]
    if c < 0x80:
        return c in _WS
    n = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
    if c < 0xC0:
        return False
    try:
        return data[pos : pos + n].decode("utf-8").isspace()
    except UnicodeDecodeError:
        return False


def token_ends(tok: Any, ids: Sequence[int], *, text: Optional[str] = None) -> "npt.NDArray[np.int64]":
    """End byte offset of every token of ``ids``.

    Without ``text``: the cumulative byte lengths of the tokens. With ``text`` and a
    tokenizer that reports its own offsets (``supertok.Tokenizer``, e.g. with a normaliser),
    those offsets, after checking that ``ids`` is how it tokenizes ``text``.
    """
    np = _numpy()
    t = as_tokenizer(tok)
    ids = [int(i) for i in ids]
    if text is not None and t._offsets is not None:
        got, _, ends = t.encode_with_offsets(text)
        if got != ids:
            raise ValueError(f"ids are not the tokenization of text by {t.name!r}")
        return np.maximum.accumulate(ends) if len(ends) else ends
    return np.cumsum(t.token_lengths(ids))


def _token_bytes(t: TokenizerLike, ids: Sequence[int]) -> bytes:
    return b"".join(t.token_bytes(i) for i in ids)


def align_offsets(
    ends_a: Any, ends_b: Any, *, words: bool = False, data: Optional[bytes] = None
) -> tuple["npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]:
    """Chunk index of every token, from the tokens' end byte offsets on both sides.

    Args:
        ends_a, ends_b: Non-decreasing end offsets (the last one = the total length on both
            sides).
        words: Keep only boundaries at the end of the data or where a whitespace character
            of ``data`` starts (``data`` is needed then).
        data: The bytes both sides cover.

    Returns:
        ``(chunk_a, chunk_b)``: ``int64`` arrays; tokens with the same chunk index cover the
        same bytes on both sides. Chunks are numbered from 0 in text order; zero-length
        tokens join the chunk they sit in.

    Raises:
        ValueError: offsets that decrease or do not end at the same total.
    """
    np = _numpy()
    a = np.asarray(ends_a, dtype=np.int64).reshape(-1)
    b = np.asarray(ends_b, dtype=np.int64).reshape(-1)
    for name, e in (("ends_a", a), ("ends_b", b)):
        if len(e) and (e[0] < 0 or (np.diff(e) < 0).any()):
            raise ValueError(f"{name} must be non-negative and non-decreasing")
    ta = int(a[-1]) if len(a) else 0
    tb = int(b[-1]) if len(b) else 0
    if ta != tb:
        raise ValueError(f"the two tokenizations cover different lengths ({ta} and {tb} bytes)")
    common = np.intersect1d(a, b)
    common = common[common > 0]
    if words:
        if data is None:
            raise ValueError("words=True needs the data (bytes) to find whitespace")
        if len(data) != ta:
            raise ValueError(f"data has {len(data)} bytes but the tokens cover {ta}")
        if len(common):
            pos = common[common < ta]
            is_ws = np.fromiter((_space_at(data, int(p)) for p in pos), dtype=bool, count=len(pos))
            common = np.concatenate([pos[is_ws], common[common == ta]])
    if ta > 0 and (len(common) == 0 or common[-1] != ta):
        common = np.append(common, ta)
    return np.searchsorted(common, a, "left"), np.searchsorted(common, b, "left")


def align(
    tok_a: Any,
    ids_a: Sequence[int],
    tok_b: Any,
    ids_b: Sequence[int],
    *,
    words: bool = False,
    text: Optional[str] = None,
) -> tuple["npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]:
    """Align two tokenizations of the same text into chunks.

    A chunk ends wherever both sides have a token boundary, so the tokens of one chunk on
    side A cover exactly the bytes of the same chunk's tokens on side B. ``words=True``
    coarsens to whitespace-bounded chunks: a boundary is kept only if a whitespace character
    starts there (or the text ends), so each chunk is a run of whole words with their leading
    whitespace.

    Args:
        tok_a, tok_b: Tokenizers (:class:`supertok.Encoding`, :class:`supertok.Tokenizer`,
            a name, or a :func:`supertok.metrics.wrap`-ped callable with token bytes).
        ids_a, ids_b: Their token ids for the same text.
        words: Whitespace-bounded chunks.
        text: The text; only needed for tokenizers whose token bytes differ from the text
            (HF normalisers), whose own offsets are then used.

    Returns:
        ``(chunk_a, chunk_b)``: for every token its chunk index (``numpy.int64``), 0-based
        in text order; ``chunk_a.max() + 1`` is the number of chunks.

    Raises:
        ValueError: the two sides do not cover the same bytes (without ``text``), or ids
            that are not in a vocabulary.
    """
    ta, tb = as_tokenizer(tok_a), as_tokenizer(tok_b)
    ids_a = [int(i) for i in ids_a]
    ids_b = [int(i) for i in ids_b]
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        data = text.encode("utf-8", "surrogatepass")
        ends_a = token_ends(ta, ids_a, text=text)
        ends_b = token_ends(tb, ids_b, text=text)
        for name, e in (("a", ends_a), ("b", ends_b)):
            covered = int(e[-1]) if len(e) else 0
            if covered != len(data):
                raise ValueError(f"the tokens of side {name} cover {covered} bytes, the text {len(data)}")
        return align_offsets(ends_a, ends_b, words=words, data=data)
    da = _token_bytes(ta, ids_a)
    db = _token_bytes(tb, ids_b)
    if da != db:
        k = next((i for i, (x, y) in enumerate(zip(da, db)) if x != y), min(len(da), len(db)))
        raise ValueError(
            f"the two tokenizations decode to different bytes (first difference at byte {k}: "
            f"{da[k:k + 12]!r} vs {db[k:k + 12]!r}); pass text=... for tokenizers that normalise"
        )
    return align_offsets(token_ends(ta, ids_a), token_ends(tb, ids_b), words=words, data=da)
