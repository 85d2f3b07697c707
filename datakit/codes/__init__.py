"""Codes stage: validated code sets, specificity-correction pairs, hard cases, prior-run exclusion."""
