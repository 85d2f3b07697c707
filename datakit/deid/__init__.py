"""De-identification: presidio + radiology recognizers, keyed surrogates, per-patient date shift."""
