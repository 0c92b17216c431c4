"""``tiktoken.core`` stand-in."""

from supertok.core import Encoding, raise_disallowed_special_token

__all__ = ["Encoding", "raise_disallowed_special_token"]
