"""Seals: the organisation's e-seal over items, documents and checkpoints."""
