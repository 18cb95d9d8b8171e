"""Case files, their verification and the receipts of it."""
