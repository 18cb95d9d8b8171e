"""The custody ledger: its byte format, the Merkle tree over it, proofs, sealed checkpoints."""
