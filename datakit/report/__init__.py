"""Auditor reports rendered from stage outputs."""
