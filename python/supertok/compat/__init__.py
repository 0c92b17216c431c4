"""Drop-in shims: ``import supertok.compat.tiktoken as tiktoken``."""
