"""Assemble stage: prompt/completion messages for each case."""
