"""Model name -> encoding name (tiktoken's table, for the models whose encoding is known)."""

from __future__ import annotations

from supertok.core import Encoding
from supertok.registry import ENCODING_CONSTRUCTORS, get_encoding

__all__ = ["encoding_for_model", "encoding_name_for_model", "MODEL_TO_ENCODING", "MODEL_PREFIX_TO_ENCODING"]

MODEL_PREFIX_TO_ENCODING: dict[str, str] = {
    "o1-": "o200k_base",
    "o3-": "o200k_base",
    "o4-mini-": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-4.5-": "o200k_base",
    "gpt-4.1-": "o200k_base",
    "chatgpt-4o-": "o200k_base",
    "gpt-4o-": "o200k_base",
    "gpt-4-": "cl100k_base",
    "gpt-3.5-turbo-": "cl100k_base",
    "gpt-35-turbo-": "cl100k_base",
    "gpt-oss-": "o200k_harmony",
    "ft:gpt-4o": "o200k_base",
    "ft:gpt-4": "cl100k_base",
    "ft:gpt-3.5-turbo": "cl100k_base",
    "ft:davinci-002": "cl100k_base",
    "ft:babbage-002": "cl100k_base",
}

_R50K_MODELS = [
    "text-davinci-001", "text-curie-001", "text-babbage-001", "text-ada-001",
    "davinci", "curie", "babbage", "ada",
    "text-similarity-davinci-001", "text-similarity-curie-001", "text-similarity-babbage-001",
    "text-similarity-ada-001", "text-search-davinci-doc-001", "text-search-curie-doc-001",
    "text-search-babbage-doc-001", "text-search-ada-doc-001", "code-search-babbage-code-001",
    "code-search-ada-code-001",
]
_P50K_MODELS = [
    "text-davinci-003", "text-davinci-002", "code-davinci-002", "code-davinci-001",
    "code-cushman-002", "code-cushman-001", "davinci-codex", "cushman-codex",
]

MODEL_TO_ENCODING: dict[str, str] = {
    "o1": "o200k_base",
    "o3": "o200k_base",
    "o4-mini": "o200k_base",
    "gpt-5": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-4o": "o200k_base",
    "gpt-4": "cl100k_base",
    "gpt-3.5-turbo": "cl100k_base",
    "gpt-3.5": "cl100k_base",
    "gpt-35-turbo": "cl100k_base",
    "davinci-002": "cl100k_base",
    "babbage-002": "cl100k_base",
    "text-embedding-ada-002": "cl100k_base",
    "text-embedding-3-small": "cl100k_base",
    "text-embedding-3-large": "cl100k_base",
    **{m: "r50k_base" for m in _R50K_MODELS},
    **{m: "p50k_base" for m in _P50K_MODELS},
    "text-davinci-edit-001": "p50k_edit",
    "code-davinci-edit-001": "p50k_edit",
    "gpt2": "gpt2",
    "gpt-2": "gpt2",
}


def encoding_name_for_model(model_name: str) -> str:
    """Name of the encoding a model uses (tiktoken's table).

    Raises:
        KeyError: the model name is not recognised.
    """
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be str, not {type(model_name).__name__}")
    if model_name in MODEL_TO_ENCODING:
        return MODEL_TO_ENCODING[model_name]
    for prefix, name in MODEL_PREFIX_TO_ENCODING.items():
        if model_name.startswith(prefix):
            return name
    raise KeyError(
        f"Could not automatically map {model_name} to a tokeniser. "
        "Please use `supertok.get_encoding` to explicitly get the tokeniser you expect."
    )


class EncodingNotBundledError(ValueError, KeyError):
    """The model is known but its encoding is not bundled with supertok."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def encoding_for_model(model_name: str) -> Encoding:
    """The encoding a model uses.

    Raises:
        KeyError: unknown model name.
        EncodingNotBundledError (a ValueError and KeyError): the model's encoding
            (e.g. ``p50k_base``) is not bundled; the message names it.
    """
    name = encoding_name_for_model(model_name)
    if name not in ENCODING_CONSTRUCTORS:
        raise EncodingNotBundledError(
            f"Model {model_name!r} uses the encoding {name!r}, which is not bundled with supertok "
            f"(bundled: {', '.join(ENCODING_CONSTRUCTORS)}). Load its .tiktoken file with "
            "supertok.load_tiktoken_bpe() and build a supertok.Encoding."
        )
    return get_encoding(name)
