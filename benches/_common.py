"""Shared helpers for the benchmarks in benches/.

Rules (see the developers' guide): compare against the installed anchors in the same
process and run, report medians of >= 3 runs and ratios, never lone absolute times, and
write each table into BENCHMARKS.md inside its own marked section so that benchmark scripts
do not overwrite each other.
"""

from __future__ import annotations

import gc
import importlib.machinery
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")
CORPUS_DIR = os.environ.get("SUPERTOK_CORPUS", os.path.join(ROOT, "..", "shared", "corpus"))


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after ``warmup`` runs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, float]:
    """Run every function once per round, ``repeats`` rounds, and return each median.

    Interleaving spreads the noise of a shared machine evenly over the contenders.
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def interleaved_medians_cpu(
    fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: bool = True
) -> dict[str, tuple[float, float]]:
    """Like :func:`interleaved_medians`, but returns ``(wall, thread_cpu)`` medians.

    Thread CPU time (``time.thread_time()``) only counts the time this thread actually ran,
    so on a shared, loaded machine it is the steadier figure for single-thread work (it
    says nothing about work done on other threads: use wall clock for those).
    ``warmup=False`` skips the untimed first call of every function.
    """
    if warmup:
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c = time.thread_time()
            t = time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.thread_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def nogc(f: Callable[[], object]) -> Callable[[], None]:
    """`f` run with the cyclic GC disabled (and its result freed inside)."""

    def g() -> None:
        gc.disable()
        try:
            f()
        finally:
            gc.enable()

    return g


def load_extension(path: str, tag: str = "other"):
    """Import the extension module at ``path`` (another build's ``supertok._core``) under
    the private name ``supertok_{tag}._core`` (a path loads once per process)."""
    name = f"supertok_{tag}._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def read_corpus(name: str) -> str | None:
    """Text of ``../shared/corpus/<name>`` or ``None`` when absent."""
    p = os.path.join(CORPUS_DIR, name)
    if not os.path.exists(p):
        return None
    with open(p, encoding="utf-8") as f:
        return f.read()


def chunk_documents(text: str, max_bytes: int = 8192) -> list[str]:
    """Split text at line boundaries into chunks of at most ``max_bytes`` UTF-8 bytes
    (a single longer line becomes its own chunk)."""
    docs: list[str] = []
    cur: list[str] = []
    n = 0
    for line in text.splitlines(keepends=True):
        b = len(line.encode("utf-8"))
        if cur and n + b > max_bytes:
            docs.append("".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += b
    if cur:
        docs.append("".join(cur))
    return docs


def machine_info() -> str:
    """One line describing the machine and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load avg {load:.1f} at start"
    )


def versions(packages: Iterable[str]) -> str:
    from importlib import metadata

    out = []
    for p in packages:
        try:
            out.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(f"{p} (not installed)")
    return ", ".join(out)


def git_rev() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md.

    A section is delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers.
    """
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    text = ""
    if os.path.exists(BENCHMARKS_MD):
        with open(BENCHMARKS_MD, encoding="utf-8") as f:
            text = f.read()
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pat.search(text):
        text = pat.sub(lambda _: block, text)
    else:
        if not text:
            text = "# Benchmarks\n\nGenerated by the scripts in `benches/`; each section names its command.\n\n"
        text = text.rstrip("\n") + "\n\n" + block
    with open(BENCHMARKS_MD, "w", encoding="utf-8") as f:
        f.write(text)


def md_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(x: object) -> str:
        if isinstance(x, float):
            return f"{x:.2f}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(machine_info(), file=sys.stderr)
