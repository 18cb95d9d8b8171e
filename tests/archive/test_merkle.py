"""Tests for archive.custody.merkle against RFC 9162 section 2.1.

The reference functions below transcribe the RFC's recursive definitions literally
(MTH, PATH, PROOF, SUBPROOF) and hash with hashlib directly, so that the module under
test is checked against the specification rather than against itself.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from archive.custody.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# Deterministic runs and no example database written into the working tree.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=25)


# --- RFC 9162 section 2.1, transcribed -------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:])).digest()


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, entries[:k]) + [ref_mth(entries[k:])]
    return ref_path(m - k, entries[k:]) + [ref_mth(entries[:k])]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    return ref_subproof(m, entries, True)


def ref_subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [ref_mth(entries)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, entries[:k], b) + [ref_mth(entries[k:])]
    return ref_subproof(m - k, entries[k:], False) + [ref_mth(entries[:k])]


def ref_directions(m: int, n: int) -> list[str]:
    """Which side each PATH element sits on: the shape of the hash chain a proof gives."""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_directions(m, k) + ["right"]
    return ref_directions(m - k, n - k) + ["left"]


# --- helpers ------------------------------------------------------------------------------


def entries_for(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def flip(h: bytes, position: int = 0) -> bytes:
    """The same hash with one bit changed."""
    out = bytearray(h)
    out[position % len(out)] ^= 0x01
    return bytes(out)


def replace(items: list[bytes], position: int, value: bytes) -> list[bytes]:
    return [value if i == position else item for i, item in enumerate(items)]


# --- hashing and roots ----------------------------------------------------------------------

# From the certificate-transparency reference test suite (merkle_tree_test.cc).
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = leaf_hash(b"l"), leaf_hash(b"r")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    # Domain separation: a leaf made of two hashes is not the node over them.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_roots_match_the_certificate_transparency_vectors() -> None:
    hashes = [leaf_hash(e) for e in CT_ENTRIES]
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert root_from_leaf_hashes(hashes[:size]).hex() == expected


def test_inclusion_path_matches_the_certificate_transparency_vector() -> None:
    hashes = [leaf_hash(e) for e in CT_ENTRIES]
    assert [h.hex() for h in inclusion_proof(hashes, 0, 8)] == CT_PATH_0_OF_8


def test_small_trees_match_the_rfc_definitions() -> None:
    entries = entries_for(33)
    hashes = [leaf_hash(e) for e in entries]
    for n in range(34):
        assert root_from_leaf_hashes(hashes[:n]) == ref_mth(entries[:n]), n
        for index in range(n):
            assert inclusion_proof(hashes, index, n) == ref_path(index, entries[:n]), (index, n)
        for m in range(1, n):
            assert consistency_proof(hashes, m, n) == ref_proof(m, entries[:n]), (m, n)


@pytest.mark.slow  # a million leaves
def test_million_leaf_tree_matches_level_by_level_hashing() -> None:
    # An independent construction of the same tree: hash pairs level by level and
    # promote an odd last node unchanged, which is what MTH's split yields.
    n = 1_000_000
    hashes = [i.to_bytes(32, "big") for i in range(n)]
    level = hashes
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    root = root_from_leaf_hashes(hashes)
    assert root == level[0]
    proof = inclusion_proof(hashes, 777_777, n)
    verify_inclusion(leaf_hash=hashes[777_777], index=777_777, tree_size=n, proof=proof, root=root)


# --- inclusion ---------------------------------------------------------------------------


# Unique entries: with repeated leaves two different hash chains can coincide for real.
@settings(DETERMINISTIC, max_examples=60)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True))
@example([b""])
@example([b"", b"x"])
@example([bytes([i]) for i in range(70)])
@example([bytes([i]) for i in range(64)])
@example([bytes([i]) for i in range(65)])
def test_every_inclusion_proof_verifies_and_any_change_breaks_it(entries: list[bytes]) -> None:
    n = len(entries)
    hashes = [leaf_hash(e) for e in entries]
    root = root_from_leaf_hashes(hashes)
    assert root == ref_mth(entries)
    other_roots = [root_from_leaf_hashes(hashes[:size]) for size in (n - 1, n) if size] + [
        root_from_leaf_hashes([*hashes, leaf_hash(b"more")])
    ]
    for index in range(n):
        proof = inclusion_proof(hashes, index, n)
        verify_inclusion(leaf_hash=hashes[index], index=index, tree_size=n, proof=proof, root=root)
        assert root_from_inclusion(leaf_hash=hashes[index], index=index, tree_size=n, proof=proof) == root

        def rejected(**changes: object) -> None:
            claim: dict[str, object] = dict(leaf_hash=hashes[index], index=index, tree_size=n, proof=proof, root=root)
            claim.update(changes)
            with pytest.raises(ProofError):
                verify_inclusion(**claim)  # type: ignore[arg-type]

        for position, element in enumerate(proof):
            rejected(proof=replace(proof, position, flip(element, position)))
        rejected(leaf_hash=flip(hashes[index]))
        rejected(leaf_hash=leaf_hash(entries[index] + b"!"))
        rejected(root=flip(root, index))
        for other_root in other_roots:
            if other_root != root:
                rejected(root=other_root)
        for other_index in range(n):
            if other_index != index and hashes[other_index] != hashes[index]:
                rejected(index=other_index)
        rejected(index=n)
        rejected(index=-1)
        if proof:
            rejected(proof=proof[:-1])
        rejected(proof=[*proof, root])
        for other_size in range(index + 1, n + 4):
            if other_size == n:
                continue
            if ref_directions(index, other_size) != ref_directions(index, n):
                rejected(tree_size=other_size)
            else:
                # Same shape, same hash chain: the proof cannot tell these sizes apart,
                # which is why the size must come from the signed tree head.
                verify_inclusion(leaf_hash=hashes[index], index=index, tree_size=other_size, proof=proof, root=root)


def test_inclusion_failures_say_why() -> None:
    hashes = [leaf_hash(e) for e in entries_for(7)]
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, 2, 7)
    good = dict(leaf_hash=hashes[2], index=2, tree_size=7, proof=proof, root=root)

    cases: list[tuple[dict[str, object], str]] = [
        ({"proof": replace(proof, 1, flip(proof[1]))}, "inclusion proof does not lead to the root"),
        ({"root": flip(root)}, "inclusion proof does not lead to the root"),
        ({"proof": proof[:-1]}, "proof has wrong length"),
        ({"proof": [*proof, proof[0]]}, "proof has wrong length"),
        ({"index": 7}, "index out of range"),
        ({"index": -1}, "index out of range"),
        ({"tree_size": 0}, "index out of range"),
        ({"index": True}, "index is a bool, expected int"),
        ({"proof": replace(proof, 0, proof[0][:31])}, "proof element 0 is 31 bytes, expected 32"),
        ({"proof": replace(proof, 0, proof[0].hex())}, "proof element 0 is a str, expected bytes"),
        ({"leaf_hash": b"short"}, "leaf hash is 5 bytes, expected 32"),
        ({"root": root + b"\x00"}, "root is 33 bytes, expected 32"),
    ]
    for changes, reason in cases:
        with pytest.raises(ProofError, match=reason):
            verify_inclusion(**{**good, **changes})  # type: ignore[arg-type]
    assert issubclass(ProofError, ValueError)


def test_single_leaf_tree_has_an_empty_proof_and_the_leaf_as_root() -> None:
    h = leaf_hash(b"only")
    assert root_from_leaf_hashes([h]) == h
    assert inclusion_proof([h], 0, 1) == []
    verify_inclusion(leaf_hash=h, index=0, tree_size=1, proof=[], root=h)
    with pytest.raises(ProofError, match="proof has wrong length"):
        verify_inclusion(leaf_hash=h, index=0, tree_size=1, proof=[h], root=h)


def test_inclusion_proof_within_a_prefix_of_the_leaves() -> None:
    hashes = [leaf_hash(e) for e in entries_for(20)]
    root_13 = root_from_leaf_hashes(hashes[:13])
    proof = inclusion_proof(hashes, 12, 13)
    verify_inclusion(leaf_hash=hashes[12], index=12, tree_size=13, proof=proof, root=root_13)


def test_inclusion_proof_rejects_impossible_requests() -> None:
    hashes = [leaf_hash(e) for e in entries_for(4)]
    with pytest.raises(ValueError, match="index 4 is out of range"):
        inclusion_proof(hashes, 4, 4)
    with pytest.raises(ValueError, match="index 0 is out of range"):
        inclusion_proof([], 0, 0)
    with pytest.raises(ValueError, match="tree size 5"):
        inclusion_proof(hashes, 0, 5)
    with pytest.raises(ValueError, match="leaf hash 1 is 3 bytes"):
        root_from_leaf_hashes([hashes[0], b"abc"])


def test_size_is_bound_by_the_tree_head_not_by_the_proof() -> None:
    # Leaf 0's path in a tree of 3 has the same shape as in a tree of 4, so a verifier
    # told the wrong size still accepts: RFC 9162 behaves so, and callers must take the
    # size from the signed tree head together with the root.
    hashes = [leaf_hash(e) for e in entries_for(3)]
    root_3 = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, 0, 3)
    verify_inclusion(leaf_hash=hashes[0], index=0, tree_size=4, proof=proof, root=root_3)


# --- consistency ----------------------------------------------------------------------------


CONSISTENCY_ENTRIES = entries_for(40, salt=b"c")
CONSISTENCY_HASHES = [leaf_hash(e) for e in CONSISTENCY_ENTRIES]
CONSISTENCY_ROOTS = [root_from_leaf_hashes(CONSISTENCY_HASHES[:n]) for n in range(41)]
CONSISTENCY_PROOF_LENGTHS = {
    (m, n): len(ref_proof(m, CONSISTENCY_ENTRIES[:n])) for n in range(2, 41) for m in range(1, n)
}


def _consistency_rejected(**claim: object) -> None:
    with pytest.raises(ProofError):
        verify_consistency(**claim)  # type: ignore[arg-type]


@pytest.mark.slow  # every pair of sizes up to 40, each byte flipped
def test_every_consistency_proof_up_to_40_verifies_and_tampering_breaks_it() -> None:
    hashes, roots = CONSISTENCY_HASHES, CONSISTENCY_ROOTS
    for n in range(41):
        for m in range(n + 1):
            proof = consistency_proof(hashes, m, n)
            expected = ref_proof(m, CONSISTENCY_ENTRIES[:n]) if 0 < m < n else []
            assert proof == expected, (m, n)
            good = dict(old_size=m, new_size=n, old_root=roots[m], new_root=roots[n], proof=proof)
            verify_consistency(**good)  # type: ignore[arg-type]

            for position, element in enumerate(proof):
                _consistency_rejected(**{**good, "proof": replace(proof, position, flip(element, position))})
            _consistency_rejected(**{**good, "old_root": flip(roots[m], m)})
            if m > 0:
                _consistency_rejected(**{**good, "new_root": flip(roots[n], n)})
            _consistency_rejected(**{**good, "proof": [*proof, roots[n]]})
            if proof:
                _consistency_rejected(**{**good, "proof": proof[:-1]})
                _consistency_rejected(**{**good, "proof": proof[1:]})
            if m != n:
                _consistency_rejected(**{**good, "old_root": roots[n], "new_root": roots[m]})
            if 0 < m < n:
                # Any size pair whose genuine proof has another length must be refused;
                # equal-length pairs can share a shape (see the inclusion size test).
                for (m2, n2), length in CONSISTENCY_PROOF_LENGTHS.items():
                    if length != len(proof):
                        _consistency_rejected(**{**good, "old_size": m2, "new_size": n2})


@settings(DETERMINISTIC, max_examples=100)
@given(st.data(), st.lists(st.binary(max_size=8), min_size=2, max_size=40, unique=True))
def test_consistency_on_random_trees(data: st.DataObject, entries: list[bytes]) -> None:
    n = len(entries)
    hashes = [leaf_hash(e) for e in entries]
    m = data.draw(st.integers(min_value=1, max_value=n - 1), label="old_size")
    old_root, new_root = root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m, n)
    assert proof == ref_proof(m, entries)
    verify_consistency(old_size=m, new_size=n, old_root=old_root, new_root=new_root, proof=proof)

    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="tampered element")
    bit = data.draw(st.integers(min_value=0, max_value=31), label="tampered byte")
    good = dict(old_size=m, new_size=n, old_root=old_root, new_root=new_root, proof=proof)
    _consistency_rejected(**{**good, "proof": replace(proof, position, flip(proof[position], bit))})
    _consistency_rejected(**{**good, "old_root": flip(old_root, bit)})
    _consistency_rejected(**{**good, "new_root": flip(new_root, bit)})
    # A new tree that rewrote one of the old leaves is not an extension of the old one.
    changed = data.draw(st.integers(min_value=0, max_value=m - 1), label="rewritten leaf")
    forged = replace(hashes, changed, leaf_hash(entries[changed] + b"!"))
    forged_root = root_from_leaf_hashes(forged)
    _consistency_rejected(**{**good, "new_root": forged_root})
    _consistency_rejected(**{**good, "new_root": forged_root, "proof": consistency_proof(forged, m, n)})


def test_consistency_failures_say_why() -> None:
    roots = CONSISTENCY_ROOTS
    proof = consistency_proof(CONSISTENCY_HASHES, 6, 13)
    good = dict(old_size=6, new_size=13, old_root=roots[6], new_root=roots[13], proof=proof)
    cases: list[tuple[dict[str, object], str]] = [
        ({"old_root": roots[5]}, "consistency proof does not lead to the old root"),
        ({"new_root": roots[12]}, "consistency proof does not lead to the new root"),
        ({"proof": proof[:-1]}, "proof has wrong length"),
        ({"old_size": 14}, "size out of range"),
        ({"old_size": -1}, "size out of range"),
        ({"new_size": 13.0}, "new size is a float, expected int"),
        ({"proof": replace(proof, 2, b"")}, "proof element 2 is 0 bytes, expected 32"),
        ({"new_root": b""}, "new root is 0 bytes, expected 32"),
    ]
    for changes, reason in cases:
        with pytest.raises(ProofError, match=reason):
            verify_consistency(**{**good, **changes})  # type: ignore[arg-type]


def test_consistency_of_equal_sizes_compares_roots() -> None:
    roots = CONSISTENCY_ROOTS
    verify_consistency(old_size=9, new_size=9, old_root=roots[9], new_root=roots[9], proof=[])
    with pytest.raises(ProofError, match="roots differ for the same tree size 9"):
        verify_consistency(old_size=9, new_size=9, old_root=roots[9], new_root=roots[10], proof=[])
    with pytest.raises(ProofError, match="proof has wrong length"):
        verify_consistency(old_size=9, new_size=9, old_root=roots[9], new_root=roots[9], proof=[roots[9]])


def test_consistency_from_the_empty_tree() -> None:
    roots = CONSISTENCY_ROOTS
    assert consistency_proof(CONSISTENCY_HASHES, 0, 0) == []
    assert consistency_proof(CONSISTENCY_HASHES, 0, 5) == []
    verify_consistency(old_size=0, new_size=0, old_root=EMPTY_ROOT, new_root=EMPTY_ROOT, proof=[])
    verify_consistency(old_size=0, new_size=5, old_root=EMPTY_ROOT, new_root=roots[5], proof=[])
    with pytest.raises(ProofError, match="old root is not the root of the empty tree"):
        verify_consistency(old_size=0, new_size=5, old_root=roots[1], new_root=roots[5], proof=[])
    with pytest.raises(ProofError, match="proof has wrong length"):
        verify_consistency(old_size=0, new_size=5, old_root=EMPTY_ROOT, new_root=roots[5], proof=[roots[1]])


def test_consistency_proof_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="old size 6 is not between 0 and the new size 5"):
        consistency_proof(CONSISTENCY_HASHES, 6, 5)
    with pytest.raises(ValueError, match="tree size 41"):
        consistency_proof(CONSISTENCY_HASHES, 3, 41)


@pytest.mark.slow  # the RFC's recursive definition, quadratic
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=0, max_value=300))
def test_whole_tree_matches_the_rfc_definitions(n):
    """MerkleTree gives the same root and the same proofs as the per-proof functions."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(leaves)
    assert tree.root == root_from_leaf_hashes(leaves)
    for index in range(n):
        proof = tree.inclusion_proof(index)
        assert proof == inclusion_proof(leaves, index, n)
        verify_inclusion(leaf_hash=leaves[index], index=index, tree_size=n, proof=proof, root=tree.root)
    with pytest.raises(ValueError):
        tree.inclusion_proof(n)


@settings(max_examples=60)
@given(st.integers(min_value=0, max_value=300))
@example(0)
@example(1)
@example(255)
@example(256)
def test_frontier_gives_the_same_root_as_the_whole_tree(n):
    from archive.custody.merkle import frontier_append, frontier_root

    entries = entries_for(n)
    frontier: list[bytes] = []
    for size, entry in enumerate(entries):
        frontier = frontier_append(frontier, size, leaf_hash(entry))
        assert len(frontier) == bin(size + 1).count("1")
    assert frontier_root(frontier) == ref_mth(entries)


def test_frontier_refuses_a_frontier_of_the_wrong_shape():
    from archive.custody.merkle import frontier_append

    one = leaf_hash(b"x")
    with pytest.raises(ValueError):
        frontier_append([one, one], 2, one)  # size 2 is one subtree of two leaves
    with pytest.raises(ValueError):
        frontier_append([], 1, one)
    with pytest.raises(ValueError):
        frontier_append([], 0, b"short")
