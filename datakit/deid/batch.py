"""De-identify records in batches (one presidio + spaCy engine per worker).

The executor (`datakit.executor`) runs `DeidActor` in this process, in forked worker processes or on Ray actors.
A record is (patient, date offset, texts). The result per record is its new texts, the operator counts, the
residual-check hits and, when something raised, the exception's type name (never its message: messages can
quote the text). A record whose batch raised is retried alone so one bad record cannot take its batch down,
for the analysis and for the residual scan alike; a record with a text over `Settings.max_chars` is not read at
all (error `too_long`). With `DATAKIT_DEBUG` set (`datakit --debug`) a failure's traceback goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from datakit.deid.engine import Analyzer, is_clinical
from datakit.deid.operators import replace_spans, residual_hits
from datakit.deid.phones import DEFAULT_REGIONS
from datakit.deid.residual import ResidualScanner, selected
from datakit.deid.surrogates import Keyed
from datakit.deid.truecase import rare_census_names


@dataclass(frozen=True)
class Settings:
    model: str
    lexicon: frozenset[str]
    gate: bool
    threshold: float
    batch_size: int
    operators: dict[str, str]
    key: bytes
    places: frozenset[str] = frozenset()
    scan_share: float = 0.0  # share of records the independent residual scan reads (datakit.deid.residual)
    tagger: str = ""  # the learned PHI tagger (datakit.deid.tagger): "builtin", a model folder, or "" for none
    phone_regions: tuple[str, ...] = DEFAULT_REGIONS  # regions whose national phone formats are read (phones.py)
    recurring: frozenset[str] = frozenset()  # words of many patients' records: the scan does not count them
    max_chars: int = 1_000_000  # a record with a longer text is quarantined unread (error TOO_LONG)


@dataclass
class Outcome:
    texts: list[str | None]
    counts: Counter[str] = field(default_factory=Counter)
    residual: list[str] = field(default_factory=list)
    error: str | None = None
    scan: Counter[str] | None = None  # the independent scan's hits by kind; None: the record was not scanned
    inserted: list[list[tuple[int, int]]] = field(default_factory=list)  # per text: (start, end) of each surrogate


TOO_LONG = "too_long"


def _failed(err: BaseException, n_texts: int) -> Outcome:
    """The outcome of a record the de-identifier raised on: nothing of it is kept; the traceback (which may quote
    the text) only with `datakit --debug`."""
    if os.environ.get("DATAKIT_DEBUG"):
        traceback.print_exception(err, file=sys.stderr)
    return Outcome(texts=[None] * n_texts, error=type(err).__name__)


Record = tuple[str, int, list[str | None]]  # (patient, date offset in days, texts)


class Deidentifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.analyzer = Analyzer(
            settings.model,
            settings.lexicon,
            settings.gate,
            settings.threshold,
            settings.batch_size,
            settings.places,
            settings.tagger,
            settings.phone_regions,
        )
        self.scanner = ResidualScanner(
            self.analyzer.nlp_engine.nlp,
            self.analyzer.truecaser,
            lambda w: is_clinical(w, settings.lexicon),
            rare_census_names(),
            settings.recurring,
            self.analyzer.nlp_engine.ner,
        )

    @property
    def gate_stats(self) -> tuple[int, int]:
        return self.analyzer.nlp_engine.lines_seen, self.analyzer.nlp_engine.lines_to_ner

    def run_counted(self, records: list[Record]) -> tuple[list[Outcome], tuple[int, int]]:
        """`run`, and the (lines seen, lines sent to NER) of this batch."""
        before = self.gate_stats
        out = self.run(records)
        after = self.gate_stats
        return out, (after[0] - before[0], after[1] - before[1])

    def run(self, records: list[Record]) -> list[Outcome]:
        too_long = {
            i for i, (_, _, texts) in enumerate(records) if any(t and len(t) > self.settings.max_chars for t in texts)
        }
        if too_long:  # never read: quarantined with their own reason, the rest of the batch goes on
            rest = [i for i in range(len(records)) if i not in too_long]
            done = iter(self.run([records[i] for i in rest]))
            return [
                Outcome(texts=[None] * len(r[2]), error=TOO_LONG) if i in too_long else next(done)
                for i, r in enumerate(records)
            ]
        flat = [(i, t) for i, (_, _, texts) in enumerate(records) for t in texts if t]
        try:
            spans = self.analyzer.analyze([t for _, t in flat])
        except Exception:
            return [self._one(r) for r in records]
        by_record: list[list] = [[] for _ in records]
        for (i, _), s in zip(flat, spans, strict=True):
            by_record[i].append(s)
        scans: list[tuple[int, str, list[tuple[int, int]]]] = []  # the scanned share, read in one batch
        outcomes = [self._apply(r, iter(by_record[i]), scans, i) for i, r in enumerate(records)]
        try:
            found: list[Counter[str] | BaseException] = list(
                self.scanner.scan_many([(text, inserted) for _, text, inserted in scans])
            )
        except Exception:  # each scanned text alone, so only the one that raises is quarantined
            found = [self._scan_alone(text, inserted) for _, text, inserted in scans]
        for (i, _, _), hits in zip(scans, found, strict=True):
            if isinstance(hits, BaseException):  # fail closed: a record whose scan raised is quarantined
                outcomes[i] = _failed(hits, len(records[i][2]))
                continue
            scan = outcomes[i].scan
            if scan is not None and not outcomes[i].error:
                scan.update(hits)
        return outcomes

    def _scan_alone(self, text: str, inserted: list[tuple[int, int]]) -> Counter[str] | BaseException:
        try:
            return Counter(self.scanner.scan(text, inserted))
        except Exception as err:
            return err

    def _one(self, record: Record) -> Outcome:
        try:
            spans = self.analyzer.analyze([t for t in record[2] if t])
        except Exception as err:  # fail closed: the record is quarantined, its text is never shown
            return _failed(err, len(record[2]))
        return self._apply(record, iter(spans))

    def _apply(
        self,
        record: Record,
        spans: Iterator[list],
        scans: list[tuple[int, str, list[tuple[int, int]]]] | None = None,
        index: int = 0,
    ) -> Outcome:
        """The record's texts with its spans replaced; a scanned record's texts are scanned here, or, given
        `scans`, added to it for one batched scan."""
        patient, offset, texts = record
        keyed = Keyed(self.settings.key, patient)
        outcome = Outcome(texts=[])
        scan = selected(texts, self.settings.scan_share)
        if scan:
            outcome.scan = Counter()
        try:
            for text in texts:
                if not text:
                    outcome.texts.append(text)
                    outcome.inserted.append([])
                    continue
                new, inserted = replace_spans(text, next(spans), keyed, offset, self.settings.operators, outcome.counts)
                outcome.texts.append(new)
                outcome.inserted.append(inserted)
                outcome.residual += residual_hits(new, inserted)
                if outcome.scan is not None and scans is not None:
                    scans.append((index, new, inserted))
                elif outcome.scan is not None:
                    outcome.scan.update(self.scanner.scan(new, inserted))
        except Exception as err:
            return _failed(err, len(texts))
        return outcome


def records_table(records: list[Record]) -> pa.Table:
    """Records as the Arrow batch `DeidActor` reads (patient, offset, texts)."""
    return pa.table(
        {
            "patient": pa.array([r[0] for r in records], pa.string()),
            "offset": pa.array([r[1] for r in records], pa.int64()),
            "texts": pa.array([r[2] for r in records], pa.list_(pa.string())),
        }
    )


def deidentify(
    records: list[Record],
    settings: Settings,
    n_jobs: int,
    chunk: int = 256,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[list[Outcome], tuple[int, int]]:
    """Outcomes in input order, and (lines seen, lines sent to NER), on this machine (`n_jobs` worker processes;
    <= 1 runs in this process)."""
    from datakit.executor import Resources
    from datakit.executor.local import LocalExecutor

    executor = LocalExecutor()
    try:
        out = executor.map_batches(
            records_table(records),
            DeidActor,
            (settings,),
            batch_rows=chunk,
            resources=Resources(processes=n_jobs),
            progress=progress,
        )
    finally:
        executor.close()
    return outcomes_from_table(out)


class DeidActor:
    """The stage's worker (`datakit.executor`: here, a forked worker process or a Ray actor): one `Deidentifier`
    built in the constructor, then Arrow batches of records (patient, offset, texts) in, their outcomes out (texts,
    and counts, scan hits, inserted spans as JSON)."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Deidentifier(settings)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if batch.num_rows == 0:
            return pa.table({})
        records: list[Record] = list(
            zip(
                batch.column("patient").to_pylist(),
                batch.column("offset").to_pylist(),
                batch.column("texts").to_pylist(),
                strict=True,
            )
        )
        outcomes, (seen, ner) = self.worker.run_counted(records)
        first = [1] + [0] * (len(outcomes) - 1)
        return pa.table(
            {
                "texts": pa.array([o.texts for o in outcomes], pa.list_(pa.string())),
                "counts": [json.dumps(dict(o.counts), sort_keys=True) for o in outcomes],
                "residual": pa.array([o.residual for o in outcomes], pa.list_(pa.string())),
                "error": pa.array([o.error for o in outcomes], pa.string()),
                "scan": pa.array([None if o.scan is None else json.dumps(dict(o.scan)) for o in outcomes], pa.string()),
                "inserted": [json.dumps(o.inserted) for o in outcomes],
                "lines_seen": [seen * f for f in first],
                "lines_ner": [ner * f for f in first],
            }
        )


def outcomes_from_table(table: pa.Table) -> tuple[list[Outcome], tuple[int, int]]:
    """What `DeidActor` wrote, back as outcomes in order, and the gate's (lines seen, lines sent to NER)."""
    rows = table.to_pylist()
    outcomes = [
        Outcome(
            texts=r["texts"],
            counts=Counter(json.loads(r["counts"])),
            residual=r["residual"],
            error=r["error"],
            scan=None if r["scan"] is None else Counter(json.loads(r["scan"])),
            inserted=[[(a, b) for a, b in spans] for spans in json.loads(r["inserted"])],
        )
        for r in rows
    ]
    return outcomes, (sum(r["lines_seen"] for r in rows), sum(r["lines_ner"] for r in rows))
