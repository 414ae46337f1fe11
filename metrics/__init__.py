"""Evaluation measures for explanations (papers 003, 000 and 004)."""
