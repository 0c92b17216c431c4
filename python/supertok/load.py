"""Reading and writing ``.tiktoken`` vocabulary files (local files only; nothing is fetched)."""

from __future__ import annotations

import hashlib
import os
from typing import Union

from supertok import _core

__all__ = ["load_tiktoken_bpe", "dump_tiktoken_bpe", "read_file", "check_hash"]

PathLike = Union[str, "os.PathLike[str]"]


def read_file(path: PathLike) -> bytes:
    """Read a local file. URLs are refused: supertok never downloads anything."""
    p = os.fspath(path)
    if "://" in p:
        raise ValueError(f"{p}: supertok works offline and does not download files; pass a local path")
    with open(p, "rb") as f:
        return f.read()


def check_hash(data: bytes, expected_hash: str) -> bool:
    """Whether ``sha256(data)`` equals ``expected_hash`` (hex)."""
    return hashlib.sha256(data).hexdigest() == expected_hash


def load_tiktoken_bpe(tiktoken_bpe_file: PathLike, expected_hash: str | None = None) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file (one ``base64(token) rank`` per line) into ``{bytes: rank}``.

    Raises:
        ValueError: malformed file (bad base64, non-integer rank, duplicate token or rank);
            the message names the file and the line. Also on a hash mismatch.
        OSError: the file cannot be read.
    """
    p = os.fspath(tiktoken_bpe_file)
    data = read_file(p)
    if expected_hash is not None and not check_hash(data, expected_hash):
        raise ValueError(f"{p}: sha256 mismatch (expected {expected_hash})")
    return _core.CoreEncoding.load_tiktoken_bpe(data, p)


def dump_tiktoken_bpe(bpe_ranks: dict[bytes, int], tiktoken_bpe_file: PathLike) -> None:
    """Write ``{bytes: rank}`` as a ``.tiktoken`` file (sorted by rank)."""
    data = _core.CoreEncoding.dump_tiktoken_bpe(bpe_ranks)
    with open(os.fspath(tiktoken_bpe_file), "wb") as f:
        f.write(data)
