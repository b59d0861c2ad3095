import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from waiverdesk.core import verifier


@pytest.fixture
def standalone(tmp_path):
    """The verifier copied out of the project and run in isolated mode: it cannot import
    waiverdesk, only the standard library and `cryptography`."""
    copy = tmp_path / "auditor" / "verifier.py"
    copy.parent.mkdir()
    shutil.copy(verifier.__file__, copy)

    def run(what: str, path: Path, *extra: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-I", str(copy), what, str(path), *extra],
            capture_output=True,
            text=True,
            cwd=copy.parent,
            timeout=60,
        )
        return done.returncode, done.stdout.strip()

    return run
