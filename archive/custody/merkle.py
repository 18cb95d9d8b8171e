"""Merkle trees, inclusion proofs and consistency proofs as in RFC 9162 section 2.1.

Everything here is a pure function over SHA-256 hashes and uses only the standard
library, so that a court's verifier can check our proofs offline with this one file.

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
    "HASH_SIZE",
    "EMPTY_ROOT",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "inclusion_proof",
    "consistency_proof",
    "root_from_inclusion",
    "verify_inclusion",
    "verify_consistency",
    "inclusion_ranges",
    "consistency_ranges",
    "subtrees",
    "fold",
    "frontier_append",
    "frontier_append_nodes",
    "frontier_root",
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


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash (MTH) of a tree whose leaves have these hashes.

    ``leaf_hashes`` are already-hashed leaves (see :func:`leaf_hash`). The empty
    sequence gives :data:`EMPTY_ROOT`. Runs in O(n) time and O(log n) extra memory.

    Raises:
        ValueError: a leaf hash is not 32 bytes long.
    """
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """Return the audit path PATH(index, D[tree_size]) of RFC 9162 section 2.1.3.1.

    The proof shows that leaf ``index`` is in the tree made of the first ``tree_size``
    entries of ``leaf_hashes``; its elements run from the leaf's sibling up to the
    root's child. Costs O(tree_size) hashing.

    Raises:
        ValueError: ``tree_size`` exceeds the leaves given, ``index`` is not in
            ``[0, tree_size)``, or a leaf hash is not 32 bytes long.
    """
    _check_size(leaf_hashes, tree_size)
    return [_range_root(leaf_hashes, start, end) for start, end in inclusion_ranges(index, tree_size)]


def inclusion_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose roots make up PATH(index, D[tree_size]), in proof order.

    Each range starts at a multiple of a power of two at least as large as the range,
    so its root is the fold of a few complete aligned subtrees (see :func:`subtrees`):
    a log that stores those subtree hashes answers a proof with O(log n) of them.

    Raises:
        ValueError: ``index`` is not in ``[0, tree_size)``.
    """
    if not 0 <= index < tree_size:
        raise ValueError(f"index {index} is out of range for a tree of size {tree_size}")
    # Walk down from the root as PATH recurses. Each step's sibling covers a range
    # disjoint from every other step's, so the whole proof hashes each leaf at most once.
    ranges: list[tuple[int, int]] = []
    start, end = 0, tree_size
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
    # PATH appends the sibling after recursing, so the deepest sibling comes first.
    ranges.reverse()
    return ranges


def subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The complete aligned subtrees ``(level, index)`` that tile leaves ``[start, end)``, left to right.

    Subtree ``(level, index)`` covers leaves ``index * 2**level`` to ``(index + 1) * 2**level``.
    ``start`` must be a multiple of the largest power of two not above ``end - start``
    (true of every range of :func:`inclusion_ranges`, :func:`consistency_ranges` and of
    ``[0, n)``). The Merkle Tree Hash of the range is the right-to-left fold of their
    hashes, as for a frontier (:func:`fold`).
    """
    pieces = []
    position, remaining = start, end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            if position % (1 << level):
                raise ValueError(f"range {start}..{end} is not aligned for subtree level {level}")
            pieces.append((level, position >> level))
            position += 1 << level
    return pieces


