"""`supertok eval`: metrics table, premium table, plot and JSON output."""

from __future__ import annotations

import json
import math

import pytest

import supertok
from supertok import metrics as M
from supertok.cli import main

pytest.importorskip("numpy")


@pytest.fixture()
def files(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\nSecond line, 12345.\n" * 50, encoding="utf-8")
    par = tmp_path / "p.jsonl"
    rows = [
        {"en": "Open the file", "de": "Datei öffnen", "ja": "ファイルを開く"},
        {"en": "Save changes?", "de": "Änderungen speichern?", "ja": "変更を保存しますか?"},
        {"en": "Quit", "de": "Beenden"},
    ]
    par.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return text, par, rows


def test_eval_tables_and_json(files, tmp_path, capsys) -> None:
    text, par, rows = files
    tj = tmp_path / "tokenizer.json"
    supertok.Tokenizer.from_tiktoken(supertok.get_encoding("gpt2")).save(tj)
    out_json = tmp_path / "r.json"
    assert main(["eval", "cl100k_base", str(tj), "--corpus", str(text), str(par), "--min-rows", "2",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "## Corpus metrics" in out and "## Token premiums" in out
    assert "| cl100k_base | t.txt |" in out
    res = json.loads(out_json.read_text())
    cl = supertok.get_encoding("cl100k_base")
    assert res["metrics"]["cl100k_base"][str(text)]["tokens"] == M.corpus_token_count(cl, text.read_text())
    prem = res["premiums"][str(par)]["token_premium"]["cl100k_base"]
    assert set(prem) == {"de", "en", "ja"}  # "Quit" row: de has 3 rows with en, ja 2
    assert prem == M.token_premium(cl, rows, languages=["de", "en", "ja"])
    gp = res["premiums"][str(par)]["token_premium"][tj.parent.name]  # tokenizer.json is named after its folder
    assert gp == M.token_premium(supertok.get_encoding("gpt2"), rows, languages=["de", "en", "ja"])
    assert math.isclose(res["premiums"][str(par)]["byte_premium"]["de"], M.byte_premium(rows)["de"])


def test_eval_plot(files, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    _, par, _ = files
    png = tmp_path / "prem.png"
    assert main(["eval", "cl100k_base", "o200k_base", "--corpus", str(par), "--languages", "de,ja", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_errors(files, tmp_path, capsys) -> None:
    text, par, _ = files
    assert main(["eval", "no_such_tokenizer", "--corpus", str(text)]) == 1
    assert "neither a bundled encoding" in capsys.readouterr().err
    assert main(["eval", "gpt2", "--corpus", str(text), "--plot", str(tmp_path / "x.png")]) == 1
    assert "parallel" in capsys.readouterr().err
    assert main(["eval", "gpt2", "--corpus", str(tmp_path / "missing.txt")]) == 1
    assert main(["eval", "gpt2", "--corpus", str(par), "--ref", "xx"]) == 1
