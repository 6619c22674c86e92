"""The user guide (docs/) and the README run as written: documentation that cannot drift.

* every ```python block runs, each in a fresh interpreter in an empty directory (so a
  block is a complete program a reader can paste);
* every ```toml block is parsed by the configuration parser;
* every ``polystore ...`` command line in a ```bash block names real commands and options;
* the configuration reference lists every field the parser accepts (asked of the parser
  itself, so a field added to toolkit/config.py without documentation fails here), and
  every adapter option the adapters read;
* the capability table in adapters.md is each adapter's ``capabilities``;
* the benchmark results in docs/benchmarks.md are the README's;
* every troubleshooting entry reproduces its message with a snippet.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.servers import ROOT
from toolkit.config import _Parser
from toolkit.errors import ConfigError

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
_BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(page.read_text(encoding="utf-8")) if lang == language]


def _cases(language: str) -> list[Any]:
    return [
        pytest.param(page, index, body, id=f"{page.relative_to(ROOT)}-{language}{index}")
        for page in PAGES
        for index, body in enumerate(blocks(page, language))
    ]


# -- python ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "index", "code"), _cases("python"))
def test_python_samples_run(page: Path, index: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / f"{page.stem}_{index}.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("POLYSTORE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{page.name} python block {index} failed:\n{done.stderr[-3000:]}"


def test_every_page_has_its_samples() -> None:
    """A guard against a fence typo silently turning a sample into prose."""
    for name in ("index", "concepts", "sagas", "rebalance", "troubleshooting", "adapters"):
        assert blocks(DOCS / f"{name}.md", "python"), name


# -- toml ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "index", "text"), _cases("toml"))
def test_toml_samples_parse(page: Path, index: int, text: str, tmp_path: Path) -> None:
    """Each TOML sample is valid configuration. A fragment that shows one table of a store
    (``[stores.x.resilience]`` alone) is completed with one SQLite shard, nothing else."""
    raw = tomllib.loads(text)
    for store in raw.get("stores", {}).values():
        if isinstance(store, dict):
            store.setdefault("shards", {"s0": "sqlite:///fragment.db"})
    config = _Parser(f"{page.name}[{index}]", tmp_path, {"PG_PASSWORD": "secret"}).config(raw)
    assert config.stores or config.catalog.url


# -- command lines -------------------------------------------------------------------------------


def _command_lines() -> list[Any]:
    found = []
    for page in PAGES:
        for body in blocks(page, "bash"):
            for line in body.splitlines():
                command = line.split("#", 1)[0].strip()
                if command.startswith("polystore "):
                    found.append(pytest.param(command, id=f"{page.name}: {command}"))
    return found


@pytest.mark.parametrize("command", _command_lines())
def test_polystore_command_lines_are_real(command: str) -> None:
    from toolkit.cli import app

    node: Any = typer.main.get_command(app)  # typer's groups are click groups in all but class
    words = shlex.split(command)[1:]
    while words and words[0] in getattr(node, "commands", {}):
        node = node.commands[words.pop(0)]
    assert not hasattr(node, "commands") or node.invoke_without_command, f"{command}: no such command"
    options = {name for param in node.params for name in (*param.opts, *param.secondary_opts)}
    for word in words:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in options, f"{command}: {word} is not an option of {node.name}"


def test_bench_scripts_named_in_the_docs_exist() -> None:
    for page in PAGES:
        for script in re.findall(r"python (bench/\w+\.py)", page.read_text(encoding="utf-8")):
            assert (ROOT / script).exists(), (page.name, script)


# -- the configuration reference -----------------------------------------------------------------

_PROBE = "zz_undocumented"
_BASE: dict[str, Any] = {"stores": {"NAME": {"kind": "relational", "shards": {"s0": "sqlite:///p.db"}}}}


def _rejects(raw: dict[str, Any], path: list[str]) -> ConfigError | None:
    """Put an unknown key at ``path`` and return the parser's complaint (None: accepted)."""
    document = deepcopy(raw)
    table = document
    for step in path:
        if not isinstance(table.get(step), dict):
            table[step] = {}  # a leaf becomes a table: does the parser take one here?
        table = table[step]
    table[_PROBE] = 1
    try:
        _Parser("probe.toml", Path.cwd(), {}).config(document)
    except ConfigError as error:
        return error
    return None


def _allowed(error: ConfigError | None, path: list[str]) -> list[str] | None:
    """The keys a table takes, read from an 'unknown field/option' error about our probe."""
    if error is None or getattr(error, "field", None) != ".".join([*path, _PROBE]):
        return None
    match = re.search(r"unknown (?:field|option)[^(]*\(expected(?: one of)?: ([^)]*)\)", str(error))
    return [name.strip() for name in match.group(1).split(",")] if match else None


