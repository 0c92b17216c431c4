"""Scale-out on Dask (``pip install 'supertok[dask]'``).

* :func:`count_pretokens_dask` counts pretokens of many files (or a ``dask.bag`` of texts) on
  the workers and tree-reduces the :class:`~supertok.PretokenCounts`; the result equals
  :func:`supertok.count_pretokens` exactly and feeds :func:`supertok.train_from_counts`.
* :func:`encode_dataset` tokenizes text, JSONL or Parquet shards on the workers and writes
  token ids (Parquet ``list<uint32>`` or flat ``.npy`` + offsets) with a manifest; it is
  restartable (finished shards are skipped) and deterministic (the ids equal single-process
  encoding, whatever the number of workers).
* :func:`ship` scatters a tokenizer to every worker once; tasks then carry a reference, so
  the vocabulary travels (and is built) once per worker, not once per task.

Progress shows on Dask's dashboard (task prefixes ``supertok-count``, ``supertok-encode``)
and, in a terminal, as Dask's own progress bar. ``client=None`` uses the current Dask client;
without one (or with ``client=False``) the work runs in this process (same code, same
output).

Dask, ``distributed`` and ``pyarrow`` are imported lazily: ``import supertok`` never needs
them.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import glob as _glob
import gzip
import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence, Union

from supertok import _core
from supertok._core import PretokenCounts

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

    from supertok.core import Encoding
    from supertok.tokenizer import Tokenizer

__all__ = [
    "ShardCounter",
    "PretokenShardCounter",
    "count_pretokens_dask",
    "encode_dataset",
    "EncodeResult",
    "DatasetEncodeError",
    "ShardError",
    "ship",
    "local_client",
    "read_manifest",
]

PathLike = Union[str, "os.PathLike[str]"]
TokenizerLike = Union["Encoding", "Tokenizer", str]

#: Text handed to the encoder per batch inside a shard (characters).
BATCH_CHARS = 8 << 20
#: Bytes read per block from text/JSONL inputs.
READ_BLOCK = 8 << 20
#: Default size of one shard of a large text/JSONL file (bytes).
DEFAULT_SHARD_BYTES = 256 << 20

MANIFEST = "manifest.json"
MARKER_DIR = "_shards"
MANIFEST_VERSION = 1

_TEXT_EXT = (".txt", ".text")
_JSONL_EXT = (".jsonl", ".ndjson", ".json")
_PARQUET_EXT = (".parquet", ".pq")


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "supertok.distributed needs Dask's distributed scheduler: pip install 'supertok[dask]'"
        ) from None


def _current_client(client: Any) -> Any:
    """The given client, else the current default client, else ``None`` (run locally).
    ``client=False`` always runs locally."""
    if client is False:
        return None
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


@contextlib.contextmanager
def local_client(n_workers: int, threads_per_worker: int = 1, **kwargs: Any) -> Iterator[Any]:
    """A ``distributed.Client`` on a fresh ``LocalCluster`` of ``n_workers`` worker
    processes (closed on exit). Extra keyword arguments go to ``LocalCluster``."""
    _require_dask()
    from distributed import Client, LocalCluster

    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    kwargs.setdefault("dashboard_address", ":0")
    with (
        LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, **kwargs) as cluster,
        Client(cluster) as client,
    ):
        yield client


# ---------------------------------------------------------------------------------------------
# shipping tokenizers


def _tokenizer_identity(tok: Any) -> str:
    """A content digest of a tokenizer (registered encodings: their name)."""
    from supertok import _ship, registry
    from supertok.core import Encoding
    from supertok.tokenizer import Tokenizer

    if isinstance(tok, Encoding):
        if registry._ENCODINGS.get(tok.name) is tok:
            return "encoding:" + tok.name
        return "encoding:" + _ship.encoding_state(tok)[0]
    if isinstance(tok, Tokenizer):
        return "tokenizer:" + _ship.tokenizer_state(tok)[0]
    raise TypeError(f"expected a supertok Encoding or Tokenizer, not {type(tok).__name__}")


def _resolve_tokenizer(tokenizer: TokenizerLike) -> Any:
    from supertok.core import Encoding
    from supertok.tokenizer import Tokenizer

    if isinstance(tokenizer, (Encoding, Tokenizer)):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        s = os.fspath(tokenizer)
        from supertok.registry import get_encoding, list_encoding_names

        if s in list_encoding_names():
            return get_encoding(s)
        if os.path.exists(s):
            return Tokenizer.from_file(s)
        raise ValueError(
            f"tokenizer {s!r} is neither a registered encoding ({', '.join(list_encoding_names())}) "
            "nor an existing tokenizer.json file"
        )
    raise TypeError(
        f"tokenizer must be a supertok Encoding, Tokenizer, encoding name or tokenizer.json path, "
        f"not {type(tokenizer).__name__}"
    )


def ship(tokenizer: TokenizerLike, client: Any = None) -> Any:
    """Send ``tokenizer`` to every worker once and return a ``distributed.Future`` for it.

    Pass the future to ``client.submit``/``client.map`` (or as an argument of tasks): each
    worker holds one copy, tasks only carry the reference. Workers cache tokenizers by
    content digest, so shipping the same tokenizer again re-sends its bytes but never
    rebuilds it. Release the future when done.
    """
    _require_dask()
    client = _current_client(client)
    if client is None:
        raise ValueError("ship() needs a Dask client: pass client=... or create a distributed.Client")
    tok = _resolve_tokenizer(tokenizer)
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", _tokenizer_identity(tok))[:40]
    # a fresh key per call: reusing a key right after its release races with the scheduler
    key = f"supertok-tokenizer-{ident}-{uuid.uuid4().hex[:8]}"
    return client.scatter({key: tok}, broadcast=True, hash=False)[key]


# ---------------------------------------------------------------------------------------------
# counting


class ShardCounter(abc.ABC):
    """How one shard is counted (the extension point of :func:`count_pretokens_dask`).

    Subclass it (it must be picklable) to count chunks differently, e.g. SuperBPE's stage-2
    chunks. ``count_files`` counts whole files (each file is one text), ``count_texts`` a
    list of texts (each item is one text). Both return :class:`~supertok.PretokenCounts`
    whose sum over shards must not depend on how the data was sharded.
    """

    @abc.abstractmethod
    def count_files(self, paths: list[str]) -> PretokenCounts:
        """Counts of whole files."""

    @abc.abstractmethod
    def count_texts(self, texts: list[str]) -> PretokenCounts:
        """Counts of a list of texts."""


@dataclass(frozen=True)
class PretokenShardCounter(ShardCounter):
    """The default counter: :func:`supertok.count_pretokens` semantics.

    ``split_lines=True`` pretokenizes every line on its own (chunk-per-line counting, as
    HF's ``train(files)`` and SuperBPE's training do).
    """

    pattern: str = "o200k"
    split_lines: bool = False
    errors: str = "strict"
    threads: int = 1

    def __post_init__(self) -> None:
        from supertok.train import resolve_pattern

        object.__setattr__(self, "pattern", resolve_pattern(self.pattern))
        if self.errors not in ("strict", "replace"):
            raise ValueError(f'errors must be "strict" or "replace", got {self.errors!r}')

    def count_files(self, paths: list[str]) -> PretokenCounts:
        """Counts of whole files (streamed in Rust, GIL released)."""
        return _core.count_files(list(paths), self.pattern, self.threads, self.errors, None, self.split_lines)

    def count_texts(self, texts: list[str]) -> PretokenCounts:
        """Counts of a list of texts."""
        counter = _core.PretokenCounter(self.pattern, self.threads, self.split_lines)
        batch: list[str] = []
        size = 0
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts must be str; item {i} is {type(t).__name__}")
            batch.append(t)
            size += len(t)
            if size >= BATCH_CHARS:
                counter.add_texts(batch)
                batch, size = [], 0
        if batch:
            counter.add_texts(batch)
        return counter.finish()


class ShardError(ValueError):
    """A shard could not be processed; the message names it."""


def _count_file_task(counter: ShardCounter, path: str) -> PretokenCounts:
    try:
        return counter.count_files([path])
    except ShardError:
        raise
    except Exception as e:  # noqa: BLE001 - reported with the shard's name
        raise ShardError(f"{path}: {_describe(e, path)}") from None


def _count_partition(counter: ShardCounter, part: Iterable[Any]) -> PretokenCounts:
    return counter.count_texts(list(part))


def _sum_counts(*parts: Any) -> PretokenCounts:
    items: list[PretokenCounts] = []
    for p in parts:
        if isinstance(p, PretokenCounts):
            items.append(p)
        else:  # a list from dask.bag's aggregate
            items.extend(p)
    if not items:
        return PretokenCounts()
    total = items[0] + items[1] if len(items) > 1 else items[0] + PretokenCounts(items[0].pattern)
    for c in items[2:]:
        total += c
    return total


def _describe(e: BaseException, path: str | None = None) -> str:
    msg = str(e) or type(e).__name__
    if path and msg.startswith(path + ": "):
        msg = msg[len(path) + 2 :]
    return f"{type(e).__name__}: {msg}" if not isinstance(e, (ValueError, OSError)) else msg


def count_pretokens_dask(
    paths_or_bag: PathLike | Sequence[PathLike] | Any,
    pattern: str = "o200k",
    client: Any = None,
    *,
    split_lines: bool = False,
    errors: str = "strict",
    counter: ShardCounter | None = None,
    split_every: int = 8,
    show_progress: bool = True,
) -> PretokenCounts:
    """Count pretokens on a Dask cluster and tree-reduce the counts.

    Args:
        paths_or_bag: Text files (each file is one text, one task per file; globs and
            directories are expanded) or a ``dask.bag.Bag`` of ``str`` (each item is one
            text, one task per partition).
        pattern: ``"o200k"``, ``"cl100k"``, ``"gpt2"`` or a regex.
        client: A ``distributed.Client`` (default: the current one; none, or ``False``: run
            in this process).
        split_lines: Pretokenize each line on its own (chunk-per-line counting).
        errors: ``"strict"`` or ``"replace"`` for invalid UTF-8 in files.
        counter: A :class:`ShardCounter` that replaces ``pattern``/``split_lines``/``errors``
            (e.g. SuperBPE's stage-2 chunk counting).
        split_every: Fan-in of the tree reduction.
        show_progress: Dask's progress bar (console) while the tasks run.

    Returns:
        The summed :class:`~supertok.PretokenCounts`, equal to
        ``supertok.count_pretokens(files, pattern, split_lines=...)`` (for files) or
        ``count_pretokens_from_iterator(bag items, ...)`` (for a bag).

    Raises:
        ShardError: one or more shards failed (all failures are listed by name; the other
            shards still ran).
    """
    if counter is None:
        counter = PretokenShardCounter(pattern, split_lines=split_lines, errors=errors)
    elif not isinstance(counter, ShardCounter):
        raise TypeError(f"counter must be a ShardCounter, not {type(counter).__name__}")
    if isinstance(split_every, bool) or not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"split_every must be an int >= 2, got {split_every!r}")
    client = _current_client(client)

    if _is_bag(paths_or_bag):
        bag: Any = paths_or_bag
        red = bag.reduction(
            _partial(_count_partition, counter),
            _sum_counts,
            split_every=split_every,
            name="supertok-count",
        )
        if client is None:
            return red.compute(scheduler="sync")
        fut = client.compute(red)
        if show_progress:
            _dask_progress([fut])
        return fut.result()

    paths = _expand_inputs(paths_or_bag, kinds=None)
    if client is None:
        total: PretokenCounts | None = None
        failures = []
        for p in paths:
            try:
                c = _count_file_task(counter, p)
            except ShardError as e:
                failures.append(str(e))
                continue
            total = c if total is None else total + c
        if failures:
            raise ShardError(_failure_message("count", failures))
        assert total is not None
        return total

    token = uuid.uuid4().hex[:8]
    leaves = [
        client.submit(_count_file_task, counter, p, key=f"supertok-count-{token}-{i}", pure=False)
        for i, p in enumerate(paths)
    ]
    level, depth, tree = leaves, 0, []
    while len(level) > 1:
        depth += 1
        level = [
            client.submit(
                _sum_counts, *level[j : j + split_every], key=f"supertok-count-sum-{token}-{depth}-{j}", pure=False
            )
            for j in range(0, len(level), split_every)
        ]
        tree.extend(level)
    from distributed import wait

    try:
        if show_progress:
            _dask_progress(leaves + tree)
        wait(leaves + tree)
        failures = []
        for p, f in zip(paths, leaves):
            if f.status != "finished":
                failures.append(_future_error(f, p))
        if failures:
            raise ShardError(_failure_message("count", failures))
        return level[0].result()
    finally:
        for f in leaves + tree:
            f.release()


def _failure_message(what: str, failures: list[str]) -> str:
    head = f"{len(failures)} shard{'s' if len(failures) > 1 else ''} failed to {what}"
    return head + ":\n  " + "\n  ".join(failures)


def _future_error(f: Any, name: str) -> str:
    try:
        exc = f.exception()
    except Exception as e:  # noqa: BLE001 - e.g. the future was cancelled
        exc = e
    if exc is None:
        return f"{name}: {f.status}"
    msg = str(exc)
    if isinstance(exc, ShardError):
        return msg
    return f"{name}: {type(exc).__name__}: {msg}"


def _is_bag(x: Any) -> bool:
    try:
        import dask.bag as db
    except ImportError:
        return False
    return isinstance(x, db.Bag)


class _partial:
    """``functools.partial`` with a stable, readable name for Dask's task prefixes."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args
        self.__name__ = getattr(fn, "__name__", "partial")

    def __call__(self, *a: Any) -> Any:
        return self.fn(*self.args, *a)


def _dask_progress(futures: list[Any]) -> None:
    from distributed import progress

    try:
        progress(futures)
    except Exception:  # noqa: BLE001 - a progress display must never fail the run
        pass


# ---------------------------------------------------------------------------------------------
# inputs and shards


def _kind_of(path: str, input_format: str) -> tuple[str, str | None]:
    """(``text`` | ``jsonl`` | ``parquet``, compression) of a path."""
    name = path.lower()
    comp = None
    if name.endswith(".gz"):
        comp, name = "gzip", name[:-3]
    if input_format != "auto":
        if input_format == "parquet" and comp:
            raise ValueError(f"{path}: gzip-compressed Parquet is not supported")
        return input_format, comp
    if name.endswith(_PARQUET_EXT):
        if comp:
            raise ValueError(f"{path}: gzip-compressed Parquet is not supported")
        return "parquet", None
    if name.endswith(_JSONL_EXT):
        return "jsonl", comp
    if name.endswith(_TEXT_EXT):
        return "text", comp
    raise ValueError(
        f"{path}: unknown input type (expected .txt, .jsonl, .parquet, optionally .gz); "
        "pass input_format='text', 'jsonl' or 'parquet'"
    )


def _expand_inputs(inputs: Any, kinds: tuple[str, ...] | None) -> list[str]:
    """Absolute paths of the inputs, in the order given (directories: sorted files;
    globs: sorted matches). Missing inputs raise ``FileNotFoundError`` naming them."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    try:
        items = [os.fspath(p) for p in inputs]
    except TypeError:
        raise TypeError("inputs must be a path, a list of paths or (for counting) a dask.bag of str") from None
    out: list[str] = []
    for p in items:
        if not isinstance(p, str):
            raise TypeError(f"input paths must be str or os.PathLike, got {type(p).__name__}")
        if os.path.isdir(p):
            files = sorted(
                os.path.join(p, f)
                for f in os.listdir(p)
                if os.path.isfile(os.path.join(p, f)) and not f.startswith(".")
            )
            if kinds is not None:
                files = [f for f in files if _known_ext(f)]
            if not files:
                raise FileNotFoundError(f"{p}: directory holds no input files")
            out.extend(files)
        elif os.path.exists(p):
            out.append(p)
        elif any(ch in p for ch in "*?["):
            matches = sorted(m for m in _glob.glob(p, recursive=True) if os.path.isfile(m))
            if not matches:
                raise FileNotFoundError(f"{p}: no file matches")
            out.extend(matches)
        else:
            raise FileNotFoundError(f"{p}: no such file")
    if not out:
        raise ValueError("no input files given")
    return [os.path.abspath(p) for p in out]


def _known_ext(path: str) -> bool:
    try:
        _kind_of(path, "auto")
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class _Shard:
    index: int
    name: str
    path: str
    kind: str
    compression: str | None
    start: int  # byte range [start, end) of lines starting in it; whole file: 0, -1
    end: int
    size: int
    mtime_ns: int

    def label(self) -> str:
        if self.end < 0:
            return self.path
        return f"{self.path} [bytes {self.start}-{self.end}]"

    def input_record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.kind,
            "compression": self.compression,
            "range": None if self.end < 0 else [self.start, self.end],
            "size": self.size,
            "mtime_ns": self.mtime_ns,
        }


def _plan(paths: list[str], input_format: str, text_unit: str, shard_bytes: int | None) -> list[_Shard]:
    shards: list[_Shard] = []
    for p in paths:
        kind, comp = _kind_of(p, input_format)
        st = os.stat(p)
        splittable = comp is None and (kind == "jsonl" or (kind == "text" and text_unit == "line"))
        if splittable and shard_bytes and st.st_size > shard_bytes:
            n = -(-st.st_size // shard_bytes)
            bounds = [st.st_size * k // n for k in range(n + 1)]
            ranges = list(zip(bounds[:-1], bounds[1:]))
        else:
            ranges = [(0, -1)]
        for a, b in ranges:
            i = len(shards)
            shards.append(_Shard(i, f"part-{i:05d}", p, kind, comp, a, b, st.st_size, st.st_mtime_ns))
    return shards


def _line_start_at_or_after(f: Any, pos: int) -> int:
    """The offset of the first line that starts at or after ``pos``."""
    if pos <= 0:
        return 0
    f.seek(pos - 1)
    if f.read(1) in (b"\n", b""):
        return pos
    f.readline()
    return f.tell()


def _read_blocks(shard: _Shard, sep: bytes) -> Iterator[tuple[int, bytes]]:
    """``(offset, block)`` pairs covering the shard; every block but the last ends with
    ``sep`` (blocks grow past :data:`READ_BLOCK` until one is found)."""
    if shard.compression == "gzip":
        f: Any = gzip.open(shard.path, "rb")
        start, end = 0, -1
    else:
        f = open(shard.path, "rb")
        start, end = 0, -1
        if shard.end >= 0:
            start = _line_start_at_or_after(f, shard.start)
            end = _line_start_at_or_after(f, shard.end)
            f.seek(start)
    with f:
        pos = start
        carry = b""
        while True:
            want = READ_BLOCK if end < 0 else min(READ_BLOCK, end - pos)
            data = f.read(want) if want > 0 else b""
            pos += len(data)
            if not data:
                if carry:
                    yield pos - len(carry), carry
                return
            buf = carry + data if carry else data
            cut = buf.rfind(sep)
            if cut < 0:
                carry = buf
                continue
            cut += len(sep)
            yield pos - len(buf), buf[:cut]
            carry = buf[cut:]


def _decode(block: bytes, offset: int, shard: _Shard, errors: str) -> str:
    try:
        return block.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise ShardError(
            f"{shard.path}: invalid UTF-8 at byte offset {offset + e.start}"
            + (" (of the decompressed stream)" if shard.compression else "")
            + " (pass errors='replace' to substitute U+FFFD)"
        ) from None


_PARA_SPLIT = re.compile(r"\n{2,}")


def _iter_documents(shard: _Shard, opts: "_Options") -> Iterator[list[str]]:
    """Batches of documents of a shard, in order (about :data:`BATCH_CHARS` each)."""
    batch: list[str] = []
    size = 0
    for docs in _iter_doc_lists(shard, opts):
        n = sum(map(len, docs))
        if not batch and n >= BATCH_CHARS // 2:
            yield docs  # a whole block: pass it on as it is
            continue
        batch.extend(docs)
        size += n
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _iter_doc_lists(shard: _Shard, opts: "_Options") -> Iterator[list[str]]:
    if shard.kind == "parquet":
        yield from _parquet_docs(shard, opts.text_column)
        return
    if shard.kind == "jsonl":
        yield from _jsonl_docs(shard, opts)
        return
    unit = opts.text_unit
    if unit == "file":
        blocks = list(_read_blocks(shard, b"\n"))
        data = b"".join(b for _, b in blocks)
        yield [_decode(data, 0, shard, opts.errors)]
        return
    sep = b"\n\n" if unit == "paragraph" else b"\n"
    for off, block in _read_blocks(shard, sep):
        text = _decode(block, off, shard, opts.errors)
        if unit == "line":
            if "\r" in text:
                yield [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n") if ln and ln != "\r"]
            else:
                yield [ln for ln in text.split("\n") if ln]
        else:
            paras = [p.strip("\n") for p in _PARA_SPLIT.split(text)]
            yield [p for p in paras if p]


def _jsonl_docs(shard: _Shard, opts: "_Options") -> Iterator[list[str]]:
    col = opts.text_column
    loads = json.loads
    for off, block in _read_blocks(shard, b"\n"):
        text = _decode(block, off, shard, opts.errors)
        line_off = off
        out: list[str] = []
        for line in text.split("\n"):
            raw_len = len(line.encode("utf-8")) if not line.isascii() else len(line)
            if line.strip():
                try:
                    obj = loads(line)
                except ValueError as e:
                    raise ShardError(f"{shard.path}: invalid JSON at byte offset {line_off}: {e}") from None
                if not isinstance(obj, dict):
                    raise ShardError(
                        f"{shard.path}: the JSON line at byte offset {line_off} is a "
                        f"{type(obj).__name__}, not an object"
                    )
                try:
                    val = obj[col]
                except KeyError:
                    keys = ", ".join(map(repr, list(obj)[:10]))
                    raise ShardError(
                        f"{shard.path}: the JSON object at byte offset {line_off} has no {col!r} field "
                        f"(fields: {keys}); pass text_column=..."
                    ) from None
                if not isinstance(val, str):
                    raise ShardError(
                        f"{shard.path}: field {col!r} at byte offset {line_off} is {type(val).__name__}, not a string"
                    )
                out.append(val)
            line_off += raw_len + 1
        yield out


def _parquet_docs(shard: _Shard, col: str) -> Iterator[list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(shard.path)
    except (pa.ArrowException, OSError) as e:
        raise ShardError(f"{shard.path}: not a readable Parquet file ({e})") from None
    names = pf.schema_arrow.names
    if col not in names:
        raise ShardError(f"{shard.path}: no column {col!r} (columns: {', '.join(names)}); pass text_column=...")
    typ = pf.schema_arrow.field(col).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)):
        raise ShardError(f"{shard.path}: column {col!r} has type {typ}, not string")
    row = 0
    try:
        for rb in pf.iter_batches(batch_size=65536, columns=[col]):
            arr = rb.column(0)
            if arr.null_count:
                bad = row + arr.is_null().to_pylist().index(True)
                raise ShardError(f"{shard.path}: column {col!r} is null in row {bad}")
            yield arr.to_pylist()
            row += len(arr)
    except pa.ArrowException as e:
        raise ShardError(f"{shard.path}: cannot read Parquet row group near row {row} ({e})") from None


# ---------------------------------------------------------------------------------------------
# encoding and writing


@dataclass(frozen=True)
class _Options:
    format: str
    text_column: str
    text_unit: str
    errors: str
    append_eot: bool
    eot_id: int | None
    add_special_tokens: bool
    threads: int
    tokenizer_id: str

    def config(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("threads")
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:32]


def _encode_docs(tok: Any, docs: list[str], opts: _Options) -> "tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]":
    """Flat ids and ``len(docs) + 1`` offsets (EOT appended per document if asked)."""
    import numpy as np

    from supertok.core import Encoding

    if isinstance(tok, Encoding):
        # encode_ordinary semantics (what encode_batch_to_numpy(disallowed_special=()) does,
        # without its per-document Python checks: every item is a str here)
        try:
            buf, obuf = tok._core_bpe.encode_batch_to_bytes(docs, opts.threads, None, None)
        except UnicodeEncodeError:  # lone surrogates (from JSON): tiktoken's U+FFFD rule
            from supertok.core import _fix_surrogates

            buf, obuf = tok._core_bpe.encode_batch_to_bytes(
                [_fix_surrogates(d) for d in docs], opts.threads, None, None
            )
        ids = np.frombuffer(buf, dtype=np.uint32)
        offs = np.frombuffer(obuf, dtype=np.uint64)
    else:
        try:
            buf, ends = tok._core.encode_batch_to_bytes(docs, opts.add_special_tokens, opts.threads)
        except UnicodeEncodeError as e:
            from supertok.tokenizer import _surrogate_error

            raise ShardError(str(_surrogate_error(e))) from None
        ids = np.frombuffer(buf, dtype=np.uint32)
        offs = np.zeros(len(docs) + 1, dtype=np.uint64)
        offs[1:] = ends
    if opts.append_eot:
        assert opts.eot_id is not None
        ids = np.insert(ids, offs[1:].astype(np.intp), np.uint32(opts.eot_id))
        offs = (offs + np.arange(len(offs), dtype=np.uint64)).astype(np.uint64, copy=False)
    return ids, offs


class _NpyStream:
    """Writes a 1-D ``.npy`` file of unknown length: a fixed-size header rewritten at the end."""

    HEADER = 128

    def __init__(self, path: str, descr: str, itemsize: int) -> None:
        self.path, self.descr, self.itemsize = path, descr, itemsize
        self.f = open(path, "wb")
        self.f.write(self._header(0))
        self.n = 0

    def _header(self, n: int) -> bytes:
        d = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (self.descr, n)
        body_len = self.HEADER - 10
        text = d.ljust(body_len - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + text.encode("latin1")

    def write(self, arr: Any) -> None:
        self.f.write(memoryview(arr).cast("B"))
        self.n += len(arr)

    def close(self) -> None:
        self.f.seek(0)
        self.f.write(self._header(self.n))
        self.f.close()

    def abort(self) -> None:
        self.f.close()


class _ShardWriter:
    """Writes one shard's outputs under temporary names; :meth:`commit` renames them."""

    def __init__(self, out_dir: str, name: str, fmt: str) -> None:
        import numpy as np

        self.out_dir, self.name, self.fmt = out_dir, name, fmt
        tag = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.final = _output_names(name, fmt)
        self.tmp = [os.path.join(out_dir, f".{f}{tag}") for f in self.final]
        self.ids_hash = hashlib.sha256()
        self.offs_hash = hashlib.sha256()
        self.docs = 0
        self.tokens = 0
        zero = np.zeros(1, dtype="<u8")  # the offsets hash covers the leading 0, like the .npy file
        self.offs_hash.update(zero.tobytes())
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.schema = pa.schema([pa.field("input_ids", pa.list_(pa.uint32()))])
            # zstd without dictionaries: smaller and faster than the defaults for token ids
            self.pq_writer: Any = pq.ParquetWriter(self.tmp[0], self.schema, compression="zstd", use_dictionary=False)
        else:
            self.ids_out = _NpyStream(self.tmp[0], "<u4", 4)
            self.offs_out = _NpyStream(self.tmp[1], "<u8", 8)
            self.offs_out.write(zero)

    def write(self, ids: Any, offs: Any) -> None:
        import numpy as np

        n = len(offs) - 1
        if n <= 0:
            return
        ids = np.ascontiguousarray(ids, dtype="<u4")
        self.ids_hash.update(memoryview(ids).cast("B"))
        glob_offs = (offs[1:] + np.uint64(self.tokens)).astype("<u8")
        self.offs_hash.update(memoryview(glob_offs).cast("B"))
        if self.fmt == "parquet":
            import pyarrow as pa

            lengths = np.diff(offs.astype(np.int64))
            if len(lengths) and int(lengths.max()) > 2**31 - 1:
                raise ShardError(
                    f"a document has {int(lengths.max())} tokens: too many for list<uint32>; use format='npy'"
                )
            # keep each written chunk's offsets within int32
            start = 0
            while start < n:
                stop = start + 1
                base = int(offs[start])
                lo, hi = stop, n
                while lo < hi:  # largest stop with offs[stop] - base < 2**31
                    mid = (lo + hi + 1) // 2
                    if int(offs[mid]) - base < 2**31:
                        lo = mid
                    else:
                        hi = mid - 1
                stop = max(lo, stop)
                o = (offs[start : stop + 1].astype(np.int64) - base).astype(np.int32)
                vals = pa.array(ids[base : int(offs[stop])], type=pa.uint32())
                arr = pa.ListArray.from_arrays(pa.array(o, type=pa.int32()), vals)
                self.pq_writer.write_table(pa.Table.from_arrays([arr], schema=self.schema))
                start = stop
        else:
            self.ids_out.write(ids)
            self.offs_out.write(glob_offs)
        self.docs += n
        self.tokens += len(ids)

    def commit(self) -> list[str]:
        if self.fmt == "parquet":
            self.pq_writer.close()
        else:
            self.ids_out.close()
            self.offs_out.close()
        for t, f in zip(self.tmp, self.final):
            os.replace(t, os.path.join(self.out_dir, f))
        return self.final

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self.fmt == "parquet":
                self.pq_writer.close()
            else:
                self.ids_out.abort()
                self.offs_out.abort()
        for t in self.tmp:
            with contextlib.suppress(OSError):
                os.remove(t)


def _output_names(name: str, fmt: str) -> list[str]:
    return [f"{name}.parquet"] if fmt == "parquet" else [f"{name}.ids.npy", f"{name}.offsets.npy"]


def _write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def _encode_shard_task(tok: Any, shard: _Shard, opts: _Options, out_dir: str) -> dict[str, Any]:
    """Encode one shard on a worker; returns its manifest record (also written as a marker)."""
    t0 = time.perf_counter()
    try:
        writer = _ShardWriter(out_dir, shard.name, opts.format)
    except Exception as e:  # noqa: BLE001
        raise ShardError(f"{shard.label()}: cannot create output in {out_dir}: {_describe(e)}") from None
    nbytes = 0
    try:
        for docs in _iter_documents(shard, opts):
            nbytes += len("".join(docs).encode("utf-8", "surrogatepass"))
            ids, offs = _encode_docs(tok, docs, opts)
            writer.write(ids, offs)
        outputs = writer.commit()
    except BaseException as e:
        writer.abort()
        if isinstance(e, ShardError):
            msg = str(e)
            raise ShardError(msg if msg.startswith(shard.path) else f"{shard.label()}: {msg}") from None
        if isinstance(e, Exception):
            raise ShardError(f"{shard.label()}: {_describe(e, shard.path)}") from None
        raise
    record = {
        "index": shard.index,
        "name": shard.name,
        "input": shard.input_record(),
        "outputs": outputs,
        "output_bytes": sum(os.path.getsize(os.path.join(out_dir, o)) for o in outputs),
        "documents": writer.docs,
        "tokens": writer.tokens,
        "bytes": nbytes,
        "ids_sha256": writer.ids_hash.hexdigest(),
        "offsets_sha256": writer.offs_hash.hexdigest(),
        "config": opts.digest(),
        "seconds": round(time.perf_counter() - t0, 4),
    }
    _write_json_atomic(os.path.join(out_dir, MARKER_DIR, shard.name + ".json"), record)
    return record


# ---------------------------------------------------------------------------------------------
# the driver


@dataclass
class EncodeResult:
    """What :func:`encode_dataset` did (the manifest has the per-shard details)."""

    output_dir: str
    manifest: str
    shards: int
    encoded: int
    skipped: int
    documents: int
    tokens: int
    bytes: int
    seconds: float
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        """A one-line summary."""
        rate = self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
        return (
            f"{self.shards} shards ({self.encoded} encoded, {self.skipped} already done"
            + (f", {len(self.failed)} failed" if self.failed else "")
            + f"): {self.documents:,} documents, {self.tokens:,} tokens from {self.bytes:,} bytes "
            f"in {self.seconds:.2f} s ({rate:.1f} MB/s)"
        )


class DatasetEncodeError(ValueError):
    """Some shards failed; the others were written. ``failures`` lists the failed shards by
    name and reason, ``result`` is the :class:`EncodeResult` of the run. Re-running after
    fixing the inputs encodes only the missing shards."""

    def __init__(self, message: str, failures: list[str], result: EncodeResult) -> None:
        super().__init__(message)
        self.failures = failures
        self.result = result


def _eot_id(tok: Any, eot_token: str) -> int:
    from supertok.core import Encoding

    specials = tok._special_tokens if isinstance(tok, Encoding) else tok.special_tokens
    if eot_token in specials:
        return int(specials[eot_token])
    if not isinstance(tok, Encoding):
        tid = tok.token_to_id(eot_token)
        if tid is not None:
            return int(tid)
    raise ValueError(
        f"append_eot=True but the tokenizer has no {eot_token!r} token "
        f"(special tokens: {sorted(specials)}); pass eot_token=... or append_eot=False"
    )


def _valid_marker(rec: Any, shard: _Shard, opts: _Options, out_dir: str) -> bool:
    if not isinstance(rec, dict):
        return False
    if rec.get("config") != opts.digest() or rec.get("input") != shard.input_record():
        return False
    outs = rec.get("outputs")
    if outs != _output_names(shard.name, opts.format):
        return False
    try:
        size = sum(os.path.getsize(os.path.join(out_dir, o)) for o in outs)
    except OSError:
        return False
    return size == rec.get("output_bytes")


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def encode_dataset(
    tokenizer: TokenizerLike,
    inputs: PathLike | Sequence[PathLike],
    output_dir: PathLike,
    *,
    client: Any = None,
    text_column: str = "text",
    format: Literal["parquet", "npy"] = "parquet",
    append_eot: bool = True,
    eot_token: str = "<|endoftext|>",
    text_unit: Literal["line", "paragraph", "file"] = "line",
    input_format: Literal["auto", "text", "jsonl", "parquet"] = "auto",
    errors: Literal["strict", "replace"] = "strict",
    add_special_tokens: bool = True,
    shard_bytes: int | None = DEFAULT_SHARD_BYTES,
    threads_per_task: int = 1,
    overwrite: bool = False,
    show_progress: bool = True,
) -> EncodeResult:
    """Tokenize a dataset on a Dask cluster and write the token ids with a manifest.

    Every shard (a file, or a line-aligned byte range of a large text/JSONL file) is encoded
    by one task and written as ``part-NNNNN.parquet`` (one row per document, column
    ``input_ids: list<uint32>``) or ``part-NNNNN.ids.npy`` (flat ``uint32``) +
    ``part-NNNNN.offsets.npy`` (``uint64``, documents + 1 entries; document ``i`` is
    ``ids[offsets[i]:offsets[i+1]]``). Parts are numbered in input order; concatenated in
    that order they hold the documents in input order.

    Outputs are written under temporary names and renamed when complete, then a marker
    ``_shards/part-NNNNN.json`` records the shard (input, documents, tokens, bytes, SHA-256
    of the ids and offsets). ``manifest.json`` collects them. Running again with the same
    settings skips every shard whose marker and outputs are intact, so an interrupted run
    (killed workers, a killed client) is finished by re-running it; no shard is ever written
    twice or left half-written.

    Documents: text files hold one document per line (``text_unit="line"``; the ``\\n`` and
    a trailing ``\\r`` are not part of it; empty lines are skipped), per paragraph
    (``"paragraph"``: separated by empty lines) or per file (``"file"``); JSONL files one per
    line (field ``text_column``; blank lines skipped); Parquet files one per row
    (``text_column``, string, no nulls). ``.gz`` text/JSONL files are decompressed.

    Ids equal single-process encoding exactly: ``Encoding.encode_ordinary(doc)`` (special
    token text is encoded as plain text) or ``Tokenizer.encode(doc, add_special_tokens)``,
    followed by the ``eot_token`` id when ``append_eot``.

    Args:
        tokenizer: A :class:`supertok.Encoding`, :class:`supertok.Tokenizer`, a registered
            encoding name or a ``tokenizer.json`` path. It is shipped to each worker once.
        inputs: Files, directories (their files, sorted) or glob patterns.
        output_dir: Created if needed.
        client: A ``distributed.Client`` (default: the current one; none, or ``False``: run
            in this process).
        text_column: JSONL field / Parquet column holding the text.
        format: ``"parquet"`` or ``"npy"``.
        append_eot: Append the ``eot_token`` id after every document.
        eot_token: The end-of-text token (a special/added token of the tokenizer).
        text_unit: What a document is in text files (see above).
        input_format: Override the detection by extension.
        errors: ``"replace"`` substitutes U+FFFD for invalid UTF-8 instead of failing.
        add_special_tokens: For :class:`Tokenizer`: apply its post-processor's tokens.
        shard_bytes: Split uncompressed JSONL and line-unit text files larger than this into
            line-aligned ranges (``None``: one shard per file).
        threads_per_task: Encoder threads inside one task (keep 1 with one Dask thread per
            core).
        overwrite: Re-encode everything, even shards done with other settings.
        show_progress: Dask's progress bar (console); in-process: a supertok bar.

    Returns:
        An :class:`EncodeResult`.

    Raises:
        DatasetEncodeError: some shards failed (named with the reason); all others were
            written and recorded, ``manifest.json`` says ``"complete": false``.
        FileNotFoundError: an input does not exist (nothing is run).
        ValueError: bad arguments, or ``output_dir`` holds a run with other settings.
    """
    t0 = time.perf_counter()
    if format not in ("parquet", "npy"):
        raise ValueError(f"format must be 'parquet' or 'npy', got {format!r}")
    if text_unit not in ("line", "paragraph", "file"):
        raise ValueError(f"text_unit must be 'line', 'paragraph' or 'file', got {text_unit!r}")
    if input_format not in ("auto", "text", "jsonl", "parquet"):
        raise ValueError(f"input_format must be 'auto', 'text', 'jsonl' or 'parquet', got {input_format!r}")
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if not isinstance(text_column, str) or not text_column:
        raise ValueError("text_column must be a non-empty str")
    if shard_bytes is not None and (
        isinstance(shard_bytes, bool) or not isinstance(shard_bytes, int) or shard_bytes < 1
    ):
        raise ValueError(f"shard_bytes must be a positive int or None, got {shard_bytes!r}")
    if isinstance(threads_per_task, bool) or not isinstance(threads_per_task, int) or threads_per_task < 1:
        raise ValueError(f"threads_per_task must be a positive int, got {threads_per_task!r}")
    _require_numpy()
    if format == "parquet":
        _require_pyarrow()

    tok = _resolve_tokenizer(tokenizer)
    eot = _eot_id(tok, eot_token) if append_eot else None
    opts = _Options(
        format=format,
        text_column=text_column,
        text_unit=text_unit,
        errors=errors,
        append_eot=bool(append_eot),
        eot_id=eot,
        add_special_tokens=bool(add_special_tokens),
        threads=threads_per_task,
        tokenizer_id=_tokenizer_identity(tok),
    )
    paths = _expand_inputs(inputs, kinds=("text", "jsonl", "parquet"))
    shards = _plan(paths, input_format, text_unit, shard_bytes)
    if any(s.kind == "parquet" for s in shards):
        _require_pyarrow()

    out_dir = os.path.abspath(os.fspath(output_dir))
    os.makedirs(os.path.join(out_dir, MARKER_DIR), exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    old = _read_json(manifest_path)
    if not overwrite and isinstance(old, dict) and old.get("config_digest") not in (None, opts.digest()):
        raise ValueError(
            f"{out_dir} holds a dataset written with other settings ({old.get('config')}); "
            "use another output_dir or overwrite=True"
        )
    # leftovers of tasks that were killed mid-write
    for f in os.listdir(out_dir):
        if f.startswith(".part-") and ".tmp-" in f:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(out_dir, f))

    done: dict[int, dict[str, Any]] = {}
    todo: list[_Shard] = []
    for s in shards:
        rec = None if overwrite else _read_json(os.path.join(out_dir, MARKER_DIR, s.name + ".json"))
        if rec is not None and not overwrite and rec.get("config") not in (None, opts.digest()):
            raise ValueError(
                f"{out_dir}: shard {s.name} was written with other settings; use another output_dir or overwrite=True"
            )
        if rec is not None and _valid_marker(rec, s, opts, out_dir):
            done[s.index] = rec
        else:
            todo.append(s)
    skipped = len(done)

    failures: dict[int, str] = {}
    client = _current_client(client)
    if todo:
        if client is None:
            _run_local(tok, todo, opts, out_dir, done, failures, show_progress)
        else:
            _run_dask(client, tok, todo, opts, out_dir, done, failures, show_progress)

    records = [done[i] for i in sorted(done)]
    complete = not failures
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "supertok": _core.__version__,
        "complete": complete,
        "format": format,
        "config": opts.config(),
        "config_digest": opts.digest(),
        "totals": {
            "shards": len(records),
            "documents": sum(r["documents"] for r in records),
            "tokens": sum(r["tokens"] for r in records),
            "bytes": sum(r["bytes"] for r in records),
            "output_bytes": sum(r["output_bytes"] for r in records),
        },
        "shards": records,
        "failed": [
            {"index": i, "name": shards[i].name, "input": shards[i].input_record(), "error": failures[i]}
            for i in sorted(failures)
        ],
    }
    _write_json_atomic(manifest_path, manifest)
    res = EncodeResult(
        output_dir=out_dir,
        manifest=manifest_path,
        shards=len(shards),
        encoded=len(records) - skipped,
        skipped=skipped,
        documents=manifest["totals"]["documents"],
        tokens=manifest["totals"]["tokens"],
        bytes=manifest["totals"]["bytes"],
        seconds=time.perf_counter() - t0,
        failed=[failures[i] for i in sorted(failures)],
    )
    if failures:
        raise DatasetEncodeError(_failure_message("encode", res.failed) + "\n(re-run to retry them)", res.failed, res)
    return res


