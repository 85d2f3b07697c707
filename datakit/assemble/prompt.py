"""Prompt and completion messages (the conversational layout TRL's SFTTrainer accepts), built as Polars
expressions over a whole frame at once.

User message of the coding task, in this order:

    ### Example 1                      ┐ few-shot examples retrieved from the train split
    <report, in the record's format>   │ (each: the report in the same format as the record's,
    Answer: <answer line>              ┘  then its answer line)
    CPT candidates: …                  ┐ candidate code lists (coding task)
    ICD-10-CM candidates: …            ┘
    ### Report to code
    <the record's report>

A report is shown in one of two formats, chosen per example by seed: `explicit` (`Exam Description:` and
`Reason for Exam:` lines, then the body) or `embedded` (the body only, which carries its own exam header).
Text tasks (`impression`, and the generic `text` task) show their input columns as a `datakit.task.TaskSpec`
lays them out (the impression task: `Exam:` / `Indication:` / `Findings:`) and answer with the target column.
Functions here take the spec; `None` means the coding layout.
"""

from __future__ import annotations

import polars as pl

from datakit.assemble.formats import answer_line_expr
from datakit.recipe import Prompt
from datakit.task import NOT_GIVEN, TaskSpec, inputs_expr

CHARS_PER_TOKEN = 4  # token estimates: ceil(chars / 4) + 4 per message (role and separators)
MESSAGE_OVERHEAD_TOKENS = 4
SHOT_SEPARATOR = "\n\n"


def system_message(prompt: Prompt) -> str:
    if not prompt.rules:
        return prompt.system.strip()
    rules = "\n".join(f"- {r.strip()}" for r in prompt.rules)
    return f"{prompt.system.strip()}\n\nRules:\n{rules}"


def report_expr(spec: TaskSpec | None, prefix: str = "") -> pl.Expr:
    """The report (or a text task's inputs) of each row in its `prompt_format` (columns read with `prefix`, e.g.
    `shot_`)."""
    if spec is not None:
        return inputs_expr(spec, prefix)

    def col(name: str) -> pl.Expr:
        return pl.col(f"{prefix}{name}")

    description = col("exam_description").fill_null(NOT_GIVEN)
    reason = col("reason_for_exam").fill_null(NOT_GIVEN)
    body = col("report_text").fill_null("")
    explicit = pl.concat_str(
        [
            pl.lit("Exam Description: "),
            description,
            pl.lit("\nReason for Exam: "),
            reason,
            pl.lit("\n\nReport:\n"),
            body,
        ]
    )
    embedded = pl.concat_str([pl.lit("Report:\n"), body])
    return pl.when(pl.col("prompt_format") == "embedded").then(embedded).otherwise(explicit)


def answer_lead(spec: TaskSpec | None) -> str:
    """What comes between a shot's inputs and its answer."""
    return "\nAnswer: " if spec is None else spec.answer_prefix


def shot_expr(spec: TaskSpec | None) -> pl.Expr:
    """One few-shot block: heading, the shot's report (in the query's format), its answer line."""
    return pl.concat_str(
        [
            pl.lit("### Example "),
            (pl.col("rank") + 1).cast(pl.String),
            pl.lit("\n"),
            report_expr(spec, "shot_"),
            pl.lit(answer_lead(spec)),
            pl.col("shot_answer"),
            pl.lit(SHOT_SEPARATOR),
        ]
    )


def candidates_expr(has_cpt: bool, has_icd: bool) -> pl.Expr:
    """Candidate lines (empty where a list is null): CPT, then ICD-10-CM, each ending with a newline."""
    parts: list[pl.Expr] = []
    for present, column, label in (
        (has_cpt, "cpt_candidates", "CPT candidates: "),
        (has_icd, "icd_candidates", "ICD-10-CM candidates: "),
    ):
        if present:
            line = pl.concat_str([pl.lit(label), pl.col(column).list.join(", "), pl.lit("\n")])
            parts.append(pl.when(pl.col(column).is_not_null()).then(line).otherwise(pl.lit("")))
    if not parts:
        return pl.lit("")
    block = pl.concat_str(parts)
    return pl.when(block != "").then(pl.concat_str([block, pl.lit("\n")])).otherwise(pl.lit(""))


def user_message_expr(spec: TaskSpec | None, columns: list[str]) -> pl.Expr:
    """Shots (column `shots_text`, when present) + candidates + the report to code (or the record's inputs)."""
    shots = pl.col("shots_text").fill_null("") if "shots_text" in columns else pl.lit("")
    heading = "### Report to code\n" if spec is None else spec.heading
    return pl.concat_str(
        [
            shots,
            candidates_expr("cpt_candidates" in columns, "icd_candidates" in columns),
            pl.lit(heading),
            report_expr(spec),
        ]
    )


def completion_text_expr(spec: TaskSpec | None) -> pl.Expr:
    return answer_line_expr() if spec is None else pl.col(spec.target)


def _message(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), content.alias("content"))


def token_estimate(content: pl.Expr) -> pl.Expr:
    """Tokens of one message: its content's `chunk_tokens` plus the per-message overhead."""
    return chunk_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def chunk_tokens(content: pl.Expr) -> pl.Expr:
    """Tokens a block adds to a message (no per-message overhead). The sum of the parts' estimates is never
    below the estimate of the whole message, so a budget met part by part is met by the message."""
    return (content.str.len_chars() + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def with_messages(cases: pl.DataFrame, spec: TaskSpec | None, prompt: Prompt) -> pl.DataFrame:
    """Add `prompt` (system + user), `completion` (one assistant message) and token estimates. Rows need a
    `prompt_format` column (explicit/embedded; the impression task ignores it)."""
    system = pl.lit(system_message(prompt))
    frame = cases.with_columns(
        user_message_expr(spec, cases.columns).alias("_user"),
        completion_text_expr(spec).alias("_answer"),
    )
    return frame.with_columns(
        pl.concat_list([_message("system", system), _message("user", pl.col("_user"))]).alias("prompt"),
        pl.concat_list([_message("assistant", pl.col("_answer"))]).alias("completion"),
        (token_estimate(system) + token_estimate(pl.col("_user"))).cast(pl.Int32).alias("n_prompt_tokens"),
        token_estimate(pl.col("_answer")).cast(pl.Int32).alias("n_completion_tokens"),
    ).drop("_user", "_answer")
