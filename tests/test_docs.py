"""The docs: the generated reference pages are current, every page the site lists exists, the README's links hold."""

from __future__ import annotations

import importlib.util
import re

import pytest

from datakit.recipe import Recipe
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def _gen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_gen", DOCS / "gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["recipe-keys", "commands", "benchmarks"])
def test_generated_pages_are_current(page: str) -> None:
    gen = _gen()
    text = {"recipe-keys": gen.recipe_keys, "commands": gen.commands, "benchmarks": gen.benchmarks}[page]()
    assert (DOCS / "pages" / f"{page}.md").read_text() == text, f"run `python docs/gen.py` ({page}.md is stale)"


def test_every_recipe_section_is_in_the_reference() -> None:
    keys = (DOCS / "pages" / "recipe-keys.md").read_text()
    for section in Recipe.model_fields:
        assert f"`{section}" in keys, section
    for key in ("source.csv.separator", "validation.max_quarantined_share", "deid.max_text_chars", "split.val"):
        assert f"`{key}`" in keys, key


def test_nav_pages_and_readme_links_exist() -> None:
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (DOCS / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) >= 20
    missing = [p for p in nav if not (DOCS / "pages" / p).is_file()]
    assert not missing
    linked = re.findall(r"\]\(((?:docs|notebooks)/[^)#]+)", (ROOT / "README.md").read_text())
    assert linked and not [p for p in linked if not (ROOT / p).exists()]
    orphans = {p.name for p in (DOCS / "pages").glob("*.md")} - set(nav)
    assert not orphans, f"pages not in the site's nav: {orphans}"
