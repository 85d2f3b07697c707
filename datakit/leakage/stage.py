"""The leakage stage: find every link between records, group linked records, split by group, certify.

Layers (each either runs or stops the build; none is skipped silently):

1. `exact`: sha256 of the normalised coding-relevant text (`leakage.fields`); `near`: MinHash + LSH over the
   same text, verified by estimated Jaccard >= `leakage.minhash.threshold`.
2. `cosine`: embeddings (cached by content hash under `cache/`) + FAISS, cosine >= `leakage.cosine_threshold`.
3. `exam_fingerprint` / `accession`: keyed hashes of (patient, exam date, CPT set) and of the accession;
   `patient`: the patient itself.

Signatures and embeddings are computed once per distinct normalised text. After the split the certificate
re-checks every layer across train and eval with complete searches (joins for keys, every LSH bucket pair,
exact top-1 cosine of each eval text against all train texts); a cross link found there is added to the graph
and the groups and split are recomputed (at most `REPAIR_ROUNDS` times). The build fails if any remains.

Outputs in `stages/leakage/`: the rows with `dedup_hash`, `leakage_group`, `group_links`, `group_size`,
`split`; `links.parquet` (case-id pairs, kind, score), `similarities.parquet` (content pairs with their
Jaccard/cosine down to the report floors, for re-applying thresholds), `groups.parquet`, `certificate.json`,
`leakage.json`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.content import FIELD_SEPARATOR, normalise_text, sha256_hex
from datakit.errors import DatakitError, StageError
from datakit.keys import SecretKey, load_key
from datakit.leakage import embed, minhash, words
from datakit.leakage.canonical import canonical_text, masked
from datakit.leakage.certificate import Certificate, certify
from datakit.leakage.fingerprint import fingerprints
from datakit.leakage.groups import connected_components, content_edges, group_links, key_links
from datakit.leakage.splits import EVAL_SPLITS, assign_group_splits
from datakit.recipe import Leakage, Recipe
from datakit.report.build import REPAIR_MOVES
from datakit.rundir import RunDir, file_sha256
from datakit.runner import PeakRss, StageContext, StageResult

REPAIR_ROUNDS = 10
BANDS_PER_CHUNK = 4
JACCARD_FLOOR = 0.5  # similarities at or above these are kept for the report and for threshold what-ifs
COSINE_FLOOR = 0.80
CONTAINMENT_FLOOR = 0.5


def frozen_eval_files(path: str | None) -> list[Path]:
    """The leakage-stage parts (or shard index) of the earlier run named by `split.frozen_eval`; [] without one."""
    if path is None:
        return []
    earlier = RunDir(Path(path).expanduser())
    for c in (earlier.stage_dir("leakage"), earlier.shards / "_examples_index.parquet", earlier.root):
        files = (
            sorted(c.glob("part-*.parquet")) if c.is_dir() else ([c] if c.suffix == ".parquet" and c.is_file() else [])
        )
        if files:
            return files
    raise StageError(
        f"split.frozen_eval '{path}' holds neither stages/leakage/ nor shards/_examples_index.parquet of a datakit run"
    )


def frozen_eval_digest(files: list[Path]) -> str | None:
    """A fingerprint of the frozen eval set's files (part of the stage's config hash)."""
    return str(sha256_hex(pl.Series([",".join(file_sha256(f) for f in files)]))[0]) if files else None


def frozen_eval_table(files: list[Path]) -> pl.DataFrame | None:
    """(case_id, frozen_split) of the earlier run's val/test records."""
    if not files:
        return None
    return (
        pl.read_parquet(files, columns=["case_id", "split"])
        .filter(pl.col("split").is_in(EVAL_SPLITS))
        .group_by("case_id")
        .agg(pl.col("split").max().alias("frozen_split"))
    )


def leakage_config(recipe: Recipe) -> dict[str, Any]:
    key = load_key(recipe)
    return {
        "leakage": recipe.leakage.model_dump(mode="json"),
        "split": recipe.split.model_dump(mode="json"),
        "seed": recipe.seed,
        "key_id": key.key_id,
        "key_origin": "demo" if key.is_demo else key.origin.split(":")[0],
        "frozen_eval_digest": frozen_eval_digest(frozen_eval_files(recipe.split.frozen_eval)),
    }


