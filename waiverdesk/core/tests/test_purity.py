"""The policy core stays pure: no Django, so it runs and tests without a database."""

import ast
from pathlib import Path

CORE = Path(__file__).parents[1]


def test_the_core_imports_nothing_from_django_or_the_apps():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    assert not name.startswith(("django", "waiverdesk.")) or name.startswith(
                        "waiverdesk.core"
                    ), f"{path.name} imports {name}"
