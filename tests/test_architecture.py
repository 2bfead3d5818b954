"""The package's layering, read from the imports of ``src/dawm`` (``ast``, nothing imported).

* ``dawm.simulate`` is a leaf: no module outside ``simulate/`` imports it except the commands that
  run the simulator (``cli.py``, ``demo.py``); the simulator itself builds only on the shared layers.
* The shared layers (``bids/``, ``image/``, ``labels.py``, ``metrics.py``, ...) import no stage.
* No module imports a private name (``_x``, or a private module) of another package.

Imports inside functions count (a lazy import is still a dependency); ``if TYPE_CHECKING:`` blocks
count too. Each rule is also run on a small tree with one violation of each kind, so a rule that
stopped seeing anything would fail here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dawm"

#: Modules allowed to import the simulator: the commands that run it.
SIMULATOR_CALLERS = {"dawm.cli", "dawm.demo"}
#: Layers every stage may build on; they import no stage themselves.
SHARED = {"bids", "image", "labels", "metrics", "atomic", "errors", "log", "parallel", "provenance", "config", "_lazy"}
#: The stages (sub-packages and top-level modules that are not shared layers).
STAGES = {"simulate", "preprocess", "label", "model", "evaluate", "longitudinal", "qc", "train", "predict", "bidsapp", "cli", "demo"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. dawm.evaluate.sections
    target: str  # the imported module, e.g. dawm.simulate.pathology
    names: tuple[str, ...]  # names taken from it (``from target import names``); () for ``import target``
    line: int

    def __str__(self) -> str:
        what = f"from {self.target} import {', '.join(self.names)}" if self.names else f"import {self.target}"
        return f"{self.module}:{self.line}: {what}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([root.name, *parts])


def imports(root: Path) -> list[Import]:
    """Every import of a ``dawm.*`` module in the package at ``root`` (relative imports resolved)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                out += [Import(module, alias.name, (), node.lineno) for alias in node.names if alias.name.split(".")[0] == root.name]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != root.name:
                    continue
                names = tuple(alias.name for alias in node.names)
                # ``from dawm import simulate`` imports the module dawm.simulate
                out += [Import(module, f"{target}.{n}", (), node.lineno) for n in names if target == root.name and n in STAGES | SHARED]
                out.append(
                    Import(module, target, tuple(n for n in names if not (target == root.name and n in STAGES | SHARED)), node.lineno)
                )
    return [i for i in out if i.target != root.name or i.names]


def layer(module: str) -> str:
    """The first component below ``dawm`` (``dawm.evaluate.sections`` -> ``evaluate``); ``dawm`` itself for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def simulator_imports(found: list[Import]) -> list[str]:
    """Imports of ``dawm.simulate`` from outside it, other than by the commands that run it."""
    return [str(i) for i in found if layer(i.target) == "simulate" and layer(i.module) != "simulate" and i.module not in SIMULATOR_CALLERS]


def simulator_dependencies(found: list[Import]) -> list[str]:
    """Stages the simulator imports (it may build on the shared layers only)."""
    return [str(i) for i in found if layer(i.module) == "simulate" and layer(i.target) in STAGES - {"simulate"}]


def shared_layer_dependencies(found: list[Import]) -> list[str]:
    """Stages a shared layer imports."""
    return [str(i) for i in found if layer(i.module) in SHARED and layer(i.target) in STAGES]


def private_imports(found: list[Import]) -> list[str]:
    """Private names (``_x``) or private modules of another package. A private module right under
    ``dawm`` (``dawm._lazy``) belongs to the whole package and may be used by all of it."""
    out = []
    for i in found:
        if layer(i.target) == layer(i.module):
            continue
        private_module = any(_private(part) for part in i.target.split(".")[2:])
        private_names = [n for n in i.names if _private(n)]
        if private_module or private_names:
            out.append(str(i))
    return out


@pytest.fixture(scope="module")
def found() -> list[Import]:
    return imports(SRC)


def test_the_scan_sees_the_package(found) -> None:
    modules = {i.module for i in found}
    assert {"dawm.cli", "dawm.evaluate.sections", "dawm.label.pipeline", "dawm.simulate.cohort"} <= modules
    assert any(i.module == "dawm.demo" and layer(i.target) == "simulate" for i in found)  # the demo runs the simulator


def test_only_the_commands_import_the_simulator(found) -> None:
    assert simulator_imports(found) == []


def test_the_simulator_builds_on_shared_layers_only(found) -> None:
    assert simulator_dependencies(found) == []


def test_shared_layers_import_no_stage(found) -> None:
    assert shared_layer_dependencies(found) == []


def test_no_private_name_crosses_a_package(found) -> None:
    assert private_imports(found) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_rules_catch_violations(tmp_path) -> None:
    """One violation of each kind in a small package named ``dawm``: each rule reports exactly it."""
    root = tmp_path / "dawm"
    _write(
        root,
        {
            "__init__.py": "",
            "_lazy.py": "",
            "cli.py": "from dawm.simulate.cohort import simulate_cohort\n",
            "simulate/__init__.py": "",
            "simulate/cohort.py": "from dawm.image.io import load\nfrom . import pathology\n",
            "simulate/pathology.py": "from dawm.longitudinal.transitions import CODES\n",
            "image/__init__.py": "from dawm._lazy import lazy_exports\n",
            "image/io.py": "def load(): ...\n",
            "image/figures.py": "from dawm.qc.page import colours\n",
            "longitudinal/__init__.py": "",
            "longitudinal/transitions.py": "CODES = {}\n",
            "preprocess/__init__.py": "",
            "preprocess/qc.py": "def _to_ras(): ...\n",
            "qc/__init__.py": "",
            "qc/page.py": "from dawm.preprocess.qc import _to_ras\nfrom ..qc import page\n",
            "evaluate/__init__.py": "",
            "evaluate/sections.py": (
                "import numpy\n"
                "def f():\n"
                "    from dawm import simulate\n"
                "    from ..simulate.pathology import CODES\n"
                "    import dawm.preprocess._impl\n"
            ),
        },
    )
    found = imports(root)
    assert sorted(simulator_imports(found)) == [
        "dawm.evaluate.sections:3: import dawm.simulate",
        "dawm.evaluate.sections:4: from dawm.simulate.pathology import CODES",
    ]
    assert simulator_dependencies(found) == ["dawm.simulate.pathology:1: from dawm.longitudinal.transitions import CODES"]
    assert shared_layer_dependencies(found) == ["dawm.image.figures:1: from dawm.qc.page import colours"]
    assert sorted(private_imports(found)) == [
        "dawm.evaluate.sections:5: import dawm.preprocess._impl",
        "dawm.qc.page:1: from dawm.preprocess.qc import _to_ras",
    ]