@dataclass
class LayerClock:
    """Wall time and peak RSS per layer, for `_stage.json` and the bench."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)
    # progress in each layer's own units (the stage context's phase/advance; no-ops in tests and the bench)
    phase: Callable[[str, int | None, str], None] = lambda step, total, unit: None
    advance: Callable[[int], None] = lambda n: None

    @contextmanager
    def layer(self, name: str) -> Any:
        t0 = time.perf_counter()
        with PeakRss() as rss:
            try:
                yield
            except DatakitError:
                raise
            except Exception as err:  # no layer passes data through: stop, naming the layer (never the text)
                raise StageError(f"leakage layer '{name}' could not run: {type(err).__name__}") from err
        self.layers[name] = {"seconds": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(rss.peak / 2**20, 1)}


@dataclass
class Detection:
    """Everything the layers found, at node (case) and content (distinct normalised text) level."""

    # node, case_id, content, dedup_hash, exam_fp, accession_fp, patient_key, exam_date, rows, template,
    # look_alike (template, or a text whose words neighbours span template_min_patients patients)
    nodes: pl.DataFrame
    texts: pl.Series  # normalised text per content
    signatures: np.ndarray
    shingle_counts: np.ndarray
    vectors: np.ndarray
    word_index: words.WordIndex | None
    word_binding: pl.DataFrame  # content pairs (a < b) whose words link groups records (mutual)
    edges: pl.DataFrame  # a, b (nodes), kind, score: the links that group records
    template_edges: pl.DataFrame  # content links inside template clusters (kind template_*): reported only
    similarities: pl.DataFrame  # content pairs: a, b, jaccard, cosine, containment (floors applied)
    embedding: dict[str, Any]
    signatures_cached: dict[str, int]  # MinHash signatures computed / read from the cache


def content_text(fields: tuple[str, ...], columns: list[str]) -> pl.Expr:
    present = [normalise_text(pl.col(f)) for f in fields if f in columns]
    if not present:
        raise StageError(f"none of leakage.fields ({', '.join(fields)}) is a column of the input")
    return pl.concat_str(present, separator=FIELD_SEPARATOR)


def distinct_contents(
    rows: pl.DataFrame, fields: tuple[str, ...], lexicon: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cases, contents). `cases`: one row per case id in case-id order, with `rows` (examples of the case),
    `dedup_hash` (sha256 of the normalised text), `node` (row number) and `content`; `contents`: one row per
    distinct normalised text (content, dedup_hash, text, canonical, rep = its first node); `canonical` is the
    words layer's text (`canonical.canonical_text`: synonyms written one way, boilerplate and filler removed).
    The leakage stage and the retrieval guard both number cases and texts with this function, so their layers
    see the same corpus."""
    counts = rows.group_by("case_id").agg(pl.len().alias("rows"))
    # nodes are numbered in case-id order: components and group names depend on it, so it must not vary
    cases = rows.unique("case_id", keep="first", maintain_order=True).join(counts, on="case_id").sort("case_id")
    text = cases.select(content_text(fields, cases.columns).alias("text"))["text"]
    cases = cases.with_columns(
        sha256_hex(text).alias("dedup_hash"), pl.arange(0, cases.height, dtype=pl.UInt32).alias("node")
    )
    contents = (
        cases.select("dedup_hash", text.alias("text"), "node")
        .group_by("dedup_hash", maintain_order=True)
        .agg(pl.col("text").first(), pl.col("node").min().alias("rep"))
        .with_row_index("content")
    )
    # the words layer's text: de-identification surrogates as [phi] (`phi_spans`), then canonical
    unmasked = cases.with_columns(masked(cases, f) for f in fields if f in cases.columns)
    canonical = unmasked.select(canonical_text(content_text(fields, cases.columns), lexicon).alias("canonical"))
    firsts = pl.DataFrame({"node": cases["node"], "canonical": canonical["canonical"]})
    contents = contents.join(firsts.rename({"node": "rep"}), on="rep", how="left", maintain_order="left")
    cases = cases.join(contents.select("dedup_hash", "content"), on="dedup_hash", maintain_order="left")
    return cases, contents


def text_patients(cases: pl.DataFrame) -> pl.DataFrame:
    """(content, patient) of every case; a case without a patient counts as its own."""
    return cases.select(pl.col("content").cast(pl.UInt32), pl.coalesce("patient_id", "case_id").alias("patient"))


