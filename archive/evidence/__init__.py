"""Evidence items: receiving into a vault, file names, fixity."""
