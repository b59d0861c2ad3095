"""RFC 6962 hashing checked against the Certificate Transparency reference vectors, and
inclusion and consistency proofs that verify, while tampered ones do not."""

import pytest

from waiverdesk.core.verifier import (
    Tree,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

HEX = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
       "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
ENTRIES = [bytes.fromhex(h) for h in HEX]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PROOFS = {  # (leaf index, tree size): the published audit path
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
}  # fmt: skip
CONSISTENCY = {  # (old size, new size): the published consistency proof
    (1, 1): [],
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}  # fmt: skip
LEAVES = [leaf_hash(e) for e in ENTRIES]


def test_tree_heads_match_the_reference_for_every_size():
    for size in range(len(LEAVES) + 1):
        assert root(LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), PROOFS)
def test_inclusion_proofs_match_the_reference_and_verify(index, size):
    proof = inclusion_proof(index, LEAVES[:size])
    assert [p.hex() for p in proof] == PROOFS[(index, size)]
    assert verify_inclusion(index, size, LEAVES[index], proof, bytes.fromhex(ROOTS[size]))


def test_every_proof_of_every_tree_size_verifies():
    leaves = [leaf_hash(bytes([i, i * 7 % 256])) for i in range(37)]
    for size in range(1, len(leaves) + 1):
        head = root(leaves[:size])
        assert Tree(leaves[:size]).root() == head  # the levelled tree is RFC 6962's
        for index in range(size):
            proof = inclusion_proof(index, leaves[:size])
            assert verify_inclusion(index, size, leaves[index], proof, head)


def test_tampered_proofs_are_rejected():
    leaves = [leaf_hash(bytes([i])) for i in range(13)]
    head, other = root(leaves), root(leaves[:12])
    proof = inclusion_proof(6, leaves)
    flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    assert verify_inclusion(6, 13, leaves[6], proof, head)
    assert not verify_inclusion(6, 13, leaves[6], flipped, head)  # a flipped bit
    assert not verify_inclusion(6, 13, leaves[7], proof, head)  # another leaf
    assert not verify_inclusion(6, 13, leaves[6], proof, other)  # another root
    assert not verify_inclusion(7, 13, leaves[6], proof, head)  # another index
    last = inclusion_proof(12, leaves)
    assert verify_inclusion(12, 13, leaves[12], last, head)
    assert not verify_inclusion(12, 14, leaves[12], last, head)  # a wrong size
    assert not verify_inclusion(6, 13, leaves[6], proof[:-1], head)  # too short
    assert not verify_inclusion(6, 13, leaves[6], [*proof, proof[0]], head)  # too long
    assert not verify_inclusion(13, 13, leaves[6], proof, head)  # beyond the tree
    assert not verify_inclusion(6, 13, leaves[6], list(reversed(proof)), head)  # swapped


@pytest.mark.parametrize(("old", "new"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_and_verify(old, new):
    proof = Tree(LEAVES[:new]).consistency(old)
    assert [p.hex() for p in proof] == CONSISTENCY[(old, new)]
    heads = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, *heads, proof)


def test_every_pair_of_sizes_up_to_64_proves_consistent_and_a_fork_does_not():
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(64)]
    for new in range(1, 65):
        tree = Tree(leaves[:new])
        for old in range(1, new + 1):
            proof = tree.consistency(old)
            assert verify_consistency(old, new, root(leaves[:old]), tree.root(), proof)
            # The old tree as a rewritten history would have it: its first entry changed.
            forked = root([leaf_hash(b"rewritten"), *leaves[1:old]])
            assert not verify_consistency(old, new, forked, tree.root(), proof), (old, new)


def test_tampered_consistency_proofs_are_rejected():
    leaves = [leaf_hash(bytes([i])) for i in range(13)]
    old, new = root(leaves[:6]), root(leaves)
    proof = Tree(leaves).consistency(6)
    assert verify_consistency(6, 13, old, new, proof)
    assert not verify_consistency(6, 13, old, new, [bytes([proof[0][0] ^ 1]) + proof[0][1:],
                                                    *proof[1:]])  # a flipped bit  # fmt: skip
    assert not verify_consistency(6, 13, old, new, proof[:-1])  # too short
    assert not verify_consistency(6, 13, old, new, [*proof, proof[0]])  # too long
    assert not verify_consistency(6, 13, old, new, list(reversed(proof)))  # swapped
    assert not verify_consistency(5, 13, old, new, proof)  # another old size
    assert not verify_consistency(6, 13, new, old, proof)  # the heads swapped
    assert not verify_consistency(13, 6, new, old, proof)  # the sizes swapped
    assert not verify_consistency(0, 13, old, new, [])  # nothing to extend
    assert not verify_consistency(13, 13, new, new, proof)  # the same tree needs no proof
    assert verify_consistency(13, 13, new, new, [])
