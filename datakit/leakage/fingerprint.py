"""Layer 3: metadata fingerprints, keyed so that they can be published in reports.

- exam fingerprint: HMAC(patient, exam date, sorted CPT set): the same exam dictated twice, an addendum filed as
  a new case, a re-read under a new case id;
- accession fingerprint: HMAC(accession): the same order with new text.
The patient itself is a grouping key too (`patient_key`): a new exam of the same patient is linked.
"""

from __future__ import annotations

import polars as pl

from datakit.keys import SecretKey

# layer name -> the column `fingerprints` fills (the certificate and the retrieval guard both check these)
METADATA_LAYERS = {"exam_fingerprint": "exam_fp", "accession": "accession_fp", "patient": "patient_key"}


def fingerprints(cases: pl.DataFrame, key: SecretKey) -> pl.DataFrame:
    """Columns exam_fp, accession_fp, patient_key (keyed hex, null where the inputs are missing)."""
    cpt = pl.col("cpt_codes").list.unique().list.sort().list.join(" ") if "cpt_codes" in cases.columns else pl.lit("")
    exam = cases.select(
        pl.when(pl.col("patient_id").is_not_null() & pl.col("exam_date").is_not_null())
        .then(
            pl.concat_str([pl.col("patient_id"), pl.col("exam_date").cast(pl.String), cpt.fill_null("")], separator="|")
        )
        .alias("exam_fp")
    ).to_series()
    return pl.DataFrame(
        {
            "exam_fp": key.hmac_hex(exam, "exam-fingerprint"),
            "accession_fp": key.hmac_hex(cases["accession"], "accession"),
            "patient_key": key.hmac_hex(cases["patient_id"], "patient"),
        }
    )
