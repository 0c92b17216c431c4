"""The bundled vocabularies are byte-identical to the reference files (SHA256SUMS)."""

from __future__ import annotations

import hashlib
import os

import pytest

import supertok
from conftest import VOCAB_DIR
from supertok.registry import DATA_DIR

# the hashes tiktoken itself checks for these files
EXPECTED = {
    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "r50k_base.tiktoken": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
}


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_bundled_file_hash(file: str) -> None:
    assert _sha(os.path.join(DATA_DIR, file)) == EXPECTED[file]


def test_bundled_sha256sums_file() -> None:
    with open(os.path.join(DATA_DIR, "SHA256SUMS")) as f:
        listed = dict(reversed(line.split()) for line in f if line.strip())
    assert listed == EXPECTED


def test_matches_shared_sha256sums() -> None:
    sums = os.path.join(VOCAB_DIR, "SHA256SUMS")
    if not os.path.exists(sums):
        pytest.skip("../shared/vocab not present")
    with open(sums) as f:
        shared = dict(reversed(line.split()) for line in f if line.strip())
    assert shared["cl100k_base.tiktoken"] == EXPECTED["cl100k_base.tiktoken"]
    assert shared["o200k_base.tiktoken"] == EXPECTED["o200k_base.tiktoken"]
    assert shared["gpt2.tiktoken"] == EXPECTED["r50k_base.tiktoken"]


@pytest.mark.parametrize(
    "name,n_vocab,eot",
    [("cl100k_base", 100277, 100257), ("o200k_base", 200019, 199999), ("r50k_base", 50257, 50256), ("gpt2", 50257, 50256)],
)
def test_encoding_shapes(name: str, n_vocab: int, eot: int) -> None:
    enc = supertok.get_encoding(name)
    assert enc.name == name
    assert enc.n_vocab == n_vocab
    assert enc.eot_token == eot
    assert enc.is_special_token(eot)
    assert not enc.is_special_token(0)


def test_no_network_modules_imported() -> None:
    import subprocess
    import sys

    prog = (
        "import sys, supertok\n"
        "e = supertok.get_encoding('o200k_base'); e.encode('hi')\n"
        "bad = [m for m in ('requests', 'urllib.request', 'http.client', 'blobfile') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.check_call([sys.executable, "-c", prog])
