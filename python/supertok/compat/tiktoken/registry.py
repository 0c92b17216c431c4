"""``tiktoken.registry`` stand-in."""

from supertok.registry import ENCODING_CONSTRUCTORS, _ENCODINGS as ENCODINGS, get_encoding, list_encoding_names

__all__ = ["ENCODINGS", "ENCODING_CONSTRUCTORS", "get_encoding", "list_encoding_names"]
