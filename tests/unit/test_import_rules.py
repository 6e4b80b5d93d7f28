"""Import direction, read from the source: every module under ``ex4d/`` is parsed with ``ast`` (nothing is
imported), and every import it holds, module-level or inside a function, is checked against one table.

``ALLOWED`` below is the one place that says what each folder may import; docs/architecture.md shows the same
table (a test checks they agree), and the layer order is derived from it (a folder sits above everything it may
import, so the table must have no cycle). Three more rules:

* Hydra and OmegaConf only in ``runners`` and ``app`` (configuration picks and connects components; every stage
  below is usable without it); Lightning only in ``lightning``, ``training``, ``evaluation`` and ``runners``.
* Runners never import each other: an entry runner (``infer``, ``train``, ...) imports only the shared runner
  modules (``RUNNER_SHARED``: stages, shards, common, validate, cli).
* ``ex4d/__init__.py`` imports no ex4d folder, so ``import ex4d`` (for ``__version__``) is allowed anywhere.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ex4d"
DOC = ROOT / "docs" / "architecture.md"

_BELOW_DATA = {"utils", "io", "cameras", "depth", "mesh", "render", "masking"}
_BELOW_PIPELINES = _BELOW_DATA | {"data", "model"}

# folder -> the other ex4d folders its modules may import (a folder may always import itself).
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "io": {"utils"},
    "cameras": {"utils"},
    "mesh": {"utils", "cameras"},
    "depth": {"utils", "io", "cameras"},
    "render": {"utils", "cameras", "mesh"},
    "masking": {"utils", "io", "cameras", "mesh", "render"},
    "metrics": {"utils", "io", "cameras"},
    "model": {"utils", "io"},
    "data": _BELOW_DATA - {"data"},
    "pipelines": _BELOW_PIPELINES,
    "lightning": _BELOW_PIPELINES | {"pipelines"},
    "training": _BELOW_PIPELINES | {"pipelines", "lightning", "metrics"},
    "evaluation": _BELOW_PIPELINES | {"pipelines", "lightning", "metrics"},
    "runners": _BELOW_PIPELINES | {"pipelines", "lightning", "training", "metrics", "evaluation"},
    "app": _BELOW_PIPELINES | {"pipelines", "lightning", "training", "metrics", "evaluation", "runners"},
}

# third-party package -> the only ex4d folders that may import it
EXTERNAL_ONLY_IN: dict[str, set[str]] = {
    "hydra": {"runners", "app"},
    "omegaconf": {"runners", "app"},
    "lightning": {"lightning", "training", "evaluation", "runners"},
    "pytorch_lightning": {"lightning", "training", "evaluation", "runners"},
}

# runner modules any runner may import; every other module of ex4d/runners is an entry runner
RUNNER_SHARED = {"__init__", "common", "stages", "shards", "validate", "cli"}


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name, e.g. "ex4d.runners.infer" or "hydra.utils"
    line: int


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(dotted: str, root: Path) -> bool:
    """``dotted`` (ex4d.x.y) names a module or package of the tree at ``root``."""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = root / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in ``path`` (any depth: module level, functions, ``if TYPE_CHECKING``), as absolute names;
    ``from pkg import name`` counts as ``pkg.name`` when that is a module. ``importlib.import_module("...")`` and
    ``__import__("...")`` with a literal name count too."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                is_module = mod.split(".")[0] == root.name and _exists(sub, root)
                found.append(Import(sub if is_module else mod, node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(Import(node.args[0].value, node.lineno))
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import of the package at ``root`` that breaks a rule, as ``file:line: why``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        folder = rel.parts[0] if len(rel.parts) > 1 else None  # None: a module directly under ex4d/
        where = f"{path.relative_to(root.parent)}"
        if folder is not None and folder not in ALLOWED:
            out.append(f"{where}: folder ex4d/{folder}/ has no row in ALLOWED (tests/unit/test_import_rules.py) "
                       "and docs/architecture.md: place it in the layers")
            continue
        for imp in imports_of(path, root):
            parts = imp.module.split(".")
            if parts[0] == root.name:
                if len(parts) == 1:  # import ex4d: only its __init__, which imports no folder
                    continue
                target = parts[1]
                if folder is None:
                    out.append(f"{where}:{imp.line}: ex4d/{rel} imports {imp.module}; the package root imports "
                               "no ex4d folder")
                elif target != folder and target not in ALLOWED[folder]:
                    out.append(f"{where}:{imp.line}: {folder} may not import {target} ({imp.module}); "
                               f"{folder} may import {sorted(ALLOWED[folder]) or 'nothing of ex4d'}")
                elif folder == target == "runners" and len(parts) > 2:
                    own = rel.with_suffix("").name
                    if parts[2] not in RUNNER_SHARED and own not in RUNNER_SHARED and parts[2] != own:
                        out.append(f"{where}:{imp.line}: runner {own} imports runner {parts[2]}; shared pieces go in "
                                   f"ex4d/runners/{{{', '.join(sorted(RUNNER_SHARED - {'__init__'}))}}}.py")
                    elif parts[2] not in RUNNER_SHARED and own in RUNNER_SHARED:
                        out.append(f"{where}:{imp.line}: shared runner module {own} imports entry runner "
                                   f"{parts[2]}")
            elif parts[0] in EXTERNAL_ONLY_IN and folder not in EXTERNAL_ONLY_IN[parts[0]]:
                out.append(f"{where}:{imp.line}: {folder or 'ex4d root'} imports {imp.module}; only "
                           f"{sorted(EXTERNAL_ONLY_IN[parts[0]])} may import {parts[0]}")
    return out


def layer_ranks() -> dict[str, int]:
    """Layer of each folder: 0 for folders that import no other, else one above the highest folder it may import.
    Raises ValueError on a cycle in ``ALLOWED``."""
    ranks: dict[str, int] = {}

    def rank(folder: str, path: tuple[str, ...]) -> int:
        if folder in path:
            raise ValueError(f"cycle in ALLOWED: {' -> '.join(path + (folder,))}")
        if folder not in ranks:
            ranks[folder] = 1 + max((rank(d, path + (folder,)) for d in ALLOWED[folder]), default=-1)
        return ranks[folder]

    for folder in ALLOWED:
        rank(folder, ())
    return ranks


def test_every_ex4d_folder_has_a_row():
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders - set(ALLOWED) == set(), "a new folder: add its row to ALLOWED and to docs/architecture.md"


def test_the_table_is_a_layer_order():
    ranks = layer_ranks()
    for folder, allowed in ALLOWED.items():
        assert folder not in allowed
        assert all(ranks[d] < ranks[folder] for d in allowed), folder
    assert ranks["utils"] == 0 and max(ranks, key=ranks.get) == "app"
    assert ranks["data"] < ranks["pipelines"] < ranks["runners"] and ranks["model"] < ranks["pipelines"]


def test_no_import_runs_up_a_layer():
    found = violations()
    assert not found, "imports against the layer rules (docs/architecture.md):\n" + "\n".join(found)


def _plant(root: Path, files: dict[str, str]) -> Path:
    """A fake ``ex4d`` package at ``root/ex4d`` holding ``files`` (relative path -> source) and every folder of
    the table."""
    pkg = root / "ex4d"
    for folder in ALLOWED:
        (pkg / folder).mkdir(parents=True, exist_ok=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text('__version__ = "0"\n')
    for rel, src in files.items():
        (pkg / rel).write_text(src)
    return pkg


CLEAN = {
    "pipelines/recon.py": "import torch\nfrom ex4d.depth import base\nfrom ..mesh import dwmesh\n",
    "runners/stages.py": "from ex4d.runners.common import run_dir\nfrom ex4d.pipelines import recon\n",
    "runners/common.py": "import ex4d\nfrom omegaconf import DictConfig\n",
    "runners/infer.py": "from ex4d.runners import stages\nfrom . import common\nimport hydra\n",
    "app/session.py": "def f():\n    from ex4d.runners.infer import run_infer\n",
    "depth/base.py": "", "mesh/dwmesh.py": "",
}


@pytest.mark.parametrize("rel, src, why", [
    ("pipelines/lazy.py", "def f():\n    from ex4d.runners.stages import run_recon\n", "pipelines may not import runners"),
    ("pipelines/conf.py", "import torch\nfrom omegaconf import DictConfig\n", "pipelines imports omegaconf"),
    ("pipelines/lit.py", "def f():\n    import lightning as L\n", "pipelines imports lightning"),
    ("data/up.py", "from ex4d.training.module import encode_clip\n", "data may not import training"),
    ("depth/rel.py", "from ..render import base\n", "depth may not import render"),
    ("model/dyn.py", "import importlib\nm = importlib.import_module('ex4d.pipelines.generate')\n",
     "model may not import pipelines"),
    ("runners/train.py", "from ex4d.runners.infer import run_many\n", "runner train imports runner infer"),
    ("runners/evaluate.py", "from ex4d.runners import infer\n", "runner evaluate imports runner infer"),
    ("runners/shards.py", "def f():\n    from ex4d.runners.train import x\n", "shared runner module shards imports"),
    ("__init__.py", "from ex4d.utils import errors\n", "the package root imports no ex4d folder"),
])
def test_a_planted_violation_is_caught(tmp_path, rel, src, why):
    assert violations(_plant(tmp_path / "clean", CLEAN)) == []
    found = violations(_plant(tmp_path / "bad", {**CLEAN, rel: src}))
    assert len(found) == 1 and why in found[0] and found[0].startswith(f"ex4d/{rel}:"), found


def test_a_folder_without_a_row_is_caught(tmp_path):
    pkg = _plant(tmp_path, CLEAN)
    (pkg / "newstage").mkdir()
    (pkg / "newstage" / "__init__.py").write_text("")
    assert any("ex4d/newstage/ has no row" in v for v in violations(pkg))


def _doc_table() -> dict[str, set[str]]:
    """The "may import" table of docs/architecture.md: rows ``| `folder/` | layer | `a`, `b` | ... |``."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\|\s*`(\w+)/`\s*\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), set(re.findall(r"`(\w+)`", m.group(3))))
    return rows


def test_the_doc_shows_the_same_table():
    ranks = layer_ranks()
    assert _doc_table() == {f: (ranks[f], allowed) for f, allowed in ALLOWED.items()}, (
        "docs/architecture.md's table differs from ALLOWED in tests/unit/test_import_rules.py")
