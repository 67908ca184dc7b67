"""The tree passes the linter (unused imports, undefined names, likely bugs)."""
import shutil
import subprocess
import sys

import pytest

from skylane.settings import REPO_ROOT


@pytest.mark.skipif(not shutil.which("ruff", path=str(REPO_ROOT / ".venv" / "bin")) and not shutil.which("ruff"),
                    reason="ruff not installed")
def test_ruff_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO_ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
