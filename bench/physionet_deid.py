"""De-identification on real ICU nursing and progress notes: the PhysioNet deid gold standard (surrogate PHI,
annotated by phrase), datakit's analyzer against presidio's default `AnalyzerEngine()` on the same notes, same run.

Prints phrase recall per kind family (names, dates, locations, phones/ids) and word precision on the tuning half
and on the patient-level hold-out (`datakit.evaluation.physionet.split`), then throughput of both on all notes.
`--misses` / `--false-alarms` list the **tuning** half's misses and false alarms in context (the notes' PHI are
surrogates); the hold-out is only ever scored.

    python bench/physionet_deid.py
    python bench/physionet_deid.py --misses --false-alarms
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import polars as pl

from datakit.deid.engine import Analyzer, corpus_lexicon
from datakit.deid.gazetteer import place_names
from datakit.evaluation import physionet
from datakit.recipe import Deid

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"


def presidio_default(model: str):  # type: ignore[no-untyped-def]
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp)


def context(note: physionet.Note, start: int, end: int, width: int = 45) -> str:
    t = note.text
    return (t[max(0, start - width) : start] + "[[" + t[start:end] + "]]" + t[end : end + 25]).replace("\n", " / ")


def show(label: str, s: dict[str, object]) -> None:
    fam = s["recall_by_family"]
    n = s["phrases_by_family"]
    assert isinstance(fam, dict) and isinstance(n, dict)
    per = "  ".join(f"{k} {v:.3f} ({n[k]})" for k, v in fam.items())
    print(
        f"{label:<28} phrases {s['phrases']:>4}  recall {s['phrase_recall']:.4f}  precision {s['word_precision']:.4f}"
        f"  | {per}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true", help="list the tuning half's misses")
    ap.add_argument("--false-alarms", action="store_true", help="list the tuning half's false alarms")
    ap.add_argument("--no-baseline", action="store_true", help="skip presidio's default set-up")
    ap.add_argument("--tagger", default=None, help="PHI tagger model (default: the recipe default, builtin)")
    ap.add_argument(
        "--cv",
        default=None,
        help="cross-validation on the tuning half: a model path with {k}, the tagger trained without fold k of N "
        "(bench/train_phi_tagger.py --fold k/N); scores each fold's notes with its own tagger",
    )
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--save", action="store_true", help="write the figures to bench/results/physionet_deid.json")
    args = ap.parse_args()
    if not (REAL / physionet.NOTES).is_file():
        raise SystemExit(f"{REAL / physionet.NOTES} not found: the benchmark needs ../shared/real_data")
    cfg = Deid()
    notes = physionet.load(REAL)
    tuning, holdout = physionet.split(notes)
    places = place_names(cfg.gazetteer_countries, cfg.gazetteer_min_population)
    lexicon = corpus_lexicon(pl.Series([n.text for n in notes]), places=places)
    tagger = cfg.tagger if args.tagger is None else args.tagger
    analyzer = Analyzer(cfg.spacy_model, lexicon, cfg.ner_gate, cfg.score_threshold, cfg.batch_size, places, tagger)
    print(f"tagger: {tagger or 'none'}")
    analyzer.analyze(["warm up Dr. Smith"])
    t0 = time.perf_counter()
    spans = analyzer.analyze([n.text for n in notes])
    ours_s = time.perf_counter() - t0
    by_id = {n.note_id: [(s.start, s.end) for s in sp] for n, sp in zip(notes, spans, strict=True)}
    # the corpus does not annotate clock times, which datakit replaces by default (deid.operators.TIME = "keep"
    # leaves them): the precision on what the corpus annotates is printed beside the strict one
    no_times = {
        n.note_id: [(s.start, s.end) for s in sp if s.entity != "TIME"] for n, sp in zip(notes, spans, strict=True)
    }
    print(
        f"PhysioNet deid notes: {len(notes)} notes, {len({n.patient for n in notes})} patients; "
        f"tuning {len(tuning)} notes, hold-out {len(holdout)} notes ({len({n.patient for n in holdout})} patients)"
    )
    results = {}
    train_part, dev_part = physionet.dev_split(tuning)
    parts = {"tuning": tuning, "tuning: tagger's train": train_part, "tuning: tagger's dev": dev_part}
    for label, part in (*parts.items(), ("holdout", holdout)):
        results[label] = physionet.score(part, [by_id[n.note_id] for n in part])
        show(f"datakit {label}", results[label])
        kept = physionet.score(part, [no_times[n.note_id] for n in part])
        print(f"{'':<28} precision with clock times kept (TIME = keep): {kept['word_precision']:.4f}")
    base_s = None
    if not args.no_baseline:
        engine = presidio_default(cfg.spacy_model)
        engine.analyze("warm up Dr. Smith", language="en")
        t0 = time.perf_counter()
        base = [[(r.start, r.end) for r in engine.analyze(n.text, language="en")] for n in notes]
        base_s = time.perf_counter() - t0
        base_by_id = {n.note_id: b for n, b in zip(notes, base, strict=True)}
        for label, part in (("tuning", tuning), ("holdout", holdout)):
            show(f"presidio default {label}", physionet.score(part, [base_by_id[n.note_id] for n in part]))
    chars = sum(len(n.text) for n in notes)
    print(f"datakit analyzer: {len(notes) / ours_s:,.1f} notes/s ({chars / ours_s / 1e3:,.0f} K chars/s, one process)")
    if base_s is not None:
        print(f"presidio default: {len(notes) / base_s:,.1f} notes/s; datakit / presidio = {base_s / ours_s:.1f}x")
    if args.cv:  # out-of-fold: every tuning note scored by a tagger that never saw its patient
        oof: dict[str, list[tuple[int, int]]] = {}
        for k in range(args.folds):
            part = [n for n in tuning if physionet.fold_of(n.patient, args.folds) == k]
            fold = Analyzer(
                cfg.spacy_model,
                lexicon,
                cfg.ner_gate,
                cfg.score_threshold,
                cfg.batch_size,
                places,
                args.cv.format(k=k),
            )
            for n, sp in zip(part, fold.analyze([n.text for n in part]), strict=True):
                oof[n.note_id] = [(x.start, x.end) for x in sp]
                oof["notime:" + n.note_id] = [(x.start, x.end) for x in sp if x.entity != "TIME"]
        results["cv"] = physionet.score(tuning, [oof[n.note_id] for n in tuning])
        show(f"tuning, out-of-fold ({args.folds})", results["cv"])
        kept = physionet.score(tuning, [oof["notime:" + n.note_id] for n in tuning])
        print(f"{'':<28} precision with clock times kept (TIME = keep): {kept['word_precision']:.4f}")
    if args.save:
        from results import save

        keys = ("phrases", "phrase_recall", "word_precision", "recall_by_family", "phrases_by_family")
        figures: dict[str, object] = {k: {f: v[f] for f in keys} for k, v in results.items()}
        figures["notes_per_s"] = round(len(notes) / ours_s, 1)
        if base_s is not None:
            figures["presidio_notes_per_s"] = round(len(notes) / base_s, 1)
        save("physionet_deid", figures, "python bench/physionet_deid.py " + " ".join(sys.argv[1:]))
    by_note = {n.note_id: n for n in tuning}
    if args.misses:
        which = "cv" if args.cv else "tuning"
        print(f"\n{which} misses:")
        for m in results[which]["misses"]:  # type: ignore[union-attr]
            print(f"  {m.kind:<18} {context(by_note[m.note_id], m.start, m.end)}")
    if args.false_alarms:
        which = "cv" if args.cv else "tuning"
        print(f"\n{which} false alarms:")
        for note_id, a, b in results[which]["false_alarms"]:  # type: ignore[union-attr]
            print(f"  {context(by_note[note_id], a, b)}")


if __name__ == "__main__":
    main()
