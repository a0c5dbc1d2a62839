"""Every Python block of the README runs, so the documentation cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["./scripts/run", "./scripts/test"]
    root = README.parent
    assert all(os.access(root / c, os.X_OK) for c in commands)


def test_python_examples_run(database_url: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for block in blocks:
        env = {**os.environ, "EVENTSTORE_DATABASE_URL": database_url}
        result = subprocess.run(
            [sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
