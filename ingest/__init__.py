"""Receiving and understanding what arrives: uploads, probing, derived files, continuity."""