def _fields(raw: dict[str, Any], path: list[str]) -> set[str]:
    """Every dotted field the parser accepts at and below ``path`` (recursing into tables)."""
    keys = _allowed(_rejects(raw, path), path)
    assert keys is not None or path, "the parser no longer names the fields it expects"
    found = set()
    for key in keys or []:
        dotted = [*path, key]
        found.add(".".join(dotted))
        if dotted == ["stores"]:
            found |= _fields(raw, ["stores", "NAME"])
        elif dotted == ["stores", "NAME", "router"]:
            for router in ("hash", "range", "directory"):
                typed = deepcopy(raw)
                typed["stores"]["NAME"]["router"] = {"type": router}
                found |= {f"stores.NAME.router.{option}" for option in _allowed(_rejects(typed, dotted), dotted) or []}
            found.add("stores.NAME.router.type")
        elif _allowed(_rejects(raw, dotted), dotted) is not None:
            found |= _fields(raw, dotted)
    return found


def test_the_configuration_reference_lists_every_field_the_parser_accepts() -> None:
    accepted = _fields(_BASE, [])
    assert {"catalog.url", "stores.NAME.kind", "stores.NAME.router.weights", "stores.NAME.router.entries"} <= accepted
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(field for field in accepted if f"`{field}`" not in text)
    assert not missing, (
        f"docs/configuration.md does not document: {', '.join(missing)} "
        "(write each as `stores.NAME.field` in a table row of its section)"
    )


def test_the_configuration_reference_lists_every_url_scheme() -> None:
    from adapters.registry import known_schemes

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([a-z0-9+-]+)`", text[text.index("Shard URL schemes:") :].split("\n\n")[0]))
    assert set(known_schemes()) <= listed, sorted(set(known_schemes()) - listed)


def test_the_adapter_options_table_is_the_adapters_typed_options() -> None:
    """Every row of the options table is a field of the typed ``Options`` of exactly the
    adapters its second column names ("all" = every kind), and every field has a row."""
    from adapters.registry import adapter_class

    schemes = {
        "relational": "sqlite",
        "document": "mongodb",
        "keyvalue": "redis",
        "column": "cassandra",
        "graph": "bolt",
    }
    declared: dict[str, set[str]] = {}
    for kind, scheme in schemes.items():
        for name in adapter_class(scheme).Options.model_fields:
            declared.setdefault(name, set()).add(kind)
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = text[text.index("## `[stores.NAME.options]`") :].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for option, adapters in re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M):
        documented[option] = set(schemes) if adapters.strip() == "all" else {k for k in schemes if k in adapters}
    assert documented == declared


# -- adapters, benchmarks, troubleshooting, links ------------------------------------------------


def test_the_capability_table_is_the_adapters_own() -> None:
    from adapters.base import Capability
    from adapters.column import ColumnAdapter
    from adapters.document import DocumentAdapter
    from adapters.graph import GraphAdapter
    from adapters.keyvalue import KeyValueAdapter
    from adapters.relational import RelationalAdapter

    kinds: Mapping[str, Any] = {
        "relational": RelationalAdapter,
        "document": DocumentAdapter,
        "keyvalue": KeyValueAdapter,
        "column": ColumnAdapter,
        "graph": GraphAdapter,
    }
    rows = re.findall(r"^\| `([A-Z_]+)` \|(.*)$", (DOCS / "adapters.md").read_text(encoding="utf-8"), re.MULTILINE)
    documented = {name: [cell.strip() for cell in rest.split("|")][:5] for name, rest in rows}
    declared = [flag.name for flag in Capability if flag.name and flag.name != "NONE"]
    assert sorted(documented) == sorted(declared)
    for name, cells in documented.items():
        for (kind, adapter), cell in zip(kinds.items(), cells, strict=True):
            assert (cell == "✓") == (Capability[name] in adapter.capabilities), (name, kind, cell)


def test_the_benchmark_results_are_the_readmes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    results = readme[readme.index("Routers (1,000,000 keys") :].strip()
    assert results in (DOCS / "benchmarks.md").read_text(encoding="utf-8"), (
        "the README's benchmark results changed: copy them to docs/benchmarks.md too"
    )


def test_every_troubleshooting_entry_reproduces_its_message() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    entries = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    assert len(entries) >= 12
    for entry in entries:
        title = entry.splitlines()[0]
        assert "```python" in entry, f"troubleshooting entry {title!r} has no snippet"
        quoted = re.search(r"`([^`]+)`", title)
        assert quoted is not None, title
        words = [w for w in re.split(r"\W+", quoted.group(1).replace("...", " ")) if len(w) > 3]
        code = entry[entry.index("```python") :]
        assert all(word in code for word in words), f"{title!r}: the snippet does not check that message"


def test_the_readme_leads_to_the_guide_and_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (page.parent / target).resolve().exists(), f"{page.name}: broken link {target}"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert page.name == "index.md" or f"({page.name})" in index, f"docs/index.md does not link {page.name}"
