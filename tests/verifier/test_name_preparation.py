"""X.509 names compare as asn1crypto compares them, with each distinct value prepared once
per process (``evidence_verify.certs.memoise_name_preparation``)."""

from __future__ import annotations

import uuid

from asn1crypto import x509

import evidence_verify.cades  # noqa: F401  (installs the memo, as verifying does)
from evidence_verify.certs import NAME_PREPARATIONS_KEPT, memoise_name_preparation


def _name(**values: str) -> x509.Name:
    # Parsed anew from DER each time, as each seal's certificates and attributes are.
    return x509.Name.load(x509.Name.build(values).dump())


def test_names_compare_as_asn1crypto_prepares_them():
    memoised = x509.NameTypeAndValue._ldap_string_prep
    original = memoised.__wrapped__
    for value in ("Evidence  Archive", "  evidence archive ", "某某市综合行政执法局", "ＡＢＣ", "E\u0301vidence",
                  "x" * 300, ""):
        assert memoised(None, value) == original(None, value), value
    unit = "某某市综合行政执法局"
    assert _name(common_name="Evidence   Seal", organization_name=unit) == _name(
        common_name=" evidence seal", organization_name=unit)
    assert _name(common_name="Evidence Seal", organization_name=unit) != _name(
        common_name="Evidence Seals", organization_name=unit)
    assert _name(common_name="Evidence Seal", organization_name=unit) != _name(
        common_name="Evidence Seal", organization_name="某某市公安局")


def test_a_value_is_prepared_once_however_many_names_carry_it():
    memoise_name_preparation()  # a second call changes nothing
    info = x509.NameTypeAndValue._ldap_string_prep.cache_info
    assert info().maxsize == NAME_PREPARATIONS_KEPT
    value = f"Seal {uuid.uuid4()}"
    before = info()
    assert _name(common_name=value) == _name(common_name=value.upper())
    assert _name(common_name=value) == _name(common_name=value)
    after = info()
    assert after.misses - before.misses == 2  # the value and its upper case, once each
    assert after.hits - before.hits == 2
