"""Case files, their verification and the receipts of it; the case's legal life: its stages
(:mod:`.stages`), legal reviews (:mod:`.reviews`) and closing with its sealed case archive
record (:mod:`.closing`), whose tables are in :mod:`.models`."""
