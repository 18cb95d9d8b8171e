"""RFC 9162 (section 2.1) Merkle hashes and the checks of inclusion and consistency proofs.

Pure functions over SHA-256, standard library only. The offline verifier checks each
custody entry's inclusion proof with them; the server's ledger (``archive.custody.merkle``
builds trees, proofs and frontiers) uses the same leaf and node hashes, from here.

Conventions, all from RFC 9162:

* A leaf's hash is ``SHA-256(0x00 || data)``; an interior node's hash is
  ``SHA-256(0x01 || left || right)``. The different prefixes keep a leaf from ever
  being passed off as an interior node (second-preimage protection).
* The tree over ``n`` leaves is split at ``k``, the largest power of two below ``n``;
  the tree of no leaves hashes to ``SHA-256()`` of the empty string.
* Proof elements are ordered from the leaf (or the old tree) up to the root.

The ``verify_*`` functions raise :class:`ProofError` with a precise reason and return
``None`` only when everything holds, so no caller can forget to look at a boolean.

A proof binds a leaf (or an old root) to a root, not to a tree size: as in every RFC
9162 verifier, a proof may also verify with a different size claimed for the same root,
when both sizes give the path the same shape. Take the size and the root together from
a signed tree head; never take the size from the party that supplies the proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "check_hash",
    "largest_power_of_two_below",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash handled here (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the tree with no leaves."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A Merkle proof, or the values it is checked against, does not hold."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)`` of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_inclusion(*, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that an inclusion proof leads to (RFC 9162 section 2.1.3.2).

    This checks the proof's shape but not the result: the caller must compare the
    returned root with a trusted one. Prefer :func:`verify_inclusion`, which does.

    Raises:
        ProofError: ``index`` is not in ``[0, tree_size)``, the proof has the wrong
            number of elements for that index and size, or a hash is not 32 bytes.
    """
    check_hash("leaf hash", leaf_hash)
    _check_int("index", index)
    _check_int("tree size", tree_size)
    if not 0 <= index < tree_size:
        raise ProofError(f"index out of range: leaf {index} is not in a tree of size {tree_size}")
    expected = _inclusion_proof_length(index, tree_size)
    if len(proof) != expected:
        raise ProofError(
            f"proof has wrong length: {len(proof)} hashes, but leaf {index} of a tree of size "
            f"{tree_size} needs {expected}"
        )
    for position, element in enumerate(proof):
        check_hash(f"proof element {position}", element)

    # The loop below is the RFC 9162 section 2.1.3.2 algorithm step by step; fn is the
    # node's position within its level and sn the last position in that level.
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof has wrong length: it continues past the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # fn is the last node of its level with no right sibling, so it is
                # promoted unchanged until it becomes a right child.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof has wrong length: it stops below the root")
    return r


def verify_inclusion(*, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Implements RFC 9162 section 2.1.3.2. Returns ``None`` only when the proof holds.

    Raises:
        ProofError: with the reason: index out of range, proof has wrong length, a hash
            is not 32 bytes, or the inclusion proof does not lead to the root.
    """
    check_hash("root", root)
    computed = root_from_inclusion(leaf_hash=leaf_hash, index=index, tree_size=tree_size, proof=proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof does not lead to the root: leaf {index} of a tree of size "
            f"{tree_size} gives {computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    Implements RFC 9162 section 2.1.4.2 for ``0 < old_size < new_size``, and completes
    it for the cases the RFC leaves out: when the sizes are equal the proof must be
    empty and the roots equal; when ``old_size`` is 0 the proof must be empty and
    ``old_root`` must be the root of the empty tree. Returns ``None`` only when the
    proof holds.

    Raises:
        ProofError: with the reason: sizes out of order, proof has wrong length, a hash
            is not 32 bytes, or the proof does not lead to the old or the new root.
    """
    check_hash("old root", old_root)
    check_hash("new root", new_root)
    _check_int("old size", old_size)
    _check_int("new size", new_size)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size out of range: old size {old_size} is not between 0 and new size {new_size}")
    expected = _consistency_proof_length(old_size, new_size)
    if len(proof) != expected:
        raise ProofError(
            f"proof has wrong length: {len(proof)} hashes, but sizes {old_size} -> {new_size} "
            f"need {expected}"
        )
    for position, element in enumerate(proof):
        check_hash(f"proof element {position}", element)

    if old_size == new_size:
        if old_root != new_root:
            raise ProofError(f"roots differ for the same tree size {old_size}")
        return
    if old_size == 0:
        # Every tree extends the empty one, but only if the claimed old root really is
        # MTH({}); anything else is a claim about a tree that cannot exist.
        if old_root != EMPTY_ROOT:
            raise ProofError("old root is not the root of the empty tree")
        return

    # RFC 9162 section 2.1.4.2, step by step. When old_size is a power of two the old
    # tree is a whole subtree of the new one, so the proof omits its root: supply it.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Skip the levels where the old tree's last node is a right child: the first path
    # element already stands for the whole subtree above them.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof has wrong length: it continues past the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            # Nodes right of the old tree only exist in the new one.
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof has wrong length: it stops below the root")
    if fr != old_root:
        raise ProofError(
            f"consistency proof does not lead to the old root: got {fr.hex()}, expected {old_root.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof does not lead to the new root: got {sr.hex()}, expected {new_root.hex()}"
        )


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly less than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_proof_length(index: int, tree_size: int) -> int:
    # Levels below the point where the paths to index and to the last leaf part are
    # full (one sibling each); above it the path follows the tree's right border, where
    # only the levels at which index's subtree is a right child contribute a sibling.
    inner = (index ^ (tree_size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    if old_size == 0 or old_size == new_size:
        return 0
    # The proof is the inclusion path of the old tree's last leaf, starting from the
    # largest complete subtree that ends there; that subtree's root is the first
    # element, omitted when it is the old root itself (old_size a power of two).
    shift = (old_size & -old_size).bit_length() - 1
    length = _inclusion_proof_length(old_size - 1, new_size) - shift
    return length if old_size == 1 << shift else length + 1


def check_hash(name: str, value: bytes) -> None:
    """Raise :class:`ProofError` unless ``value`` is bytes of :data:`HASH_SIZE` (``name`` says which)."""
    if not isinstance(value, (bytes, bytearray)):
        raise ProofError(f"{name} is a {type(value).__name__}, expected bytes")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_int(name: str, value: int) -> None:
    # bool is an int subclass; a True index is a caller's bug, not leaf 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{name} is a {type(value).__name__}, expected int")
