from __future__ import annotations

from pathlib import Path

import pytest

from datakit.errors import RecipeError
from datakit.recipe import apply_overrides, load_recipe, parse_value
from tests.conftest import CODING_RECIPE, IMPRESSION_RECIPE


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


MINIMAL = """
name = "t"
task = "coding"
[source]
kind = "sample"
[prompt]
system = "code it"
"""


def test_flagship_recipes_validate() -> None:
    coding = load_recipe(CODING_RECIPE)
    assert coding.task == "coding" and coding.source.kind == "sample" and coding.shards.world_size == 8
    impression = load_recipe(IMPRESSION_RECIPE)
    assert impression.task == "impression" and impression.source.kind == "files"


def test_unknown_top_level_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"unknown key 'sede' \(did you mean 'seed'\?\)"):
        load_recipe(write(tmp_path, "sede = 3\n" + MINIMAL))


def test_unknown_nested_key_is_named(tmp_path: Path) -> None:
    text = MINIMAL.replace('kind = "sample"', 'kind = "sample"\nnn = 10')
    with pytest.raises(RecipeError, match=r"unknown key 'source.nn' \(did you mean 'source.n'\?\)"):
        load_recipe(write(tmp_path, text))
    with pytest.raises(RecipeError, match=r"unknown key 'shards.world'"):
        load_recipe(write(tmp_path, MINIMAL + "[shards]\nworld = 4\n"))


def test_unknown_schema_column_in_mapping(tmp_path: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"unknown key 'source.columns.report' \(did you mean 'source.columns.report_text'"
    ):
        load_recipe(write(tmp_path, MINIMAL), ["source.kind=files", "source.path=x.csv", "source.columns.report=a"])


def test_missing_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="missing key 'prompt'"):
        load_recipe(write(tmp_path, MINIMAL.replace('[prompt]\nsystem = "code it"', "")))
    with pytest.raises(RecipeError, match="split ratios must sum to 1"):
        load_recipe(write(tmp_path, MINIMAL + "[split]\ntrain = 0.5\nval = 0.1\ntest = 0.1\n"))
    with pytest.raises(RecipeError, match="task"):
        load_recipe(write(tmp_path, MINIMAL.replace('"coding"', '"summarise"')))
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(write(tmp_path, "name = \n"))
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.toml")


def test_set_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    r = load_recipe(
        write(tmp_path, MINIMAL),
        [
            "source.n=250",
            "split.train=0.8",
            "split.val=0.1",
            "split.test=0.1",
            "seed=5",
            'validation.review_status=["reviewed", "final"]',
        ],
    )
    assert r.source.n == 250 and r.split.train == 0.8 and r.seed == 5  # type: ignore[union-attr]
    assert r.validation.review_status == ["reviewed", "final"]
    with pytest.raises(RecipeError, match=r"unknown key 'source.m'"):
        load_recipe(write(tmp_path, MINIMAL), ["source.m=3"])
    with pytest.raises(RecipeError, match=r"key\.path=value"):
        load_recipe(write(tmp_path, MINIMAL), ["source.n"])


def test_changing_source_kind_starts_a_clean_table(tmp_path: Path) -> None:
    r = load_recipe(CODING_RECIPE, ["source.kind=files", "source.path=cases.parquet"])
    assert r.source.kind == "files" and r.source.path == "cases.parquet"  # type: ignore[union-attr]


def test_parse_value() -> None:
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("cases.parquet") == "cases.parquet" and parse_value('["a"]') == ["a"]
    assert apply_overrides({"a": {"b": 1}}, ["a.c=x"]) == {"a": {"b": 1, "c": "x"}}


def test_recipe_hash_changes_with_content() -> None:
    a = load_recipe(CODING_RECIPE)
    assert a.hash() == load_recipe(CODING_RECIPE).hash()
    assert a.hash() != load_recipe(CODING_RECIPE, ["seed=18"]).hash()


def test_set_order_does_not_matter_when_a_kind_changes() -> None:
    from datakit.recipe import apply_overrides

    raw = {"source": {"kind": "sample", "n": 10}}
    before = apply_overrides(raw, ["source.columns.case_id=AccNo", "source.kind=files", "source.path=x.csv"])
    after = apply_overrides(raw, ["source.kind=files", "source.path=x.csv", "source.columns.case_id=AccNo"])
    assert before == after == {"source": {"kind": "files", "path": "x.csv", "columns": {"case_id": "AccNo"}}}
