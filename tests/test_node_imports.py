"""A node module imports `flowboard.sdk` and the libraries it wraps, nothing else of Flowboard, and never another node
module (architecture.md): shared helpers belong in the SDK. Checked on the source of every built-in node module."""

from __future__ import annotations

import ast
from pathlib import Path

NODES = Path(__file__).resolve().parent.parent / "nodes"
#: Found when this check was written, still to be moved into the SDK (each is its owner's to undo): no new ones.
KNOWN: dict[str, list[str]] = {}


def flowboard_imports(path: Path) -> list[str]:
    """What a module imports from Flowboard or from sibling node modules (relative imports), as written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0:
                found.append("." * node.level + module)
            elif module == "nodes" or module.startswith(("flowboard", "nodes.")):
                found.append(module)
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.split(".")[0] in ("flowboard", "nodes"))
    return found


def test_node_modules_import_only_the_sdk() -> None:
    modules = sorted(p for p in NODES.glob("*.py") if p.name != "__init__.py")
    assert len(modules) > 10
    wrong = {p.name: bad for p in modules if (bad := [m for m in flowboard_imports(p) if m != "flowboard.sdk"])}
    assert wrong == KNOWN, f"node modules importing more than flowboard.sdk: {wrong} (known: {KNOWN})"


def test_the_check_sees_a_node_importing_another(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from flowboard.sdk import NodeType\nfrom .chat import post_messages\nimport flowboard.store\n"
                      "from flowboard import expressions\n")
    assert flowboard_imports(module) == ["flowboard.sdk", ".chat", "flowboard.store", "flowboard"]
