"""The command line: `supertok demo` runs on the embedded default corpus."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_on_embedded_corpus(tmp_path) -> None:
    png = tmp_path / "demo.png"
    out = subprocess.run(
        [
            sys.executable, "-m", "supertok", "demo", "--max-bytes", "300000", "--threads", "2",
            "--vocab-sizes", "512,1024", "--plot", str(png),
        ],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "standard library" in out
    for name in ("r50k_base", "cl100k_base", "o200k_base"):
        assert name in out
    assert "identical ids: NO" not in out
    # the training part: one BPE and one SuperBPE row per vocabulary size
    rows = [r for r in (line.split() for line in out.splitlines()) if r[:1] in (["BPE"], ["SuperBPE"]) and r[1].isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("BPE", "512"), ("SuperBPE", "512"), ("BPE", "1024"), ("SuperBPE", "1024")]
    bpt = {(r[0], r[1]): float(r[4]) for r in rows}
    assert bpt[("BPE", "1024")] > bpt[("BPE", "512")] > 1.0
    # superword tokens compress held-out code better than BPE at equal vocabulary
    assert bpt[("SuperBPE", "1024")] > bpt[("BPE", "1024")]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_with_data_file(tmp_path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("hello world\n" * 100)
    from supertok.cli import main

    assert main(["demo", "--data", str(f), "--vocab-sizes", "300", "--plot", ""]) == 0


def test_help_and_errors(capsys) -> None:
    from supertok.cli import main

    assert main([]) == 2
    assert main(["demo", "--data", "/nonexistent/file.txt"]) == 1
    assert "error" in capsys.readouterr().err
    assert main(["demo", "--max-bytes", "10000", "--vocab-sizes", "100"]) == 1
    assert "--vocab-sizes must be > 256" in capsys.readouterr().err
