"""The `datakit` command line: one command per stage, plus run, inspect, verify and recipe check."""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from datakit import __version__
from datakit.errors import DatakitError
from datakit.pipeline import STAGES, Interrupted, run_pipeline
from datakit.runner import Outcome

if TYPE_CHECKING:
    from datakit.recipe import Recipe


class _DebugAnywhere(TyperGroup):
    """`--debug` is read wherever it stands on the command line (`datakit run r.toml --debug` as well as
    `datakit --debug run r.toml`): it is moved in front of the command name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:end]:
            args = ["--debug", *(a for i, a in enumerate(args) if not (a == "--debug" and i < end))]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DebugAnywhere,
    help="Assemble LLM fine-tuning data from clinical text and defend it against leakage.",
    pretty_exceptions_enable=False,
    add_completion=False,
)
recipe_app = typer.Typer(help="Validate and show recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")
err = Console(stderr=True, highlight=False)
STATE = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])

RecipeArg = Annotated[Path, typer.Argument(help="recipe TOML file, e.g. recipes/radiology-coding.toml")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run directory (default: runs/<recipe name>)")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="override a recipe key, e.g. --set source.n=1000 (repeatable; TOML literals, else text)"
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="stop when any row is quarantined")]
DemoKeyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-demo-key",
        help="let the published demo key key a source other than the sample (public data only; reports say so)",
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="local or ray: where per-record work runs (overrides the recipe's engine.kind)"),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars or tables")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a JSON summary on stdout (for scripts)")]
DirArg = Annotated[Path, typer.Argument(help="a run directory or its shards/ folder")]


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def disk_error(exc: OSError) -> str | None:
    """One line for a full disk or a folder datakit may not write (the path, never content); None for others."""
    where = exc.filename or "the run directory"
    if exc.errno in _NO_SPACE:
        return (
            f"no space left on the device holding {where}: free some or give another --out; the stage that was "
            "writing kept nothing (run.json says failed where it could still be written)"
        )
    if exc.errno in _NOT_WRITABLE:
        return f"cannot write {where} ({os.strerror(exc.errno or 0).lower()}): give a writable --out"
    return None


def guarded(fn: F) -> F:
    """Errors users can cause: one red line and exit code 2 (a traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatakitError as exc:
            if STATE["debug"]:
                raise
            err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        except (KeyboardInterrupt, Interrupted) as exc:
            if STATE["debug"]:
                raise
            why = str(exc) or "Ctrl-C"
            err.print(
                f"[bold yellow]interrupted[/] ({why}): run.json says 'interrupted'; run the same command again to "
                "resume (finished stages are kept)",
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except OSError as exc:
            line = disk_error(exc)
            if line is None or STATE["debug"]:
                raise
            err.print(f"[bold red]error:[/] {line}", soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as exc:
            if STATE["debug"]:
                raise
            # an error datakit did not expect: its message (and a traceback's locals) may quote record content,
            # so only its class is shown
            err.print(
                f"[bold red]internal error:[/] {type(exc).__name__} (the message is withheld: it may quote record "
                "content); run.json says 'failed'; rerun with --debug for the traceback",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="show tracebacks for errors, and other libraries' logs and bars")
    ] = False,
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
) -> None:
    STATE["debug"] = debug
    if debug:  # worker processes inherit it: a record the de-identifier fails on prints its traceback
        os.environ["DATAKIT_DEBUG"] = "1"
    if version:
        typer.echo(f"datakit {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _console(quiet: bool, as_json: bool) -> Console:
    return Console(stderr=as_json, quiet=quiet, highlight=False)


def _stage_table(outcome: Outcome) -> Table:
    r = outcome.record
    stats = r.get("stats", {})
    table = Table(title=f"{outcome.stage} ({outcome.status})", title_justify="left", expand=False)
    for col in ("rows in", "rows out", "quarantined", "filtered", "seconds", "rows/s", "peak RSS MB"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{r.get('rows_in', 0):,}",
        f"{r.get('rows_out', 0):,}",
        f"{r.get('rows_quarantined', 0):,}",
        f"{stats.get('filtered_review_status', 0):,}",
        f"{r.get('wall_seconds', 0):.2f}",
        f"{r.get('rows_per_second') or 0:,.0f}",
        f"{r.get('peak_rss_mb', 0):,.0f}",
    )
    return table


def run_warnings(outcomes: list[Outcome]) -> list[str]:
    """What a user should not miss, repeated after the stage tables: quarantines, repairs, over-budget examples."""
    out = []
    for o in outcomes:
        stats = o.record.get("stats", {})
        n = o.record.get("rows_quarantined") or 0
        if n:
            reasons = ", ".join(f"{k} {v:,}" for k, v in (stats.get("quarantine_reasons") or {}).items())
            out.append(f"{o.stage}: {n:,} rows quarantined ({reasons}); see quarantine/{o.stage}.parquet")
        for column, seen in (stats.get("list_separator_suspects") or {}).items():
            out.append(
                f"{o.stage}: {seen['rows']:,} rows hold {column} items with '{seen['separator']}' inside: a cell "
                f"split on source.list_separator = '{seen['read_with']}' keeps several codes as one (the codes "
                f"stage then quarantines them as unknown); --set source.list_separator='{seen['separator']}'"
            )
        rounds = stats.get("repair_rounds") or []
        first = rounds[0].get("cross_links", 0) if rounds else 0
        if first:
            out.append(
                f"{o.stage}: the certificate found {first:,} train↔eval links and repaired the split in "
                f"{len(rounds) - 1} round(s); moved ids are in reports/leakage.json"
            )
        over = (stats.get("shots") or {}).get("over_token_budget") or 0
        if over:
            budget = stats["shots"].get("max_prompt_tokens")
            out.append(
                f"{o.stage}: {over:,} examples exceed the prompt budget of {budget:,} tokens even without shots "
                "(tagged over_token_budget; filter them or raise assemble.max_prompt_tokens)"
            )
    return out


def _resolve(
    recipe_path: Path,
    overrides: list[str] | None,
    out: Path | None,
    allow_demo_key: bool = False,
    engine: str | None = None,
) -> tuple[Recipe, Path]:
    from datakit.recipe import load_recipe

    extra = ["keys.allow_demo_for_real_data=true"] if allow_demo_key else []
    if engine is not None:
        extra.append(f"engine.kind={engine}")
    recipe = load_recipe(recipe_path, [*(overrides or []), *extra])
    return recipe, out or Path("runs") / recipe.name


def _execute(
    recipe_path: Path,
    out: Path | None,
    overrides: list[str] | None,
    quiet: bool,
    as_json: bool,
    allow_demo_key: bool = False,
    engine: str | None = None,
    **kwargs: Any,
) -> None:
    recipe, run_dir = _resolve(recipe_path, overrides, out, allow_demo_key, engine)
    console = _console(quiet, as_json)
    outcomes = run_pipeline(
        recipe,
        run_dir,
        console,
        on_stage=lambda o: console.print(_stage_table(o)),
        debug=STATE["debug"],
        **kwargs,
    )
    warnings = run_warnings(outcomes)
    shards = run_dir / "shards"
    if as_json:
        from datakit.shards.layout import MANIFEST

        summary = {
            "run_dir": str(run_dir),
            "shards": str(shards) if (shards / MANIFEST).is_file() else None,
            "stages": [
                {
                    "stage": o.stage,
                    "status": o.status,
                    **{
                        k: o.record.get(k)
                        for k in ("rows_in", "rows_out", "rows_quarantined", "wall_seconds", "peak_rss_mb")
                    },
                }
                for o in outcomes
            ],
            "warnings": warnings,
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    for line in warnings:  # printed even with --quiet (to stderr then): a warning is what must not be missed
        (err if quiet else console).print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    if any(o.stage == "shard" for o in outcomes):
        splits = next(o for o in outcomes if o.stage == "shard").record["stats"]["splits"]
        counts = " / ".join(f"{s} {v['rows']:,}" for s, v in splits.items())
        console.print(f"[bold green]shards:[/] {shards}  ({counts})")
        console.print(f"check them with: datakit verify {shards}")


@app.command()
@guarded
def run(
    recipe: RecipeArg,
    out: OutOpt = None,
    set_: SetOpt = None,
    from_stage: Annotated[str | None, typer.Option("--from", help="re-run this stage and every stage after it")] = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    allow_demo_key: DemoKeyOpt = False,
    engine: EngineOpt = None,
) -> None:
    """Run the whole pipeline; stages whose inputs and config did not change are skipped."""
    _execute(recipe, out, set_, quiet, as_json, allow_demo_key, engine, from_stage=from_stage, strict=strict)


def _stage_command(name: str, help_text: str) -> None:
    def command(
        recipe: RecipeArg,
        out: OutOpt = None,
        set_: SetOpt = None,
        force: Annotated[bool, typer.Option("--force", help="run even if its output is current")] = False,
        strict: StrictOpt = False,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
        allow_demo_key: DemoKeyOpt = False,
        engine: EngineOpt = None,
    ) -> None:
        _execute(recipe, out, set_, quiet, as_json, allow_demo_key, engine, only=[name], force=force, strict=strict)

    command.__doc__ = f"Run only the {name} stage: {help_text}."
    app.command(name=name)(guarded(command))


for _stage in STAGES:
    _stage_command(_stage.name, _stage.summary)


@app.command()
@guarded
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory holding a leakage stage output")],
    include_text: Annotated[
        bool,
        typer.Option("--include-text", help="show de-identified text of the largest clusters (needs a deid stage)"),
    ] = False,
    cosine_threshold: Annotated[
        float | None, typer.Option("--cosine-threshold", help="re-apply another cosine threshold (what-if)")
    ] = None,
    jaccard_threshold: Annotated[
        float | None, typer.Option("--jaccard-threshold", help="re-apply another MinHash Jaccard threshold (what-if)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Regenerate reports/ (leakage.html, leakage.json, certificate.json) from a run's leakage stage output.

    With a threshold option the report also shows what that threshold would link, computed from the stored
    similarities: nothing is re-embedded. To rebuild groups and splits at a new threshold, re-run the leakage
    stage with --set (cached embeddings are reused)."""
    from datakit.report.build import write_reports

    paths, what_if = write_reports(
        run_dir, include_text=include_text, cosine_threshold=cosine_threshold, jaccard_threshold=jaccard_threshold
    )
    if as_json:
        print(json.dumps({"reports": {k: str(v) for k, v in paths.items()}, "what_if": what_if}, indent=2))
        return
    out = Console()
    for kind, path in paths.items():
        out.print(f"{kind:<12} {path}")
    if what_if:
        out.print(
            f"what-if (jaccard >= {what_if['jaccard_threshold']}, cosine >= {what_if['cosine_threshold']}): "
            f"{what_if['text_pairs']:,} linked text pairs, {what_if['cross_split_pairs']:,} across train and eval"
        )


@app.command()
@guarded
def score(
    run_dir: DirArg,
    predictions: Annotated[
        Path, typer.Argument(help="the model's outputs: JSONL, CSV or Parquet with an example id and the raw output")
    ],
    split: Annotated[str, typer.Option("--split", help="the split the predictions are for")] = "test",
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="another model's predictions on the same split: paired deltas are reported"),
    ] = None,
    allow_uncertified: Annotated[
        bool, typer.Option("--allow-uncertified", help="score a run whose train/eval certificate did not pass")
    ] = False,
    id_column: Annotated[str, typer.Option("--id-column", help="column holding the example id")] = "example_id",
    prediction_column: Annotated[
        str, typer.Option("--prediction-column", help="column holding the model's raw output text")
    ] = "prediction",
    draws: Annotated[int, typer.Option("--bootstrap", help="bootstrap draws for the 95% intervals (0: none)")] = 1000,
    seed: Annotated[int | None, typer.Option("--seed", help="bootstrap seed (default: the run's seed)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a model's predictions on a run's eval split: the coding card's metrics (or ROUGE-L/BLEU for
    impressions), invalid codes, contradictions, per slice, with bootstrap intervals, against two floors
    computed from the data (retrieval vote, majority) and an optional baseline. Writes reports/score.json and
    reports/score.html."""
    from datakit.score.scoring import score_predictions

    summary = score_predictions(
        run_dir, predictions, split, baseline, allow_uncertified, id_column, prediction_column, draws, seed
    )
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    out = Console(highlight=False)
    inputs = summary["inputs"]["model"]
    out.print(
        f"{summary['task']} · {summary['split']}: {inputs['examples']:,} examples, {inputs['scored']:,} predicted, "
        f"{inputs['missing']:,} missing, {inputs['extra']:,} not in split, {inputs['duplicate']:,} duplicate ids"
    )
    if not summary["certificate"]["passed"]:
        out.print(f"[bold red]uncertified run:[/] {summary['certificate']['reason']}")
    table = Table(title="score (95% bootstrap interval)")
    table.add_column("metric")
    for name in summary["systems"]:
        table.add_column(name, justify="right")
    for metric in summary["metrics"]:
        cells = []
        for name in summary["systems"]:
            cell = summary["overall"]["systems"][name][metric["name"]]
            lo, hi = cell["ci"]
            value = "n/a" if cell["value"] is None else f"{cell['value']:.3f}"
            cells.append(value if lo is None else f"{value} [{lo:.3f}, {hi:.3f}]".replace("0.", "."))
        table.add_row(metric["name"], *cells)
    out.print(table)
    root = run_dir.parent if run_dir.name == "shards" else run_dir
    out.print(f"reports: {root / 'reports' / 'score.html'}")


@app.command()
@guarded
def verify(path: DirArg, as_json: JsonOpt = False) -> None:
    """Re-check shards against their manifest: hashes, rows, schema, shard layout, message structure."""
    from datakit.shards.verify import verify as verify_shards

    summary = verify_shards(path)
    if as_json:
        typer.echo(json.dumps({"ok": True, **summary}, indent=2))
    else:
        Console(highlight=False).print(
            f"[bold green]ok:[/] {summary['shards']} shards, {summary['rows']:,} examples in {summary['folder']}"
        )


@app.command()
@guarded
def inspect(path: DirArg, as_json: JsonOpt = False) -> None:
    """Verify the shards against their manifest, then show counts per split, token percentiles and tags."""
    from datakit.shards.inspect import inspect as inspect_shards

    info = inspect_shards(path)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console(highlight=False)
    table = Table(title=f"{info['recipe']} ({info['task']}): {info['examples']:,} examples", title_justify="left")
    for col in (
        "split",
        "examples",
        "shards",
        "weight sum",
        "prompt p50/p90/p99/max",
        "completion p50/p90/p99/max",
    ):
        table.add_column(col, justify="right")
    for split, s in info["splits"].items():
        tok = s["tokens"] or {}

        def pct(col: str, tok: dict[str, Any] = tok) -> str:
            return "/".join(str(v) for v in tok[col].values()) if col in tok else "-"

        table.add_row(
            split,
            f"{s['examples']:,}",
            str(s["shards"]),
            f"{s['sample_weight_sum']:,.1f}",
            pct("n_prompt_tokens"),
            pct("n_completion_tokens"),
        )
    console.print(table)
    v = info["verified"]
    console.print(f"[bold green]verified:[/] {v['shards']} shards, {v['rows']:,} rows match the manifest's sha256")
    tags = Table(title="tags", title_justify="left")
    tags.add_column("tag")
    tags.add_column("examples", justify="right")
    for tag, n in info["tags"].items():
        tags.add_row(tag, f"{n:,}")
    console.print(tags)


@app.command("sample-export")
@guarded
def sample_export(
    path: Annotated[Path, typer.Argument(help="CSV file to write, e.g. cases.csv")],
    n: Annotated[int, typer.Option("--n", min=1, max=1_000_000, help="cases")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="generator seed")] = 17,
) -> None:
    """Write the embedded sample as a hospital export looks (own column names, US dates, ';' code lists): a file
    to practise bringing your own data on (README, "Bring your own data")."""
    from datakit.sources.export import EXPORT_COLUMNS, write_sample_export

    rows = write_sample_export(path, n, seed)
    Console(highlight=False).print(
        f"[bold green]wrote[/] {rows:,} cases to {path} (columns {', '.join(EXPORT_COLUMNS.values())})"
    )


@app.command()
@guarded
def diff(
    run_a: Annotated[Path, typer.Argument(help="the earlier run directory or shards folder")],
    run_b: Annotated[Path, typer.Argument(help="the later run directory or shards folder")],
    as_json: JsonOpt = False,
    ids: Annotated[
        Path | None, typer.Option("--ids", help="write every case id the diff names to this CSV (change, ids, splits)")
    ] = None,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="exit 1 when the two differ (like git diff)")] = False,
) -> None:
    """What changed between two dataset versions: cases added, removed, moved split, content or labels changed,
    shard files rewritten (both verified first; ids, hashes and counts only)."""
    from datakit.shards.diff import SHOWN_IDS, diff_runs, id_table

    d = diff_runs(run_a, run_b)
    if ids is not None:
        id_table(d).write_csv(ids)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
    else:
        out = Console(highlight=False)
        if not d["comparable_ids"]:
            out.print(
                "[bold yellow]warning:[/] the two builds were keyed with different keys (key ids "
                f"{d['a']['key_id']} and {d['b']['key_id']}): the same case has a different id in each, so cases "
                "show as removed and added"
            )
        out.print(
            f"cases: {d['cases']['a']:,} → {d['cases']['b']:,} ({d['cases']['in_both']:,} in both); recipe "
            f"{'unchanged' if d['same_recipe'] else 'changed'}"
        )
        table = Table(title="changes", title_justify="left")
        for col in ("change", "cases", f"case ids (first {SHOWN_IDS})"):
            table.add_column(col)
        sections = [(k, d[k]) for k in ("added", "removed", "content_changed", "labels_changed", "prompts_changed")]
        sections += [(f"moved {m['from']} → {m['to']}", m["case_ids"]) for m in d["moved_split"]]
        for name, listed in sections:
            table.add_row(
                name, f"{len(listed):,}", " ".join(listed[:SHOWN_IDS]) + (" …" if len(listed) > SHOWN_IDS else "")
            )
        out.print(table)
        sh = d["shards"]
        out.print(
            f"shards: {len(sh['rewritten'])} rewritten, {len(sh['added'])} added, {len(sh['removed'])} removed, "
            f"{sh['unchanged']} unchanged"
        )
        out.print("[bold green]identical[/]" if d["identical"] else "the two builds differ")
    if exit_code and not d["identical"]:
        raise typer.Exit(1)


@recipe_app.command("check")
@guarded
def recipe_check(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Validate a recipe (and any --set overrides); unknown keys are errors that name the key."""
    from datakit.recipe import load_recipe

    r = load_recipe(recipe, set_ or [])
    Console(highlight=False).print(
        f"[bold green]ok:[/] {recipe} (name {r.name}, task {r.task}, source {r.source.kind}, hash {r.hash()[:12]})"
    )


@recipe_app.command("show")
@guarded
def recipe_show(recipe: RecipeArg, set_: SetOpt = None) -> None:
    """Print the resolved recipe (defaults filled in, overrides applied) as JSON."""
    from datakit.recipe import load_recipe

    typer.echo(json.dumps(load_recipe(recipe, set_ or []).canonical(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
