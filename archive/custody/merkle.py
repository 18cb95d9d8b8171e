"""Merkle trees, proofs and frontiers of the custody ledger (RFC 9162 section 2.1).

This side builds: whole trees, inclusion and consistency proofs, the aligned subtree
ranges a stored log answers proofs from, and the frontier kept as entries are appended.
The hashes themselves and the proof checks live in the offline verifier
(:mod:`evidence_verify.merkle`), which a court runs; they are re-exported here so the
server has one import for everything Merkle. All pure functions, standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from evidence_verify.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    check_hash,
    largest_power_of_two_below,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

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
        split = start + largest_power_of_two_below(end - start)
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
            check_hash(f"leaf hash {i}", h)
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
        k = largest_power_of_two_below(end - start)
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


def _check_size(leaf_hashes: Sequence[bytes], tree_size: int) -> None:
    if not 0 <= tree_size <= len(leaf_hashes):
        raise ValueError(f"tree size {tree_size} is not between 0 and the {len(leaf_hashes)} leaves given")


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
    check_hash("leaf hash", leaf)
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
