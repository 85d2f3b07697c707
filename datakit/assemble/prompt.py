"""Prompt and completion messages (the conversational layout TRL's SFTTrainer accepts), built as Polars
expressions over a whole frame at once."""

from __future__ import annotations

import polars as pl

from datakit.assemble.formats import answer_line_expr
from datakit.recipe import Prompt, Task

CHARS_PER_TOKEN = 4  # token estimates: ceil(chars / 4) + 4 per message (role and separators)
MESSAGE_OVERHEAD_TOKENS = 4


def system_message(prompt: Prompt) -> str:
    if not prompt.rules:
        return prompt.system.strip()
    rules = "\n".join(f"- {r.strip()}" for r in prompt.rules)
    return f"{prompt.system.strip()}\n\nRules:\n{rules}"


def candidates_expr(has_column: bool) -> pl.Expr:
    """An ICD-10-CM candidate line where the example has one (specificity pairs, until retrieval adds them all)."""
    if not has_column:
        return pl.lit("")
    line = pl.concat_str([pl.lit("\nICD-10-CM candidates: "), pl.col("icd_candidates").list.join(", ")])
    return pl.when(pl.col("icd_candidates").is_not_null()).then(line).otherwise(pl.lit(""))


def user_message_expr(task: Task, has_candidates: bool = False) -> pl.Expr:
    reason = pl.col("reason_for_exam").fill_null("(not given)")
    description = pl.col("exam_description").fill_null("(not given)")
    if task == "coding":
        return pl.concat_str(
            [
                pl.lit("Exam Description: "),
                description,
                pl.lit("\nReason for Exam: "),
                reason,
                candidates_expr(has_candidates),
                pl.lit("\n\nReport:\n"),
                pl.col("report_text"),
            ]
        )
    return pl.concat_str(
        [
            pl.lit("Exam: "),
            description,
            pl.lit("\nIndication: "),
            reason,
            pl.lit("\n\nFindings:\n"),
            pl.col("report_text"),
        ]
    )


def completion_text_expr(task: Task) -> pl.Expr:
    return answer_line_expr() if task == "coding" else pl.col("impression")


def _message(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), content.alias("content"))


def token_estimate(content: pl.Expr) -> pl.Expr:
    return (content.str.len_chars() + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


def with_messages(cases: pl.DataFrame, task: Task, prompt: Prompt) -> pl.DataFrame:
    """Add `prompt` (system + user), `completion` (one assistant message) and token estimates."""
    system = pl.lit(system_message(prompt))
    frame = cases.with_columns(
        user_message_expr(task, "icd_candidates" in cases.columns).alias("_user"),
        completion_text_expr(task).alias("_answer"),
    )
    return frame.with_columns(
        pl.concat_list([_message("system", system), _message("user", pl.col("_user"))]).alias("prompt"),
        pl.concat_list([_message("assistant", pl.col("_answer"))]).alias("completion"),
        (token_estimate(system) + token_estimate(pl.col("_user"))).cast(pl.Int32).alias("n_prompt_tokens"),
        token_estimate(pl.col("_answer")).cast(pl.Int32).alias("n_completion_tokens"),
    ).drop("_user", "_answer")
