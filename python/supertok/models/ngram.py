"""A token n-gram language model with interpolated Kneser-Ney smoothing (numpy)."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional, Sequence

__all__ = ["NGramLM"]

_BOS = -1


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover
        raise ImportError("NGramLM needs numpy: pip install 'supertok[numpy]'") from e
    return numpy


class NGramLM:
    """Token n-gram LM: interpolated Kneser-Ney with one absolute discount per order,
    interpolated down to a uniform distribution over the whole vocabulary (so every token,
    seen or not, has non-zero probability).

    Each training sequence is modelled from a start-of-text context and ends with the
    end-of-text token, so ``logprobs([[]])`` is the distribution of the first token.

    Args:
        n_vocab: number of token ids (rows have this length).
        order: n (1 = unigram).
        eot: end-of-text id appended to every training sequence.
        discount: absolute discount in (0, 1).
    """

    def __init__(self, n_vocab: int, order: int = 3, eot: Optional[int] = None, discount: float = 0.75):
        if not isinstance(n_vocab, int) or n_vocab <= 0:
            raise ValueError(f"n_vocab must be a positive int, got {n_vocab!r}")
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an int >= 1, got {order!r}")
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {discount!r}")
        if eot is not None and not 0 <= eot < n_vocab:
            raise ValueError(f"eot={eot} is outside the vocabulary of {n_vocab} ids")
        self.n_vocab = n_vocab
        self.order = order
        self.eot = eot
        self.discount = float(discount)
        # counts[k][context of length k] -> Counter(next -> count); k = 0..order-1
        self._counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(order)]
        self._tables: Optional[list[dict[tuple, tuple]]] = None
        self.n_tokens = 0

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        tokenizer: Any,
        texts: Iterable[str],
        order: int = 3,
        eot: Optional[int] = None,
        discount: float = 0.75,
    ) -> "NGramLM":
        """Train on texts encoded with ``tokenizer`` (its canonical encoding, the one
        :class:`supertok.ByteLM` assumes)."""
        from supertok.bytelm import byte_tokenizer

        bt = byte_tokenizer(tokenizer)
        eot = bt.eot() if eot is None else eot
        if eot is None:
            raise ValueError("the tokenizer has no end-of-text token; pass eot=")
        lm = cls(max(bt.n_ids(), eot + 1), order=order, eot=eot, discount=discount)
        lm.fit(bt.encode(t) for t in texts)
        return lm

    def fit(self, sequences: Iterable[Sequence[int]]) -> "NGramLM":
        """Add token sequences to the counts (each gets end-of-text appended if ``eot`` is
        set). Can be called repeatedly."""
        n = self.order
        for seq in sequences:
            seq = [int(t) for t in seq]
            for t in seq:
                if not 0 <= t < self.n_vocab:
                    raise ValueError(f"token id {t} is outside the vocabulary of {self.n_vocab} ids")
            if self.eot is not None:
                seq = seq + [self.eot]
            ctx = [_BOS] * (n - 1) + seq
            for i in range(n - 1, len(ctx)):
                w = ctx[i]
                top = self._counts[n - 1][tuple(ctx[i - n + 1 : i])] if n > 1 else self._counts[0][()]
                top[w] += 1
            self.n_tokens += len(seq)
        self._tables = None
        return self

    def _build(self) -> list[dict[tuple, tuple]]:
        """Probability tables: for each order k (context length k), context -> (ids,
        discounted probability mass array, back-off weight)."""
        np = _np()
        n = self.order
        D = self.discount
        # continuation counts for lower orders: N1+(. ctx w)
        counts: list[dict[tuple, Counter]] = [None] * n  # type: ignore[list-item]
        counts[n - 1] = self._counts[n - 1] if n > 1 else self._counts[0]
        for k in range(n - 2, -1, -1):
            cont: dict[tuple, Counter] = defaultdict(Counter)
            for ctx, c in counts[k + 1].items():
                lower = ctx[1:]
                for w in c:
                    cont[lower][w] += 1
            counts[k] = cont
        tables = []
        for k in range(n):
            t = {}
            for ctx, c in counts[k].items():
                ids = np.fromiter(c.keys(), dtype=np.int64, count=len(c))
                cnt = np.fromiter(c.values(), dtype=np.float64, count=len(c))
                total = cnt.sum()
                t[ctx] = (ids, np.maximum(cnt - D, 0.0) / total, D * len(c) / total)
            tables.append(t)
        self._tables = tables
        return tables

    # ------------------------------------------------------------------ inference

    def logprobs(self, prefixes: Sequence[Sequence[int]]) -> Any:
        """Natural-log next-token probabilities after each prefix, shape
        ``(len(prefixes), n_vocab)``."""
        np = _np()
        tables = self._tables if self._tables is not None else self._build()
        n = self.order
        out = np.empty((len(prefixes), self.n_vocab), dtype=np.float64)
        uniform = 1.0 / self.n_vocab
        for r, prefix in enumerate(prefixes):
            ctx = ([_BOS] * (n - 1) + [int(t) for t in prefix[-(n - 1):]])[-(n - 1):] if n > 1 else []
            p = np.full(self.n_vocab, uniform)
            for k in range(n):
                c = tuple(ctx[len(ctx) - k :]) if k else ()
                hit = tables[k].get(c)
                if hit is None:
                    continue
                ids, mass, back = hit
                p *= back
                np.add.at(p, ids, mass) if len(ids) < 64 else _scatter_add(p, ids, mass)
            out[r] = np.log(p)
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, path: str) -> None:
        """Write the counts to a ``.npz`` file."""
        np = _np()
        arrays = {}
        for k, table in enumerate(self._counts):
            ctxs, ws, cs = [], [], []
            for ctx, c in table.items():
                for w, v in c.items():
                    ctxs.append(ctx)
                    ws.append(w)
                    cs.append(v)
            arrays[f"ctx{k}"] = np.asarray(ctxs, dtype=np.int64).reshape(len(ctxs), k if k else 0)
            arrays[f"w{k}"] = np.asarray(ws, dtype=np.int64)
            arrays[f"c{k}"] = np.asarray(cs, dtype=np.int64)
        meta = np.asarray([self.n_vocab, self.order, -1 if self.eot is None else self.eot, self.n_tokens])
        np.savez_compressed(path, meta=meta, discount=np.asarray([self.discount]), **arrays)

    @classmethod
    def load(cls, path: str) -> "NGramLM":
        """Read a model written by :meth:`save`."""
        np = _np()
        with np.load(path) as z:
            n_vocab, order, eot, n_tokens = (int(x) for x in z["meta"])
            lm = cls(n_vocab, order=order, eot=None if eot < 0 else eot, discount=float(z["discount"][0]))
            for k in range(order):
                ctxs, ws, cs = z[f"ctx{k}"], z[f"w{k}"], z[f"c{k}"]
                table = lm._counts[k]
                for ctx, w, c in zip(ctxs, ws, cs):
                    table[tuple(int(x) for x in ctx)][int(w)] = int(c)
            lm.n_tokens = n_tokens
        return lm


def _scatter_add(p: Any, ids: Any, mass: Any) -> None:
    # ids are unique within one context, so fancy-index addition is exact
    p[ids] += mass
