"""The README's Python example runs as written (from a copy of the project's examples)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"### From Python\n\n```python\n(.*?)```", readme, re.S)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last == "('out/ai-engineering-building-applications-with-foundation-models.apkg',) 53 18"
    assert (tmp_path / "out" / "ai-engineering-building-applications-with-foundation-models.apkg").is_file()
