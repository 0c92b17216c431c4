"""Shared helpers for the HF tokenizer.json tests: tokenizers trained by HF ``tokenizers``
itself (its BpeTrainer) on slices of the shared corpora, in the configurations of issue 4,
and the differential comparison against HF."""

from __future__ import annotations

import functools
import json
import os
import random

import pytest

from conftest import CORPUS_DIR

tokenizers = pytest.importorskip("tokenizers")

CL100K_TIKTOKEN = (
    r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"
    r"|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
)
LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
DIGIT_GROUPS = r"(?=(\d{3})+(?!\d))"

CONFIGS = ["gpt2", "gpt4", "llama3", "superbpe", "special", "prefix"]

SPECIALS = ["<|endoftext|>", "<s>", "</s>"]


def corpus_text(max_bytes: int = 400_000, seed: int = 0) -> str | None:
    """A training slice: the start of en.txt and code.txt and of a few languages."""
    parts = []
    budget = {"en.txt": max_bytes // 3, "code.txt": max_bytes // 4}
    for name, n in budget.items():
        p = os.path.join(CORPUS_DIR, name)
        if not os.path.exists(p):
            return None
        with open(p, encoding="utf-8") as f:
            parts.append(f.read(n))
    ml = os.path.join(CORPUS_DIR, "multilingual")
    if os.path.isdir(ml):
        for lang in ["de", "ru", "ja", "zh_CN", "ko", "el", "ta", "vi"]:
            p = os.path.join(ml, f"{lang}.txt")
            if os.path.exists(p):
                with open(p, encoding="utf-8") as f:
                    parts.append(f.read(max_bytes // 24))
    return "\n".join(parts)


def _lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln]


@functools.lru_cache(maxsize=None)
def trained_json(config: str) -> str:
    """tokenizer.json text of an HF-trained tokenizer in ``config``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers as pt
    from tokenizers import processors, trainers

    text = corpus_text()
    if text is None:
        pytest.skip("shared corpus not present")
    model = models.BPE(ignore_merges=(config == "llama3"))
    tok = Tokenizer(model)
    bl = pt.ByteLevel(add_prefix_space=False, use_regex=False)
    if config == "gpt2":
        tok.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif config == "gpt4":
        tok.pre_tokenizer = pt.Sequence([pt.Split(Regex(CL100K_TIKTOKEN), "isolated"), bl])
    elif config == "llama3":
        tok.pre_tokenizer = pt.Sequence([pt.Split(Regex(LLAMA3), "isolated"), bl])
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    elif config == "superbpe":
        tok.pre_tokenizer = pt.Sequence(
            [pt.Digits(individual_digits=False), pt.Split(Regex(DIGIT_GROUPS), "isolated"), bl]
        )
    elif config == "special":
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pt.ByteLevel(add_prefix_space=False, use_regex=True)
    elif config == "prefix":
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase()])
        tok.pre_tokenizer = pt.Sequence(
            [pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=True, use_regex=True)]
        )
        tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=True)
    else:  # pragma: no cover
        raise ValueError(config)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=3000 if config != "superbpe" else 4000,
        min_frequency=2,
        special_tokens=SPECIALS if config == "special" else [],
        initial_alphabet=pt.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_lines(text), trainer=trainer)
    if config == "special":
        tok.add_tokens(
            [
                AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=False, special=False),
                AddedToken("hello world", single_word=True, normalized=True),
                AddedToken("ﬁle", normalized=True),
                AddedToken("<tool>", special=True, normalized=False),
            ]
        )
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=True),
                processors.TemplateProcessing(
                    single="<s> $A </s>",
                    pair="<s> $A </s> $B:1 </s>:1",
                    special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
                ),
            ]
        )
    return tok.to_str()


@functools.lru_cache(maxsize=None)
def hf(config: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(trained_json(config))


@functools.lru_cache(maxsize=None)
def ours(config: str):
    import supertok

    return supertok.Tokenizer.from_str(trained_json(config))


def char_to_byte_offsets(text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Char offsets → byte offsets into ``text.encode()``."""
    pos = [0]
    for ch in text:
        pos.append(pos[-1] + len(ch.encode("utf-8")))
    return [(pos[a], pos[b]) for a, b in offsets]


def compare(config: str, text: str, *, offsets: bool = True, decode: bool = True) -> None:
    """Assert that supertok and HF agree on ``text`` (ids, offsets, decode)."""
    h = hf(config)
    o = ours(config)
    for add in (True, False):
        e = h.encode(text, add_special_tokens=add)
        ids = o.encode(text, add_special_tokens=add)
        assert ids == e.ids, (config, add, text[:200])
        if offsets:
            ids2, offs = o.encode_with_offsets(text, add, char_offsets=True)
            assert ids2 == e.ids
            assert offs == [tuple(x) for x in e.offsets], (config, text[:200])
            _, boffs = o.encode_with_offsets(text, add)
            assert boffs == char_to_byte_offsets(text, e.offsets), (config, text[:200])
    if decode:
        ids = h.encode(text).ids
        for skip in (False, True):
            assert o.decode(ids, skip_special_tokens=skip) == h.decode(ids, skip_special_tokens=skip)


def documents(name: str, max_docs: int | None, seed: int = 0, max_bytes: int = 4096) -> list[str]:
    """Documents (chunks at line boundaries) of a corpus file; a random sample of
    ``max_docs`` of them, or all when ``max_docs`` is None."""
    p = os.path.join(CORPUS_DIR, name)
    if not os.path.exists(p):
        pytest.skip(f"corpus {p} not present")
    with open(p, encoding="utf-8") as f:
        text = f.read()
    docs: list[str] = []
    cur: list[str] = []
    n = 0
    for line in text.splitlines(keepends=True):
        b = len(line.encode("utf-8"))
        if cur and n + b > max_bytes:
            docs.append("".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += b
    if cur:
        docs.append("".join(cur))
    if max_docs is not None and len(docs) > max_docs:
        rng = random.Random(seed)
        docs = rng.sample(docs, max_docs)
    return docs


def json_obj(config: str) -> dict:
    return json.loads(trained_json(config))
