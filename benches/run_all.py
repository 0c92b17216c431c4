"""Run every benchmark script in benches/ (each writes its own section of BENCHMARKS.md).

    python benches/run_all.py            # all of them, one after the other
    python benches/run_all.py encode hf  # only benches/bench_encode.py and benches/bench_hf.py

Benchmarks compare supertok with the installed anchors side by side in the same process;
install them with `pip install ".[bench]"`. On a shared machine run this when it is quiet.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str]) -> int:
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if argv:
        wanted = {f"bench_{a}.py" for a in argv}
        scripts = [s for s in scripts if os.path.basename(s) in wanted]
    failed = []
    for s in scripts:
        t = time.perf_counter()
        print(f"== {os.path.basename(s)}", flush=True)
        rc = subprocess.call([sys.executable, s])
        print(f"== {os.path.basename(s)}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(os.path.basename(s))
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
