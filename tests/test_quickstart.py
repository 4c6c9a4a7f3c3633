"""The README's quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = re.compile(r"^#{1,6}\s.*quick\s?start", re.IGNORECASE | re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _quickstart_code(text: str) -> str:
    heading = HEADING.search(text)
    if heading is None:
        pytest.fail(f"{README} has no heading containing 'Quick start'")
    block = PYTHON_BLOCK.search(text, heading.end())
    if block is None:
        pytest.fail(f"{README} has no ```python block after the heading {heading.group(0).strip()!r}")
    return block.group(1)


def test_readme_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not README.is_file():
        pytest.fail(f"{README} does not exist yet: the quick start cannot be checked")
    code = _quickstart_code(README.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)  # whatever the example writes lands in a scratch directory
    exec(compile(code, f"{README.name}:quick start", "exec"), {"__name__": "__quickstart__"})
