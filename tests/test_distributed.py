"""supertok.distributed on a real dask.distributed LocalCluster (2 worker processes).

One cluster is shared by the module; every test is small (seconds) and has a timeout.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
np = pytest.importorskip("numpy")

import supertok  # noqa: E402
from supertok import _ship  # noqa: E402
from supertok.distributed import (  # noqa: E402
    DatasetEncodeError,
    PretokenShardCounter,
    ShardError,
    count_pretokens_dask,
    encode_dataset,
    read_manifest,
    ship,
)

from conftest import corpus_path  # noqa: E402

pytestmark = pytest.mark.timeout(240)


# ------------------------------------------------------------------------------- fixtures


def _sample_texts() -> list[str]:
    """Real text: slices of the shared corpus when present, else the stdlib's own source."""
    out = []
    for name, n in [
        ("en.txt", 240_000),
        ("code.txt", 160_000),
        ("multilingual/de.txt", 60_000),
        ("multilingual/ja.txt", 60_000),
    ]:
        p = corpus_path(name)
        if os.path.exists(p):
            with open(p, "rb") as f:
                out.append(f.read(n).decode("utf-8", "ignore"))
    if not out:
        # four texts of stdlib source; the first two exceed the tests' shard sizes (70-90 KB)
        # so that big inputs are split at line boundaries here too
        import argparse
        import email
        import inspect
        import json as _json
        import subprocess
        import typing

        for group in ((os, threading, subprocess), (typing, inspect), (email, _json), (argparse,)):
            text = ""
            for mod in group:
                with open(mod.__file__, encoding="utf-8") as f:  # type: ignore[arg-type]
                    text += f.read()
            out.append(text)
    return out


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=40,
        worker_dashboard_address=None,
    )
    c = Client(cluster)
    try:
        c.wait_for_workers(2, timeout=120)
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Text, JSONL and Parquet shards plus their documents in order."""
    d = tmp_path_factory.mktemp("data")
    texts = _sample_texts()
    files, docs = [], []
    for i, t in enumerate(texts):
        p = d / f"t{i}.txt"
        p.write_text(t, encoding="utf-8")
        files.append(str(p))
        docs.extend(ln for ln in t.split("\n") if ln)
    lines = [ln for ln in texts[0].split("\n") if ln.strip()]
    half = len(lines) // 2
    jl = d / "rows.jsonl"
    with open(jl, "w", encoding="utf-8") as f:
        for k, ln in enumerate(lines[:half]):
            f.write(json.dumps({"id": k, "text": ln}, ensure_ascii=k % 2 == 0) + "\n")
            if k % 50 == 0:
                f.write("\n")  # blank lines are skipped
    files.append(str(jl))
    docs.extend(lines[:half])
    pqf = d / "rows.parquet"
    pq.write_table(pa.table({"text": lines[half:], "n": list(range(len(lines) - half))}), pqf, row_group_size=300)
    files.append(str(pqf))
    docs.extend(lines[half:])
    return {"dir": d, "files": files, "docs": docs, "text_files": files[: len(texts)]}


@pytest.fixture(scope="module")
def small_tokenizer(data):
    """A freshly trained HF-style Tokenizer (custom vocabulary, with <|endoftext|>)."""
    return supertok.train(
        data["text_files"], 600, pattern="cl100k", special_tokens=["<|endoftext|>"], show_progress=False
    )


def _read_parquet_docs(out_dir) -> list[list[int]]:
    m = read_manifest(out_dir)
    got = []
    for s in m["shards"]:
        got.extend(pq.read_table(os.path.join(out_dir, s["outputs"][0])).column("input_ids").to_pylist())
    return got


def _read_npy_docs(out_dir) -> list[list[int]]:
    m = read_manifest(out_dir)
    got = []
    for s in m["shards"]:
        ids = np.load(os.path.join(out_dir, s["outputs"][0]))
        offs = np.load(os.path.join(out_dir, s["outputs"][1]))
        assert ids.dtype == np.uint32 and offs.dtype == np.uint64 and offs[0] == 0 and offs[-1] == len(ids)
        got.extend(ids[offs[i] : offs[i + 1]].tolist() for i in range(len(offs) - 1))
    return got


def _reference(tok, docs, eot=True):
    if isinstance(tok, supertok.Encoding):
        e = [tok.eot_token] if eot else []
        return [tok.encode_ordinary(d) + e for d in docs]
    e = [tok.special_tokens["<|endoftext|>"]] if eot else []
    return [tok.encode(d) + e for d in docs]


def _workers_stats(client):
    return client.run(_ship.stats)


# ------------------------------------------------------------------------------- pickling


def test_pickles_are_content_addressed_and_compact(tmp_path):
    base = supertok.get_encoding("cl100k_base")
    assert len(pickle.dumps(base)) < 100  # registered: by name
    custom = supertok.Encoding(
        "custom", pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks, special_tokens={"<|eot|>": 100_300}
    )
    tok = supertok.Tokenizer.from_tiktoken(base)
    for obj, raw in [(custom, len(pickle.dumps(base._mergeable_ranks))), (tok, len(tok.to_json(False)))]:
        p1 = pickle.dumps(obj)
        t = time.perf_counter()
        p2 = pickle.dumps(obj)
        assert time.perf_counter() - t < 0.05  # the payload is cached on the object
        assert p1 == p2 and len(p1) < raw * 0.75  # compressed
        assert pickle.loads(p1) is obj  # a local round trip is free
    # a fresh process builds once, however many copies it unpickles
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps([tok, custom, tok]))
    code = (
        "import pickle, sys\n"
        "from supertok import _ship\n"
        f"a = pickle.load(open({str(path)!r}, 'rb')); b = pickle.load(open({str(path)!r}, 'rb'))\n"
        "assert a[0] is a[2] is b[0] and a[1] is b[1]\n"
        "assert a[0].encode('hello world') == [15339, 1917] and a[1].encode('hello') == [15339]\n"
        "s = _ship.stats(); print(s['built'], s['cache_hits'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "2"]  # 2 builds (tok, custom), the second file load hits the cache


def test_ship_sends_the_vocabulary_once_per_worker(client, data, small_tokenizer, tmp_path):
    """Measure what is pickled: shipping sends the payload once in all; passing the tokenizer
    to every task sends it with every task (the content-addressed cache still builds it only
    once per worker)."""
    tok = supertok.Tokenizer.from_str(small_tokenizer.to_json())  # a fresh object, new to the workers
    digest, payload = _ship.tokenizer_state(tok)
    n_tasks = 8
    client.run(_ship.reset_stats)
    _ship.reset_stats()
    fut = ship(tok, client)
    res = client.gather(client.map(lambda t, i: len(t.encode("hello world")) + i, [fut] * n_tasks, range(n_tasks)))
    assert res == [len(tok.encode("hello world")) + i for i in range(n_tasks)]
    here, workers = _ship.stats(), _workers_stats(client)
    shipped_bytes = here["pickled_bytes"] + sum(w["pickled_bytes"] for w in workers.values())
    assert here["pickled"] == 1 and here["pickled_bytes"] == len(payload)
    assert shipped_bytes <= len(payload) * len(workers)  # once per worker at most
    for w in workers.values():
        assert w["restored"] == 1 and w["built"] == 1, workers
    fut.release()

    # naive: the tokenizer object itself in every task
    tok2 = supertok.Tokenizer.from_str(small_tokenizer.to_json(pretty=False))
    client.run(_ship.reset_stats)
    _ship.reset_stats()
    res = client.gather(client.map(lambda t, i: len(t.encode("hello world")) + i, [tok2] * n_tasks, range(n_tasks)))
    here, workers = _ship.stats(), _workers_stats(client)
    assert sum(w["restored"] for w in workers.values()) == n_tasks  # the payload came with every task
    assert here["pickled_bytes"] >= n_tasks * len(payload) // 2
    assert all(w["built"] <= 1 for w in workers.values())  # but was built once per worker


# ------------------------------------------------------------------------------- counting


@pytest.mark.parametrize("split_lines", [False, True])
def test_count_pretokens_dask_equals_single_process(client, data, split_lines):
    files = data["text_files"]
    single = supertok.count_pretokens(files, "cl100k", split_lines=split_lines, show_progress=False)
    dist = count_pretokens_dask(files, "cl100k", client, split_lines=split_lines, split_every=2, show_progress=False)
    assert dist == single and dist.total() == single.total() and dist.pattern == single.pattern
    a = supertok.train_from_counts(single, 700, show_progress=False)
    b = supertok.train_from_counts(dist, 700, show_progress=False)
    assert a.to_json() == b.to_json()


def test_count_pretokens_dask_bag(client, data):
    import dask.bag as db

    docs = data["docs"]
    bag = db.from_sequence(docs, npartitions=7)
    dist = count_pretokens_dask(bag, "o200k", client, split_every=3, show_progress=False)
    assert dist == supertok.count_pretokens_from_iterator(docs, "o200k", show_progress=False)
    lines = count_pretokens_dask(
        bag, client=client, counter=PretokenShardCounter("o200k", split_lines=True), show_progress=False
    )
    assert lines == supertok.count_pretokens_from_iterator(docs, "o200k", split_lines=True, show_progress=False)


def test_count_pretokens_dask_names_bad_shards(client, data, tmp_path):
    bad1 = tmp_path / "bad1.txt"
    bad1.write_bytes(b"fine text\nbroken \xff\xfe bytes\n")
    bad2 = tmp_path / "bad2.txt"
    bad2.write_bytes(b"\xc3")
    with pytest.raises(ShardError) as ei:
        count_pretokens_dask([data["text_files"][0], str(bad1), str(bad2)], "o200k", client, show_progress=False)
    msg = str(ei.value)
    assert "2 shards failed" in msg and str(bad1) in msg and str(bad2) in msg
    assert data["text_files"][0] not in msg
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        count_pretokens_dask([str(tmp_path / "nope.txt")], "o200k", client, show_progress=False)


# ------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_encode_dataset_equals_single_process(client, data, small_tokenizer, tmp_path, fmt):
    enc = supertok.get_encoding("o200k_base")
    runs = {}
    for name, tok in [("enc", enc), ("tok", small_tokenizer)]:
        out = tmp_path / name
        res = encode_dataset(
            tok, data["files"], out, client=client, format=fmt, shard_bytes=70_000, show_progress=False
        )
        got = _read_parquet_docs(out) if fmt == "parquet" else _read_npy_docs(out)
        exp = _reference(tok, data["docs"])
        assert len(got) == len(exp) and got == exp
        m = read_manifest(out)
        assert m["complete"] and res.encoded == res.shards == len(m["shards"]) > len(data["files"])
        assert [s["index"] for s in m["shards"]] == list(range(res.shards))
        assert m["totals"]["documents"] == len(exp) == res.documents
        assert m["totals"]["tokens"] == sum(map(len, exp))
        assert m["totals"]["bytes"] == sum(len(d.encode()) for d in data["docs"])
        runs[name] = m
    # no temporary files remain
    for name in runs:
        assert not [f for f in os.listdir(tmp_path / name) if ".tmp-" in f]


def test_encode_dataset_deterministic_across_workers_and_formats(client, data, tmp_path):
    enc = supertok.get_encoding("cl100k_base")
    kw = dict(shard_bytes=90_000, show_progress=False)
    a = encode_dataset(enc, data["files"], tmp_path / "a", client=client, format="parquet", **kw)
    b = encode_dataset(enc, data["files"], tmp_path / "b", client=False, format="npy", **kw)  # in-process
    ma, mb = read_manifest(a.output_dir), read_manifest(b.output_dir)
    key = lambda m: [
        (s["name"], s["documents"], s["tokens"], s["ids_sha256"], s["offsets_sha256"]) for s in m["shards"]
    ]  # noqa: E731
    assert key(ma) == key(mb)


def test_encode_dataset_units_and_no_eot(data, tmp_path):
    enc = supertok.get_encoding("r50k_base")
    t = data["text_files"][0]
    with open(t, encoding="utf-8") as f:
        text = f.read()
    import re

    paras = [p.strip("\n") for p in re.split(r"\n{2,}", text) if p.strip("\n")]
    res = encode_dataset(enc, [t], tmp_path / "p", text_unit="paragraph", append_eot=False, show_progress=False)
    assert _read_parquet_docs(res.output_dir) == [enc.encode_ordinary(p) for p in paras]
    res = encode_dataset(enc, [t], tmp_path / "f", text_unit="file", format="npy", show_progress=False)
    assert _read_npy_docs(res.output_dir) == [enc.encode_ordinary(text) + [enc.eot_token]]
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"one\r\ntwo <|endoftext|>\r\n\r\nthree")
    res = encode_dataset(enc, [crlf], tmp_path / "c", show_progress=False)
    assert _read_parquet_docs(res.output_dir) == [
        enc.encode_ordinary(s) + [50256] for s in ["one", "two <|endoftext|>", "three"]
    ]


def test_encode_dataset_restart_skips_finished_shards(data, tmp_path):
    enc = supertok.get_encoding("cl100k_base")
    kw = dict(shard_bytes=100_000, show_progress=False)
    out = tmp_path / "o"
    first = encode_dataset(enc, data["files"], out, **kw)
    m1 = read_manifest(out)
    os.remove(os.path.join(out, m1["shards"][1]["outputs"][0]))  # a lost output
    with open(os.path.join(out, ".part-00002.parquet.tmp-1-dead"), "wb") as f:
        f.write(b"partial")  # a killed task's leftover
    again = encode_dataset(enc, data["files"], out, **kw)
    assert again.encoded == 1 and again.skipped == first.shards - 1
    m2 = read_manifest(out)
    assert [s["ids_sha256"] for s in m2["shards"]] == [s["ids_sha256"] for s in m1["shards"]]
    assert not [f for f in os.listdir(out) if ".tmp-" in f]
    with pytest.raises(ValueError, match="other settings"):
        encode_dataset(enc, data["files"], out, append_eot=False, **kw)
    third = encode_dataset(enc, data["files"], out, append_eot=False, overwrite=True, **kw)
    assert third.encoded == third.shards


def test_malformed_shards_are_named_and_do_not_stop_the_others(client, data, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a_good.txt").write_text("hello world\nsecond line\n", encoding="utf-8")
    (d / "b_bad.jsonl").write_text('{"text": "ok"}\n{"text": "fine"}\nnot json at all\n', encoding="utf-8")
    (d / "c_bad.txt").write_bytes(b"good line\nbad \xff byte\n")
    (d / "d_nocol.jsonl").write_text('{"body": "x"}\n', encoding="utf-8")
    (d / "e_broken.parquet").write_bytes(b"PAR1 this is not parquet")
    pq.write_table(pa.table({"text": ["from parquet", "row two"]}), d / "f_good.parquet")
    enc = supertok.get_encoding("cl100k_base")
    out = tmp_path / "out"
    with pytest.raises(DatasetEncodeError) as ei:
        encode_dataset(enc, [d], out, client=client, show_progress=False)
    e = ei.value
    msg = str(e)
    assert len(e.failures) == 4 and "4 shards failed" in msg
    assert "b_bad.jsonl: invalid JSON at byte offset 32" in msg
    assert "c_bad.txt: invalid UTF-8 at byte offset 14" in msg
    assert "d_nocol.jsonl" in msg and "'text'" in msg
    assert "e_broken.parquet" in msg
    m = read_manifest(out)
    assert not m["complete"] and [f["name"] for f in m["failed"]] == [
        "part-00001",
        "part-00002",
        "part-00003",
        "part-00004",
    ]
    assert [s["name"] for s in m["shards"]] == ["part-00000", "part-00005"]
    got = _read_parquet_docs(out)
    assert got == _reference(enc, ["hello world", "second line", "from parquet", "row two"])
    # fix one input and re-run: only the failed shards run again
    (d / "c_bad.txt").write_bytes(b"good line\nnow fine\n")
    with pytest.raises(DatasetEncodeError) as ei:
        encode_dataset(enc, [d], out, client=client, show_progress=False)
    assert ei.value.result.skipped == 2 and ei.value.result.encoded == 1 and len(ei.value.failures) == 3


def test_killed_worker_then_rerun_completes_exactly_once(client, data, tmp_path):
    """Kill a worker process while shards are being encoded (no retries allowed, so its
    shard fails), then re-run: every shard is in the manifest exactly once and the ids
    equal single-process encoding."""
    enc = supertok.get_encoding("o200k_base")
    d = tmp_path / "in"
    d.mkdir()
    big = "\n".join(data["docs"] * 3) + "\n"  # ~1.5 MB per shard: the kill lands mid-run
    files = []
    for i in range(12):
        p = d / f"s{i:02d}.txt"
        p.write_text(big, encoding="utf-8")
        files.append(str(p))
    out = tmp_path / "out"
    markers = out / "_shards"
    pids = client.run(os.getpid)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = encode_dataset(enc, files, out, client=client, show_progress=False)
        except Exception as e:  # noqa: BLE001
            outcome["error"] = e

    th = threading.Thread(target=run)
    th.start()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (markers.exists() and len(os.listdir(markers)) >= 2):
            time.sleep(0.02)
        done_at_kill = len(os.listdir(markers))
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        th.join(180)
        assert not th.is_alive()
    finally:
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 3))
        client.wait_for_workers(2, timeout=120)
    assert done_at_kill < len(files), "the run finished before the kill: make the shards bigger"
    if "error" in outcome:  # the killed worker's shard failed (the usual case)
        err = outcome["error"]
        assert isinstance(err, DatasetEncodeError), repr(err)
        assert "KilledWorker" in str(err) or "died" in str(err) or "lost" in str(err), str(err)
        first = err.result
        assert not read_manifest(out)["complete"]
    else:  # the victim was between two tasks: nothing was lost
        first = outcome["result"]
    second = encode_dataset(enc, files, out, client=client, show_progress=False)
    assert second.skipped == len(files) - len(first.failed) and second.encoded == len(first.failed)
    m = read_manifest(out)
    assert m["complete"] and not m["failed"]
    assert [s["name"] for s in m["shards"]] == [f"part-{i:05d}" for i in range(len(files))]  # each once
    assert len({s["ids_sha256"] for s in m["shards"]}) == 1  # identical inputs, identical ids
    got = _read_parquet_docs(out)
    lines = [ln for ln in big.split("\n") if ln]
    one = _reference(enc, lines)
    assert len(got) == 12 * len(one) and got[: len(one)] == one and got[-len(one) :] == one
    assert sorted(os.listdir(out)) == sorted(
        [f"part-{i:05d}.parquet" for i in range(12)] + ["_shards", "manifest.json"]
    )


# ------------------------------------------------------------------------------- CLI


def test_cli_encode_dataset_and_train_on_workers(data, tmp_path):
    from supertok.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "encode-dataset",
                *data["files"][:2],
                "--tokenizer",
                "cl100k_base",
                "--out",
                str(out),
                "--format",
                "npy",
                "--quiet",
            ]
        )
        == 0
    )
    m = read_manifest(out)
    assert m["complete"] and m["format"] == "npy"
    tj = tmp_path / "tok.json"
    assert (
        main(
            [
                "train",
                *data["text_files"][:2],
                "--vocab-size",
                "400",
                "--pattern",
                "cl100k",
                "--out",
                str(tj),
                "--workers",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    single = supertok.train(data["text_files"][:2], 400, pattern="cl100k", show_progress=False)
    assert supertok.Tokenizer.from_file(str(tj)).to_json() == single.to_json()
    assert main(["encode-dataset", str(tmp_path / "missing.txt"), "--tokenizer", "cl100k_base", "--out", str(out)]) == 1


def test_line_aligned_ranges_cover_every_line_once(tmp_path):
    """Byte-range shards of a file hold each line exactly once, whatever the cut points."""
    from supertok.distributed import _iter_documents, _Options, _plan

    import random

    rng = random.Random(7)
    lines = ["".join(rng.choice("ab é\t") for _ in range(rng.randrange(0, 40))) for _ in range(300)]
    for ending in ["\n", ""]:
        p = tmp_path / "lines.txt"
        p.write_text("\n".join(lines) + ending, encoding="utf-8")
        expected = [ln for ln in lines if ln]
        opts = _Options("npy", "text", "line", "strict", False, None, True, 1, "x")
        size = os.path.getsize(p)
        for shard_bytes in [1, 2, 3, 17, 64, 1000, size - 1, size, None]:
            shards = _plan([str(p)], "auto", "line", shard_bytes)
            got = [d for s in shards for batch in _iter_documents(s, opts) for d in batch]
            assert got == expected, shard_bytes