def _require_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:  # pragma: no cover
        raise ImportError("encode_dataset needs numpy: pip install 'supertok[dask]'") from None


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:  # pragma: no cover
        raise ImportError("Parquet input/output needs pyarrow: pip install 'supertok[dask]'") from None


def _run_local(
    tok: Any,
    todo: list[_Shard],
    opts: _Options,
    out_dir: str,
    done: dict[int, dict[str, Any]],
    failures: dict[int, str],
    show_progress: bool,
) -> None:
    from supertok._progress import ProgressBar

    bar = ProgressBar(len(todo), "Encoding shards", "shards", show_progress)
    try:
        for k, s in enumerate(todo):
            try:
                done[s.index] = _encode_shard_task(tok, s, opts, out_dir)
            except ShardError as e:
                failures[s.index] = str(e)
            bar.update_to(k + 1)
    finally:
        bar.close()


def _run_dask(
    client: Any,
    tok: Any,
    todo: list[_Shard],
    opts: _Options,
    out_dir: str,
    done: dict[int, dict[str, Any]],
    failures: dict[int, str],
    show_progress: bool,
) -> None:
    from distributed import as_completed

    tok_future = ship(tok, client)
    token = uuid.uuid4().hex[:8]
    # largest shards first: the last tasks to finish are small ones (better balance)
    order = sorted(todo, key=lambda s: -(s.end - s.start if s.end >= 0 else s.size))
    futures = {}
    for s in order:
        f = client.submit(
            _encode_shard_task,
            tok_future,
            s,
            opts,
            out_dir,
            key=f"supertok-encode-{token}-{s.index:05d}",
            pure=False,
        )
        futures[f] = s
    try:
        if show_progress:
            _dask_progress(list(futures))
        for f in as_completed(list(futures)):
            s = futures[f]
            if f.status == "finished":
                try:
                    done[s.index] = f.result()
                    continue
                except Exception as e:  # noqa: BLE001
                    err = f"{s.label()}: {_describe(e)}"
            else:
                err = _future_error(f, s.label())
            # a worker that died right after writing the shard: its marker is the truth
            rec = _read_json(os.path.join(out_dir, MARKER_DIR, s.name + ".json"))
            if rec is not None and _valid_marker(rec, s, opts, out_dir):
                done[s.index] = rec
            else:
                failures[s.index] = err
    finally:
        for f in futures:
            f.release()
        tok_future.release()


def read_manifest(output_dir: PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of an :func:`encode_dataset` output directory."""
    path = os.path.join(os.fspath(output_dir), MANIFEST)
    m = _read_json(path)
    if not isinstance(m, dict):
        raise ValueError(f"{path}: missing or not a valid manifest")
    return m
