"""Verifiers and scorers: how candidates are judged."""