def make_encoder(cfg: Leakage) -> embed.Encoder:
    return embed.make_encoder(
        cfg.embedding.backend, cfg.embedding.model, cfg.embedding.device, cfg.embedding.batch_size
    )


def detect(
    rows: pl.DataFrame,
    cfg: Leakage,
    key: SecretKey,
    cache_root: Path,
    clock: LayerClock,
    encoder_factory: Callable[[Leakage], embed.Encoder] | None = None,
) -> Detection:
    """Run the three layers over the distinct cases of `rows` (pair examples share their case's node)."""
    clock.phase("exact", rows.height, "records")
    with clock.layer("exact"):
        cases, contents = distinct_contents(rows, cfg.fields, cfg.words.lexicon)
        exact = key_links(cases, "dedup_hash", "exact")
    clock.advance(rows.height)
    rep = contents.select(pl.col("content").cast(pl.UInt32), pl.col("rep"))
    keyed = contents.select(pl.col("dedup_hash").alias("content_hash"), "text")
    with clock.layer("near"):
        mh = cfg.minhash
        clock.phase("minhash", 1, "signature sets")
        sig, sig_stats = minhash.cached_signatures(keyed, cache_root, k=mh.k, num_perm=mh.num_perm)
        table = minhash.band_table(sig, mh.bands, mh.rows, np.arange(len(sig), dtype=np.uint32))
        sizes = minhash.shingle_counts(contents["text"], mh.k)
        chunks = []
        clock.phase("LSH bands", mh.bands, "bands")
        for cand in minhash.candidate_pair_chunks(table, mh.bands, mh.max_bucket, BANDS_PER_CHUNK):
            clock.advance(BANDS_PER_CHUNK)
            ca, cb = cand["a"].to_numpy(), cand["b"].to_numpy()
            jac = minhash.jaccard(sig, ca, cb)
            linked = minhash.is_near(jac, sizes[ca], sizes[cb], mh.threshold, mh.containment)
            scored = cand.with_columns(pl.Series("jaccard", jac), pl.Series("linked", linked))
            chunks.append(scored.filter((pl.col("jaccard") >= JACCARD_FLOOR) | pl.col("linked")))
        del table
        jpairs = pl.concat(chunks).unique(["a", "b"], keep="first").sort("a", "b")
        near = content_edges(jpairs.filter(pl.col("linked")), rep, rep, "near", "jaccard")
    with clock.layer("cosine"):
        encoder = (encoder_factory or make_encoder)(cfg)
        clock.phase("embedding", len(contents), "texts")
        vectors, emb_stats = embed.embed_contents(keyed, encoder, cache_root, clock.advance)
        vectors = embed.centred(vectors)
        cpairs = embed.neighbour_pairs(
            vectors, cfg.cosine_neighbours, min(COSINE_FLOOR, cfg.cosine_threshold), cfg.exact_index_max
        ).rename({"score": "cosine"})
        cosine = content_edges(cpairs.filter(pl.col("cosine") >= cfg.cosine_threshold), rep, rep, "cosine", "cosine")
    word_index, wpairs = None, pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32})
    word_links = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32})
    loose = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "containment": pl.Float32, "linked": pl.Boolean})
    busy = np.zeros(len(contents), dtype=bool)
    if cfg.words.enabled:
        clock.phase("words", 1, "indexes")
        with clock.layer("words"):
            w = cfg.words
            word_index = words.build_index(contents["canonical"], w.specific_df)
            scored, binding, busy = words.detect_links(
                word_index, w, text_patients(cases), cfg.template_min_patients, CONTAINMENT_FLOOR
            )
            word_links = binding.select("a", "b")
            loose = scored.filter(pl.col("linked")).join(word_links, on=["a", "b"], how="anti")
            wpairs = scored.drop("linked")
        clock.advance(1)
    wordlinks = content_edges(wpairs.join(word_links, on=["a", "b"]), rep, rep, "words", "containment")
    clock.phase("fingerprints", rows.height, "records")
    with clock.layer("fingerprint"):
        fps = fingerprints(cases, key)
        cases = cases.with_columns(fps)
        meta = pl.concat(
            [
                key_links(cases, "exam_fp", "exam_fingerprint"),
                key_links(cases, "accession_fp", "accession"),
                key_links(cases, "patient_key", "patient"),
            ]
        )
    clock.advance(rows.height)
    similarities = (
        jpairs.drop("linked")
        .join(cpairs, on=["a", "b"], how="full", coalesce=True)
        .join(wpairs, on=["a", "b"], how="full", coalesce=True)
        .sort("a", "b")
    )
    template = template_contents(
        len(contents),
        pl.concat(
            [
                jpairs.filter(pl.col("linked")).select("a", "b"),
                cpairs.filter(pl.col("cosine") >= cfg.cosine_threshold).select("a", "b"),
            ]
        ),
        cases.select("content", "patient_key"),
        cfg.template_min_patients,
    )
    cases = cases.join(template, on="content", maintain_order="left").with_columns(
        (pl.col("template") | pl.Series(busy[cases["content"].to_numpy()])).alias("look_alike")
    )
    nodes = cases.select(
        "node",
        "case_id",
        "content",
        "dedup_hash",
        "exam_fp",
        "accession_fp",
        "patient_key",
        "exam_date",
        "rows",
        "template",
        "look_alike",
    )
    content_links = pl.concat([exact, near, cosine])
    flags = nodes.select("node", "template")
    is_template = (
        content_links.join(flags.rename({"node": "a"}), on="a", how="left", maintain_order="left")
        .join(flags.rename({"node": "b", "template": "template_b"}), on="b", how="left", maintain_order="left")
        .select(pl.col("template") | pl.col("template_b"))
        .to_series()
    )
    return Detection(
        nodes=nodes,
        texts=contents["text"],
        signatures=sig,
        shingle_counts=sizes,
        vectors=vectors,
        word_index=word_index,
        # words links bind when mutual (their own bound on look-alike chains), whatever the template rule says
        edges=pl.concat([content_links.filter(~is_template), wordlinks, meta]),
        template_edges=pl.concat(
            [
                content_links.filter(is_template).with_columns(("template_" + pl.col("kind")).alias("kind")),
                content_edges(loose, rep, rep, "template_words", "containment"),
            ]
        ),
        word_binding=word_links,
        similarities=similarities,
        embedding=emb_stats,
        signatures_cached=sig_stats,
    )


