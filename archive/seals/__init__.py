"""Seals: the organisation's e-seal over items, documents and checkpoints.

* :mod:`.sealer`: the e-seal key, the time-stamping authority and trust roots
  (:class:`~.sealer.Sealer`, held by each entry point in a :class:`~.sealer.SealerSource`);
* :mod:`.registry`: every certificate and SM2 key that ever sealed, kept forever;
* :mod:`.manifests`: the canonical manifest of an item, which gets sealed;
* :mod:`.items`: sealing an item (manifest, CAdES-B-T, SM2/SM3, and the PAdES copy);
* :mod:`.pades`: PAdES-B-T sealed copies of PDF originals;
* :mod:`.errors`: a seal that could not be made, or not yet.

Checkpoints seal the custody ledger and live with it, in :mod:`archive.custody.checkpoints`.
"""
