"""Token language models for :class:`supertok.ByteLM`.

* :class:`NGramLM` — a trainable token n-gram LM (interpolated Kneser-Ney) in numpy;
* :class:`LlamaCppLM` — any GGUF causal LM through ``llama-cpp-python`` (optional extra
  ``supertok[llama]``).
"""

from supertok.models.ngram import NGramLM

__all__ = ["NGramLM", "LlamaCppLM"]


def __getattr__(name: str):
    if name == "LlamaCppLM":
        from supertok.models.llama import LlamaCppLM

        return LlamaCppLM
    raise AttributeError(f"module 'supertok.models' has no attribute {name!r}")
