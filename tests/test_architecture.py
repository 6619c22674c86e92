"""The architecture's rules that import-linter cannot see, checked on the source (no servers).

* The adapter contract is one table: every public method of ``Adapter`` is a key of
  ``adapters.base.CONTRACT`` and every key is one; the resilience guard wraps exactly
  that table (``GuardedAdapter`` forwards nothing else: no ``__getattr__``).
* No code outside ``adapters/`` touches an adapter's private members: an attribute access
  ``<expr>._x`` where ``_x`` is a private name that ``adapters/`` defines (``def _x``,
  ``self._x = ...``, a class attribute ``_x``) and ``<expr>`` is not ``self`` or ``cls``.
  A negative control shows the checker reports such an access.
* Small modules: none in toolkit/, adapters/ or sharding/ is over 700 lines.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path

from adapters.base import CONTRACT, Adapter
from toolkit.resilience import GuardedAdapter

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = ("toolkit", "sharding", "bench", "examples")
"""Where code must reach adapters through the contract only."""
MAX_LINES = 700


def sources(*folders: str) -> Iterator[tuple[str, str]]:
    """(path relative to the repository, text) of every .py file below ``folders``."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_names(files: Iterable[tuple[str, str]]) -> set[str]:
    """The private names the given (adapter) sources define: functions and methods, class
    attributes, and attributes set on ``self``."""
    names: set[str] = set()
    for path, text in files:
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    targets = statement.targets if isinstance(statement, ast.Assign) else []
                    if isinstance(statement, ast.AnnAssign):
                        targets = [statement.target]
                    names |= {t.id for t in targets if isinstance(t, ast.Name) and _private(t.id)}
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                names |= {node.attr} if isinstance(node.value, ast.Name) and node.value.id == "self" else set()
    return names


def violations(path: str, text: str, names: set[str]) -> list[str]:
    """Every ``<expr>._x`` in ``text`` with ``_x`` in ``names`` and ``<expr>`` not self/cls.

    A name the file defines itself is its own (a router reading another router's
    ``_table``), not an adapter's: the check is by name, so it leaves those out.
    """
    foreign = names - private_names([(path, text)])
    found = []
    for node in ast.walk(ast.parse(text, path)):
        if not isinstance(node, ast.Attribute) or node.attr not in foreign:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


# -- the contract ------------------------------------------------------------------------


def test_the_contract_table_is_every_public_method_of_the_adapter() -> None:
    methods = {name for name, value in inspect.getmembers(Adapter, inspect.isfunction) if not name.startswith("_")}
    assert methods - set(CONTRACT) == set(), "public methods of Adapter missing from CONTRACT"
    assert set(CONTRACT) - methods == set(), "CONTRACT names that are not methods of Adapter"


def test_the_guard_wraps_exactly_the_contract() -> None:
    for cls in GuardedAdapter.__mro__:
        assert "__getattr__" not in vars(cls), f"{cls.__name__} forwards attributes with __getattr__"
    assert GuardedAdapter.__getattribute__ is object.__getattribute__
    assert not inspect.isabstract(GuardedAdapter)
    own = {name for name, value in vars(GuardedAdapter).items() if callable(value) and not name.startswith("_")}
    assert own == set(CONTRACT), "GuardedAdapter defines methods outside the contract (or lacks some)"


# -- private members -----------------------------------------------------------------------


def test_no_code_outside_the_adapters_touches_their_private_members() -> None:
    names = private_names(sources("adapters"))
    assert names, "no private names found in adapters/: the collector is broken"
    found = [line for path, text in sources(*OUTSIDE) for line in violations(path, text, names)]
    assert not found, "private members of adapters used outside adapters/:\n" + "\n".join(found)


def test_the_private_member_check_reports_an_access() -> None:
    """Negative control: the checker finds a saga effect reaching into the relational adapter."""
    adapter = "class RelationalAdapter:\n    def _tableset(self, schema):\n        self._cache = {}\n"
    names = private_names([("adapters/relational.py", adapter)])
    assert {"_tableset", "_cache"} <= names
    effect = "def apply(adapter, schema):\n    tables = adapter._tableset(schema)\n    return self._cache\n"
    assert violations("toolkit/saga/_effects.py", effect, names) == ["toolkit/saga/_effects.py:2: adapter._tableset"]
    own = "class Router:\n    def __init__(self):\n        self._tableset = {}\n    def same(self, other):\n"
    assert violations("sharding/router.py", own + "        return other._tableset\n", names) == []


# -- module size ---------------------------------------------------------------------------


def test_no_module_is_over_700_lines() -> None:
    sizes = {path: len(text.splitlines()) for path, text in sources("toolkit", "adapters", "sharding")}
    large = sorted(f"{path}: {lines} lines" for path, lines in sizes.items() if lines > MAX_LINES)
    assert not large, f"modules over {MAX_LINES} lines (split them into packages of private modules):\n" + "\n".join(
        large
    )