def fold(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of consecutive complete subtrees given largest (leftmost) first.

    MTH splits at the largest power of two, which is exactly the first subtree; the rest
    folds the same way, so the root is the right-to-left fold. The empty list gives
    :data:`EMPTY_ROOT`.
    """
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


class MerkleTree:
    """A whole tree kept in memory, for many inclusion proofs against one tree size.

    :func:`inclusion_proof` costs O(n) hashing per proof; an export proving every
    custody entry of a case against one checkpoint would pay O(n) for each. This builds
    every level once (O(n) time, about 2n hashes of memory) and then answers each proof
    in O(log n). The levels pair adjacent nodes and carry an unpaired last node up
    unchanged, which gives exactly the RFC 9162 tree (tests check proofs and roots
    against the recursive definitions).
    """

    def __init__(self, leaf_hashes: Sequence[bytes]):
        for i, h in enumerate(leaf_hashes):
            _check_hash(f"leaf hash {i}", h)
        self.size = len(leaf_hashes)
        self._levels: list[list[bytes]] = [list(leaf_hashes)]
        level = self._levels[0]
        while len(level) > 1:
            paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            self._levels.append(paired)
            level = paired

    @property
    def root(self) -> bytes:
        """The Merkle Tree Hash of all the leaves (:data:`EMPTY_ROOT` when empty)."""
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """PATH(index, D[size]) — the same list :func:`inclusion_proof` returns."""
        if not 0 <= index < self.size:
            raise ValueError(f"index {index} is out of range for a tree of size {self.size}")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Return PROOF(old_size, D[new_size]) of RFC 9162 section 2.1.4.1.

    The proof shows that the tree of the first ``old_size`` entries of ``leaf_hashes``
    is a prefix of the tree of the first ``new_size`` entries. It is empty when
    ``old_size`` is 0 or equals ``new_size``: there is nothing to prove then beyond
    comparing roots. Costs O(new_size) hashing.

    Raises:
        ValueError: the sizes are not ``0 <= old_size <= new_size <= len(leaf_hashes)``,
            or a leaf hash is not 32 bytes long.
    """
    _check_size(leaf_hashes, new_size)
    return [_range_root(leaf_hashes, start, end) for start, end in consistency_ranges(old_size, new_size)]


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[start, end)`` whose roots make up PROOF(old_size, D[new_size]), in proof order.

    Aligned as in :func:`inclusion_ranges`, so stored subtree hashes answer the proof.

    Raises:
        ValueError: the sizes are not ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"old size {old_size} is not between 0 and the new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    # SUBPROOF(m, D[start:end], b), unrolled into a walk down from the root.
    ranges: list[tuple[int, int]] = []
    m, start, end = old_size, 0, new_size
    # b stays true only while the old tree is the left edge of the current subtree, in
    # which case the verifier already knows that subtree's root (it is the old root).
    known_to_verifier = True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            known_to_verifier = False
    ranges.reverse()
    if known_to_verifier:
        return ranges
    return [(start, end), *ranges]


def root_from_inclusion(*, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that an inclusion proof leads to (RFC 9162 section 2.1.3.2).

    This checks the proof's shape but not the result: the caller must compare the
    returned root with a trusted one. Prefer :func:`verify_inclusion`, which does.

    Raises:
        ProofError: ``index`` is not in ``[0, tree_size)``, the proof has the wrong
            number of elements for that index and size, or a hash is not 32 bytes.
    """
    _check_hash("leaf hash", leaf_hash)
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
        _check_hash(f"proof element {position}", element)

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
    _check_hash("root", root)
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
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
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
        _check_hash(f"proof element {position}", element)

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


def _range_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH of ``leaf_hashes[start:end]`` without copying the slice."""
    if start == end:
        return EMPTY_ROOT
    # Each stack entry is the root of a complete subtree, largest first; the sizes are
    # the set bits of the count so far, so there are never more than log2(n) + 1.
    stack: list[bytes] = []
    for count, position in enumerate(range(start, end), start=1):
        h = leaf_hashes[position]
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {position} is {len(h)} bytes, expected {HASH_SIZE}")
        # Merge once per trailing zero bit of count: two equal complete subtrees
        # make one of twice the size, exactly as in a binary counter.
        while not count & 1:
            h = node_hash(stack.pop(), h)
            count >>= 1
        stack.append(h)
    # What remains are the complete subtrees of sizes given by the bits of n. MTH splits
    # at the largest power of two below n, which is the leftmost of them, so the root
    # is the right fold of the stack.
    root = stack.pop()
    while stack:
        root = node_hash(stack.pop(), root)
    return root


def _largest_power_of_two_below(n: int) -> int:
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


def _check_size(leaf_hashes: Sequence[bytes], tree_size: int) -> None:
    if not 0 <= tree_size <= len(leaf_hashes):
        raise ValueError(f"tree size {tree_size} is not between 0 and the {len(leaf_hashes)} leaves given")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise ProofError(f"{name} is a {type(value).__name__}, expected bytes")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_int(name: str, value: int) -> None:
    # bool is an int subclass; a True index is a caller's bug, not leaf 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"{name} is a {type(value).__name__}, expected int")


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of the tree of ``size + 1`` leaves, from that of ``size`` leaves.

    A frontier (a "compact range" over the whole tree) is the list of roots of the
    perfect subtrees that the binary form of ``size`` splits the leaves into, largest
    (leftmost) first: at most log2(size) + 1 hashes. Appending costs O(log n) hashing
    and :func:`frontier_root` gives the Merkle Tree Hash without touching any leaf, so
    a log can keep its tree head current as entries arrive.

    Raises:
        ValueError: the frontier does not have one hash per set bit of ``size``, or a
            hash is not 32 bytes long.
    """
    return frontier_append_nodes(frontier, size, leaf)[0]


def frontier_append_nodes(
    frontier: Sequence[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """:func:`frontier_append`, also returning the complete subtrees the new leaf completes.

    Those are ``(level, index, hash)`` (see :func:`subtrees`): the leaf itself at level 0,
    then one more per merge. Storing them as a log grows keeps every complete aligned
    subtree's hash, from which any proof or older root takes O(log n) hashes.

    Raises:
        ValueError: as :func:`frontier_append`.
    """
    if size < 0 or len(frontier) != bin(size).count("1"):
        raise ValueError(f"a frontier of {len(frontier)} hashes does not fit a tree of size {size}")
    _check_hash("leaf hash", leaf)
    nodes = list(frontier)
    nodes.append(leaf)
    made = [(0, size, leaf)]
    level = 0
    # Each trailing 1 bit of ``size`` is a subtree as big as the one just completed: merge.
    while size & 1:
        right = nodes.pop()
        nodes[-1] = node_hash(nodes[-1], right)
        size >>= 1
        level += 1
        made.append((level, size, nodes[-1]))
    return nodes, made


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of the tree whose frontier this is (see :func:`frontier_append`)."""
    return fold(frontier)
