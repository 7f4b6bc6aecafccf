"""The grading layer: whether an answer is right. Math answers (extraction and
equivalence, bounded in worker processes) and free-form answers (normalised text, a
yes/no judge). Imports only the core."""
