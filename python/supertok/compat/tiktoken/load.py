"""``tiktoken.load`` stand-in (local files only)."""

from supertok.load import check_hash, dump_tiktoken_bpe, load_tiktoken_bpe, read_file


def read_file_cached(blobpath: str, expected_hash: "str | None" = None) -> bytes:
    """Read a local file (there is no download cache: supertok never downloads)."""
    data = read_file(blobpath)
    if expected_hash is not None and not check_hash(data, expected_hash):
        raise ValueError(f"Hash mismatch for {blobpath} (expected {expected_hash}).")
    return data


__all__ = ["load_tiktoken_bpe", "dump_tiktoken_bpe", "read_file", "read_file_cached", "check_hash"]
