"""Evaluation sets used by tests and bench (never by stages): planted PHI with its spans, planted leaks."""
