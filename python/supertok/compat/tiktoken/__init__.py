"""A stand-in for the ``tiktoken`` package, backed by supertok.

``import supertok.compat.tiktoken as tiktoken`` and keep your code unchanged: the same
functions, classes and submodules (``core``, ``load``, ``model``, ``registry``), the same
ids. Only the bundled encodings are available (cl100k_base, o200k_base, r50k_base, gpt2)
and nothing is ever downloaded.
"""

from supertok.compat.tiktoken import core, load, model, registry
from supertok.compat.tiktoken.core import Encoding
from supertok.compat.tiktoken.model import encoding_for_model, encoding_name_for_model
from supertok.compat.tiktoken.registry import get_encoding, list_encoding_names

__version__ = "0.14.0+supertok"

__all__ = [
    "Encoding",
    "get_encoding",
    "list_encoding_names",
    "encoding_for_model",
    "encoding_name_for_model",
    "core",
    "load",
    "model",
    "registry",
]
