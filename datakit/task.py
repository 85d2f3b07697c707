"""What a text-to-text task shows the model and what it answers, as Polars expressions.

A `TaskSpec` names the input columns (each with a label, shown inline as `Label: value` or as a block
`Label:` + text), the target column and the headings the target is written in. The generic `text` task takes
its spec from the recipe's `[text]` table; the `impression` task is the built-in instance (exam and indication
inline, the findings as a block, the impression as the answer). The coding task keeps its own layout (two report
formats, an answer line built from code lists): see `datakit.assemble.prompt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from datakit.recipe import Recipe

NOT_GIVEN = "(not given)"


@dataclass(frozen=True)
class Shown:
    column: str
    label: str
    inline: bool = False


@dataclass(frozen=True)
class TaskSpec:
    inputs: tuple[Shown, ...]
    target: str
    answer_prefix: str  # what precedes a shot's answer, after its inputs
    heading: str  # above the record's own inputs
    intro: str  # above the few-shot examples
    sections: tuple[str, ...] = ()
    min_sections: int = 0

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(i.column for i in self.inputs)


IMPRESSION = TaskSpec(
    inputs=(
        Shown("exam_description", "Exam", inline=True),
        Shown("reason_for_exam", "Indication", inline=True),
        Shown("report_text", "Findings"),
    ),
    target="impression",
    answer_prefix="\nImpression: ",
    heading="### Report\n",
    intro="Examples of similar reports with their impressions (for reference; not this patient):\n\n",
)


def spec_of(recipe: Recipe) -> TaskSpec | None:
    """The recipe's task as a spec; None for coding (its own layout)."""
    if recipe.task == "impression":
        return IMPRESSION
    if recipe.text is None:
        return None
    t = recipe.text
    return TaskSpec(
        inputs=tuple(Shown(i.column, i.label, i.inline) for i in t.inputs),
        target=t.target,
        answer_prefix=f"\n{t.target_label}:\n",
        heading=f"{t.heading.rstrip()}\n",
        intro=f"{t.intro.rstrip()}\n\n",
        sections=t.sections,
        min_sections=t.min_sections,
    )


def inputs_expr(spec: TaskSpec, prefix: str = "") -> pl.Expr:
    """The inputs of each row as text (columns read with `prefix`, e.g. `shot_`): inline fields as
    `Label: value` on one line, block fields as `Label:` and the text after a blank line."""
    parts: list[pl.Expr] = []
    for n, shown in enumerate(spec.inputs):
        col = pl.col(f"{prefix}{shown.column}")
        if shown.inline:
            lead = ("\n" if n else "") + f"{shown.label}: "
            parts += [pl.lit(lead), col.fill_null(NOT_GIVEN)]
        else:
            lead = ("\n\n" if n else "") + f"{shown.label}:\n"
            parts += [pl.lit(lead), col.fill_null("")]
    return pl.concat_str(parts)


def section_slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", heading.lower()).strip("_")


def has_section(target: pl.Expr, heading: str) -> pl.Expr:
    """The target holds `heading` at the start of a line, alone or followed by a colon (any case)."""
    return target.fill_null("").str.contains(rf"(?im)^[ \t]*{re.escape(heading)}[ \t]*(:|$)")


def section_tags(spec: TaskSpec) -> pl.Expr:
    """`section:<slug>` for each of the spec's sections the target holds (empty list without sections)."""
    if not spec.sections:
        return pl.lit([], dtype=pl.List(pl.String))
    tags = [
        pl.when(has_section(pl.col(spec.target), h)).then(pl.lit(f"section:{section_slug(h)}")) for h in spec.sections
    ]
    return pl.concat_list(tags).list.drop_nulls()


def pull_checks(recipe: Recipe) -> tuple[pl.Expr, ...]:
    """Quarantine reasons the pull stage adds for the recipe: a split value the recipe does not map, a target
    written in fewer of the expected sections than `text.min_sections`."""
    checks: list[pl.Expr] = []
    column = recipe.split.source_column
    if column is not None:
        known = pl.col(column).is_in(list(recipe.split.source_splits))
        checks.append(pl.when(pl.col(column).is_not_null() & ~known).then(pl.lit(f"unmapped:{column}")))
    spec = spec_of(recipe)
    if spec is not None and spec.min_sections:
        found = pl.sum_horizontal([has_section(pl.col(spec.target), h).cast(pl.Int32) for h in spec.sections])
        checks.append(pl.when(found < spec.min_sections).then(pl.lit("too_few_sections:" + spec.target)))
    return tuple(checks)
