"""The import picture of architecture.md, enforced: walk every module's imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "openclaw_multi"

# Which top-level subpackages each subpackage may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "cli": {
        "client",
        "supervisor",
        "gateway",
        "dashboard",
        "protocol",
        "profiles",
        "errors",
        "runtime",
    },
    "client": {"protocol", "profiles", "errors", "runtime"},
    "dashboard": {"client", "protocol", "profiles", "errors", "runtime"},
    "supervisor": {"protocol", "profiles", "errors", "runtime", "faults"},
    "gateway": {"protocol", "profiles", "errors", "runtime", "faults"},
    "protocol": {"errors"},
    "profiles": {"errors"},
    "errors": set(),
    "runtime": set(),
    "faults": set(),
    "__init__": set(),
}

# Modules that must stay pure: decided with plain values, tested without loops or processes.
PURE = [
    "protocol",
    "profiles/names.py",
    "profiles/paths.py",
    "profiles/ports.py",
    "supervisor/states.py",
    "supervisor/policy.py",
    "supervisor/ssh.py",
]
IMPURE_MODULES = {"asyncio", "socket", "subprocess", "psutil", "filelock", "uvloop", "picows"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                names.add(mod)
                if not node.module:
                    names.update(f"{mod}.{a.name}" for a in node.names)
            elif node.module:
                names.add(node.module)
    return names


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_import_edges_follow_architecture() -> None:
    bad = []
    for path in PACKAGE.rglob("*.py"):
        owner = _top(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "openclaw_multi" or len(parts) < 2:
                continue
            target = parts[1]
            if target == "__version__":  # the package root only carries the version
                continue
            if target != owner and target not in ALLOWED.get(owner, set()):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, "imports against architecture.md:\n" + "\n".join(sorted(bad))


def test_pure_modules_import_no_io() -> None:
    bad = []
    for entry in PURE:
        target = PACKAGE / entry
        files = list(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            if not path.exists():
                continue
            for name in _imports(path):
                if name.split(".")[0] in IMPURE_MODULES:
                    bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not bad, "pure modules doing I/O:\n" + "\n".join(sorted(bad))
