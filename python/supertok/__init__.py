"""supertok: fast, exact byte-level BPE tokenizers.

* a drop-in, offline replacement for tiktoken (:func:`get_encoding`, :class:`Encoding`);
* see the README for the full tour.
"""

from supertok._core import __version__
from supertok import metrics, mixture  # noqa: F401  (science toolkit submodules; import numpy lazily)
from supertok.alignment import align
from supertok.bytelm import ByteLM
from supertok.core import Encoding
from supertok.load import dump_tiktoken_bpe, load_tiktoken_bpe
from supertok.model import encoding_for_model, encoding_name_for_model
from supertok.registry import get_encoding, list_encoding_names
from supertok.stochastic import split_table, stochastok, stochastok_batch
from supertok.tokenizer import Tokenizer
from supertok.train import (
    PretokenCounts,
    count_pretokens,
    count_pretokens_from_iterator,
    train,
    train_from_counts,
    train_from_iterator,
)

__all__ = [
    "__version__",
    "Encoding",
    "Tokenizer",
    "ByteLM",
    "get_encoding",
    "list_encoding_names",
    "encoding_for_model",
    "encoding_name_for_model",
    "load_tiktoken_bpe",
    "dump_tiktoken_bpe",
    "align",
    "metrics",
    "mixture",
    "PretokenCounts",
    "count_pretokens",
    "count_pretokens_from_iterator",
    "train",
    "train_from_counts",
    "train_from_iterator",
    "stochastok",
    "stochastok_batch",
    "split_table",
]
