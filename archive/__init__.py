"""The core: cases and their vaults, evidence, storage, the custody ledger, verification."""
