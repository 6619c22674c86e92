"""The README's code runs as written: documentation that cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_quickstart_runs() -> None:
    (code,) = _blocks("python")
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_the_config_sample_is_valid() -> None:
    from toolkit.config import parse_config

    (toml,) = _blocks("toml")
    config = parse_config(toml, file="README.md", env={"PG_PASSWORD": "x"})
    assert config.stores["users"].router.type == "hash"


def test_the_readme_names_both_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "polystore demo" in text
    assert ".ci/run" in text
