"""Evaluation: run a strategy over a task, store records, draw curves."""
