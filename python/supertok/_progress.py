"""Minimal progress bars: tqdm when installed, else a plain one-line bar on stderr.

Used by the trainer; the Rust side calls :meth:`ProgressBar.update_to` at most ~10 times
per second.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _fmt_time(s: float) -> str:
    if s != s or s == float("inf"):  # NaN / inf
        return "?"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def _fmt_num(x: float, unit: str) -> str:
    if unit == "B":
        for u in ("B", "KB", "MB", "GB", "TB"):
            if abs(x) < 1000 or u == "TB":
                return f"{x:.0f} {u}" if u == "B" else f"{x:.1f} {u}"
            x /= 1000
    return f"{int(x):,}"


class ProgressBar:
    """A progress bar over ``total`` units (``None`` = unknown). Disabled when
    ``enabled`` is false. Use :meth:`update_to` with absolute positions and :meth:`close`."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", enabled: bool = True) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.enabled = enabled
        self.n = 0
        self._start = time.perf_counter()
        self._tqdm: Any = None
        self._last_len = 0
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm  # optional dependency
        except Exception:  # noqa: BLE001 - any import problem means "no tqdm"
            tqdm = None
        if tqdm is not None:
            scale = unit == "B"
            self._tqdm = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=scale,
                unit_divisor=1000,
                leave=True,
                dynamic_ncols=True,
            )

    def update_to(self, n: int) -> None:
        """Move the bar to absolute position ``n``."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            if n > self._tqdm.n:
                self._tqdm.update(n - self._tqdm.n)
            self.n = n
            return
        self.n = n
        self._render()

    def _render(self, final: bool = False) -> None:
        el = time.perf_counter() - self._start
        if self.total:
            frac = min(1.0, self.n / self.total) if self.total else 0.0
            width = 24
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            eta = el * (1 - frac) / frac if frac > 0 else float("nan")
            line = (
                f"{self.desc}: {frac * 100:5.1f}% [{bar}] {_fmt_num(self.n, self.unit)}/"
                f"{_fmt_num(self.total, self.unit)} {_fmt_time(el)}<{_fmt_time(0 if final else eta)}"
            )
        else:
            line = f"{self.desc}: {_fmt_num(self.n, self.unit)} {_fmt_time(el)}"
        pad = " " * max(0, self._last_len - len(line))
        self._last_len = len(line)
        sys.stderr.write("\r" + line + pad + ("\n" if final else ""))
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            self._render(final=True)
        self.enabled = False
