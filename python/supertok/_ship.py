"""Cheap-to-ship pickles for tokenizers (content-addressed).

A custom :class:`supertok.Encoding` or a :class:`supertok.Tokenizer` pickles as
``(digest, payload)``: the vocabulary serialized once (and cached on the object, so pickling
the same tokenizer again costs nothing), zlib-compressed, plus a BLAKE2b digest of it.
Unpickling looks the digest up in a small per-process cache first: a worker that has already
built this tokenizer reuses it (same object, no parsing, no rebuild), however many tasks carry
it. Registered encodings (``cl100k_base``, ...) keep pickling by name.

Together with :func:`supertok.distributed.ship` (which scatters the tokenizer to every worker
once, so tasks only carry a reference) the vocabulary travels and is built once per worker.

:func:`stats` reports what this process pickled and restored (used by the tests to measure
what is sent).
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections import OrderedDict
from typing import Any, Callable

__all__ = ["stats", "reset_stats", "CACHE_SIZE"]

#: How many distinct tokenizers a process keeps (least recently used are dropped).
CACHE_SIZE = 8

_lock = threading.Lock()
_cache: "OrderedDict[str, Any]" = OrderedDict()
_stats = {"pickled": 0, "pickled_bytes": 0, "serialized": 0, "restored": 0, "built": 0, "cache_hits": 0}


def stats() -> dict[str, int]:
    """Counters of this process: ``pickled`` (tokenizer pickles made) and ``pickled_bytes``
    (their payload bytes), ``serialized`` (vocabulary serializations: at most one per object),
    ``restored`` (unpickles), ``built`` (unpickles that had to build the tokenizer) and
    ``cache_hits`` (unpickles served from the cache)."""
    with _lock:
        return dict(_stats)


def reset_stats() -> None:
    """Zero the counters (the cache is kept)."""
    with _lock:
        for k in _stats:
            _stats[k] = 0


def _remember(digest: str, obj: Any) -> None:
    with _lock:
        _cache[digest] = obj
        _cache.move_to_end(digest)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def _lookup(digest: str) -> Any:
    with _lock:
        obj = _cache.get(digest)
        if obj is not None:
            _cache.move_to_end(digest)
        return obj


def make_state(raw: bytes) -> tuple[str, bytes]:
    """``(digest, compressed payload)`` for the serialized vocabulary ``raw``."""
    digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
    with _lock:
        _stats["serialized"] += 1
    return digest, zlib.compress(raw, 1)


def encoding_state(enc: Any) -> tuple[str, bytes]:
    """The (cached) ``(digest, payload)`` of a custom :class:`supertok.Encoding`."""
    state = enc.__dict__.get("_ship_state")
    if state is None:
        import pickle

        raw = pickle.dumps(
            {
                "name": enc.name,
                "pat_str": enc._pat_str,
                "mergeable_ranks": enc._mergeable_ranks,
                "special_tokens": enc._special_tokens,
            },
            protocol=4,
        )
        state = enc.__dict__["_ship_state"] = make_state(raw)
    return state


def tokenizer_state(tok: Any) -> tuple[str, bytes]:
    """The (cached) ``(digest, payload)`` of a :class:`supertok.Tokenizer`."""
    state = tok._ship_state
    if state is None:
        state = make_state(tok.to_json(False).encode("utf-8"))
        tok._set_ship_state(state)
    return state


def note_pickled(obj: Any, digest: str, payload: bytes) -> None:
    """Count one pickle of ``obj`` and make a local round trip free."""
    with _lock:
        _stats["pickled"] += 1
        _stats["pickled_bytes"] += len(payload)
    if _lookup(digest) is None:
        _remember(digest, obj)


def restore(kind: str, digest: str, payload: bytes) -> Any:
    """Unpickle a tokenizer: the cached object with this digest, or a new one built from
    ``payload`` (then cached)."""
    with _lock:
        _stats["restored"] += 1
    obj = _lookup(digest)
    if obj is not None:
        with _lock:
            _stats["cache_hits"] += 1
        return obj
    build = _BUILDERS.get(kind)
    if build is None:
        raise ValueError(f"cannot unpickle a supertok object of unknown kind {kind!r}")
    raw = zlib.decompress(payload)
    obj = build(raw, digest, payload)
    with _lock:
        _stats["built"] += 1
    _remember(digest, obj)
    return obj


def _build_tokenizer(raw: bytes, digest: str, payload: bytes) -> Any:
    from supertok.tokenizer import Tokenizer

    tok = Tokenizer.from_str(raw.decode("utf-8"))
    tok._set_ship_state((digest, payload))
    return tok


def _build_encoding(raw: bytes, digest: str, payload: bytes) -> Any:
    import pickle

    from supertok.core import Encoding

    # the payload is our own pickle of plain data (str, dict[bytes, int], dict[str, int], int)
    state = pickle.loads(raw)
    enc = Encoding(**state)
    enc.__dict__["_ship_state"] = (digest, payload)
    return enc


_BUILDERS: dict[str, Callable[[bytes, str, bytes], Any]] = {
    "Tokenizer": _build_tokenizer,
    "Encoding": _build_encoding,
}
