"""The command line: `supertok demo` runs on the embedded default corpus."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_on_embedded_corpus() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "supertok", "demo", "--max-bytes", "200000", "--threads", "2"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "standard library" in out
    for name in ("r50k_base", "cl100k_base", "o200k_base"):
        assert name in out
    assert "identical ids: NO" not in out


def test_demo_with_data_file(tmp_path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("hello world\n" * 100)
    from supertok.cli import main

    assert main(["demo", "--data", str(f)]) == 0


def test_help_and_errors(capsys) -> None:
    from supertok.cli import main

    assert main([]) == 2
    assert main(["demo", "--data", "/nonexistent/file.txt"]) == 1
    assert "error" in capsys.readouterr().err
