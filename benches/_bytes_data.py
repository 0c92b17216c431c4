"""Held-out text and prompts shared by the byte-level benchmarks."""

from __future__ import annotations

import random


def held_out(text: str, n_bytes: int, seed: int = 0) -> list[str]:
    """Chunks of about 1 KB from the last 10 % of ``text`` (whole lines), ``n_bytes`` in all."""
    tail = text[int(len(text) * 0.9) :]
    lines = [ln for ln in tail.splitlines(keepends=True) if len(ln.encode()) > 40]
    rng = random.Random(seed)
    rng.shuffle(lines)
    chunks, cur, total = [], "", 0
    for ln in lines:
        cur += ln
        if len(cur.encode()) >= 1000:
            chunks.append(cur)
            total += len(cur.encode())
            cur = ""
            if total >= n_bytes:
                break
    return chunks


def cut_points(text: str, n: int, context: int, seed: int = 1) -> list[bytes]:
    """``n`` prompts of up to ``context`` bytes ending at random points of the held-out text
    (from a line start when possible; any byte position, also inside a character)."""
    tail = text[int(len(text) * 0.9) :].encode()
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        c = rng.randrange(context, len(tail) - 1)
        lo = tail.rfind(b"\n", 0, c - context // 2)
        lo = max(lo + 1, c - context)
        out.append(tail[lo:c])
    return out
