"""Leakage defense: content hashes and splits (the full three-layer defense builds on these)."""