def template_contents(
    n_contents: int, content_pairs: pl.DataFrame, patients: pl.DataFrame, min_patients: int
) -> pl.DataFrame:
    """(content, template): a content is a template when the cluster its exact/near/cosine links put it in spans
    at least `min_patients` distinct patients (a normal-study boilerplate, not one patient's report copied).
    Links inside such a cluster carry no patient-specific text; grouping them would merge most of a large
    corpus into one group (measured: 92% of 113K sample cases) and leave eval with only the rare reports."""
    comps = connected_components(n_contents, content_pairs).rename({"node": "content"})
    if min_patients == 0:
        return comps.select("content", pl.lit(False).alias("template"))
    per = (
        patients.with_columns(pl.col("content").cast(pl.UInt32))
        .join(comps, on="content")
        .group_by("component")
        .agg((pl.col("patient_key").n_unique() >= min_patients).alias("template"))
    )
    return comps.join(per, on="component", how="left").select(
        pl.col("content").cast(pl.UInt32), pl.col("template").fill_null(False)
    )


def group_and_split(
    det: Detection,
    recipe: Recipe,
    frozen: pl.DataFrame | None,
    extra_edges: pl.DataFrame,
    previous: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """(node, case_id, component, leakage_group, split, split_rule) for every node.

    With `previous` (a repair round), groups keep their earlier split; a group that the new links made straddle
    two splits goes to train (or to its frozen eval split), so eval only shrinks and repair converges."""
    edges = pl.concat([det.edges, extra_edges]) if extra_edges.height else det.edges
    comps = connected_components(det.nodes.height, edges)
    nodes = det.nodes.join(comps, on="node")
    # a group is named by its smallest case id (nodes are numbered in case-id order), so names are stable
    named = nodes.filter(pl.col("node") == pl.col("component")).select("component", "case_id")
    names = named.with_columns(
        ("lg-" + sha256_hex(named["case_id"], prefix="leakage-group:").str.slice(0, 16)).alias("group")
    )
    nodes = nodes.join(names.select("component", "group"), on="component")
    if frozen is not None:
        nodes = nodes.join(frozen, on="case_id", how="left")
    else:
        nodes = nodes.with_columns(pl.lit(None, pl.String).alias("frozen_split"))
    # most frozen members wins; "val" < "test" alphabetically is the wrong way round for a tie, so rank explicitly
    frozen_votes = (
        nodes.drop_nulls("frozen_split")
        .group_by("group", "frozen_split")
        .agg(pl.len().alias("votes"))
        .sort(["group", "votes", "frozen_split"], descending=[False, True, False])
        .group_by("group", maintain_order=True)
        .agg(pl.col("frozen_split").first())
    )
    groups = (
        nodes.group_by("group")
        .agg(pl.col("rows").sum(), pl.col("exam_date").max().alias("last_exam"), pl.len().alias("cases"))
        .join(frozen_votes, on="group", how="left")
    )
    assigned = assign_group_splits(groups, recipe.split, recipe.seed)
    if previous is not None:
        before = (
            nodes.select("node", "group")
            .join(previous.select("node", pl.col("split").alias("before")), on="node")
            .group_by("group")
            .agg(pl.col("before").n_unique().alias("n_before"), pl.col("before").first())
        )
        assigned = assigned.join(before, on="group", how="left").with_columns(
            pl.when(pl.col("frozen_split").is_not_null())
            .then(pl.col("split"))
            .when(pl.col("n_before") > 1)
            .then(pl.lit("train"))
            .otherwise(pl.col("before"))
            .alias("split"),
            pl.when(pl.col("frozen_split").is_null() & (pl.col("n_before") > 1))
            .then(pl.lit("repaired_to_train"))
            .otherwise(pl.col("split_rule"))
            .alias("split_rule"),
        )
    return nodes.join(assigned.select("group", "split", "split_rule", "cases"), on="group").select(
        "node", "case_id", "component", pl.col("group").alias("leakage_group"), "split", "split_rule", "cases"
    )


def split_and_certify(
    det: Detection, recipe: Recipe, frozen: pl.DataFrame | None, clock: LayerClock
) -> tuple[pl.DataFrame, Certificate, pl.DataFrame, list[dict[str, Any]]]:
    """Group, split and certify; links the certificate finds are added and the split repaired, at most
    `REPAIR_ROUNDS` times. Returns (assigned, last certificate, added edges, rounds); `assigned` keeps each
    node's split before repair in `first_split`, and each round its train↔eval links per layer."""
    extra = pl.DataFrame(schema={"a": pl.UInt32, "b": pl.UInt32, "kind": pl.String, "score": pl.Float32})
    rounds = []
    assigned = pl.DataFrame()
    clock.phase("certificate", None, "rounds")
    first = pl.DataFrame()
    for round_no in range(REPAIR_ROUNDS + 1):
        clock.advance(1)
        assigned = group_and_split(det, recipe, frozen, extra, assigned if round_no else None)
        if round_no == 0:
            first = assigned.select("node", pl.col("split").alias("first_split"))
        with clock.layer(f"certificate_round_{round_no}"):
            cert = certify(det, assigned, recipe.leakage)
        rounds.append(
            {
                "round": round_no,
                "cross_links": cert.cross_link_total,
                "by_layer": {name: int(v["train_eval_links"]) for name, v in cert.layers.items()},
            }
        )
        if cert.cross_link_total == 0 or round_no == REPAIR_ROUNDS:
            break
        extra = pl.concat([extra, cert.cross_edges])
    assigned = assigned.join(first, on="node", maintain_order="left")
    return assigned, cert, extra, rounds


def repair_moves(assigned: pl.DataFrame, added: pl.DataFrame) -> pl.DataFrame:
    """(case_id, first_split, split, layers): the records repair moved, and the layers whose train↔eval links
    (found by the certificate and added as edges) touched their leakage group."""
    moved = assigned.filter(pl.col("split") != pl.col("first_split"))
    group_of = assigned.select("node", "leakage_group")
    touched = (
        pl.concat([added.select(pl.col("a").alias("node"), "kind"), added.select(pl.col("b").alias("node"), "kind")])
        .join(group_of, on="node")
        .group_by("leakage_group")
        .agg(pl.col("kind").unique().sort().alias("layers"))
    )
    return (
        moved.join(touched, on="leakage_group", how="left")
        .select("case_id", "first_split", "split", pl.col("layers").fill_null([]))
        .sort("case_id")
    )


def run_leakage(ctx: StageContext) -> StageResult:
    recipe = ctx.recipe
    cfg = recipe.leakage
    key = ctx.key
    rows = ctx.read_input()
    frozen = frozen_eval_table(frozen_eval_files(recipe.split.frozen_eval))
    clock = LayerClock(phase=ctx.phase, advance=ctx.advance)
    det = detect(rows, cfg, key, ctx.rundir.cache, clock)
    assigned, cert, extra, rounds = split_and_certify(det, recipe, frozen, clock)
    edges = pl.concat([det.edges, extra]) if extra.height else det.edges
    links = group_links(
        assigned.select("node", pl.col("leakage_group").alias("component")),
        edges,
    ).rename({"component": "leakage_group", "links": "group_links"})
    per_case = (
        assigned.join(det.nodes.select("node", "dedup_hash", "look_alike"), on="node")
        .join(links, on="leakage_group")
        .select(
            "case_id",
            "dedup_hash",
            "leakage_group",
            "group_links",
            pl.col("cases").alias("group_size"),
            "split",
            "split_rule",
            "look_alike",
        )
    )
    out = rows.drop([c for c in ("split", "split_group", "split_rule", "look_alike") if c in rows.columns]).join(
        per_case, on="case_id", how="left", maintain_order="left"
    )
    if out["split"].null_count():
        raise StageError("internal error: a row has no split after grouping")
    ctx.write(out)
    from datakit.report.build import leakage_summary  # the report module reads what this stage writes

    case_of = det.nodes.select("node", "case_id")
    link_table = (
        pl.concat([edges, det.template_edges])
        .join(case_of.rename({"node": "a", "case_id": "case_a"}), on="a")
        .join(case_of.rename({"node": "b", "case_id": "case_b"}), on="b")
        .select("case_a", "case_b", "kind", "score")
        .sort("kind", "case_a", "case_b")
    )
    link_table.write_parquet(ctx.out_dir / "links.parquet")
    moves = repair_moves(assigned, extra)
    moves.write_parquet(ctx.out_dir / REPAIR_MOVES)
    content_hash_of = det.nodes.group_by("content").agg(pl.col("dedup_hash").first())
    (
        det.similarities.join(content_hash_of.rename({"content": "a", "dedup_hash": "hash_a"}), on="a")
        .join(content_hash_of.rename({"content": "b", "dedup_hash": "hash_b"}), on="b")
        .select("hash_a", "hash_b", "jaccard", "cosine")
        .sort("hash_a", "hash_b")
        .write_parquet(ctx.out_dir / "similarities.parquet")
    )
    groups = (
        out.group_by("leakage_group")
        .agg(
            pl.col("case_id").n_unique().alias("cases"),
            pl.len().alias("rows"),
            pl.col("split").first(),
            pl.col("group_links").first(),
            pl.col("patient_id").n_unique().alias("patients"),
        )
        .sort("leakage_group")
    )
    groups.write_parquet(ctx.out_dir / "groups.parquet")
    certificate = cert.to_json(out, recipe, key, det, rounds)
    summary = leakage_summary(
        out=out,
        links=link_table,
        similarities=det.similarities,
        groups=groups,
        certificate=certificate,
        moves=moves,
        layers=clock.layers,
        embedding=det.embedding,
        recipe=recipe,
        rows_in=rows.height,
    )
    _write_json(ctx.out_dir / "certificate.json", certificate)
    _write_json(ctx.out_dir / "leakage.json", summary)
    if not certificate["passed"]:
        from datakit.report.build import write_reports

        write_reports(ctx.run_dir, ctx.out_dir)
        failed = {k: v["train_eval_links"] for k, v in certificate["layers"].items() if v["train_eval_links"]}
        raise StageError(
            f"leakage certificate failed after {REPAIR_ROUNDS} repair rounds: train↔eval links remain {failed}; "
            f"see {ctx.run_dir / 'reports' / 'certificate.json'}"
        )
    stats = {
        "cases": det.nodes.height,
        "distinct_texts": len(det.texts),
        "links": summary["links"]["by_kind"],
        "groups": groups.height,
        "largest_group_cases": groups["cases"].max() or 0,
        "template_cases": int(det.nodes["template"].sum()),
        "rows_per_split": summary["splits"]["rows"],
        "split_rules": summary["splits"]["rules"],
        "certificate_passed": certificate["passed"],
        "repair_rounds": rounds,
        "layers": clock.layers,
        "embedding": det.embedding,
        "minhash_signatures": det.signatures_cached,
        "key": certificate["key"],
    }
    return StageResult(rows_in=rows.height, rows_out=out.height, stats=stats)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
