//! RFC 6962 reference vectors (the 8-leaf tree of the certificate-transparency code), stored as
//! data in `tests/vectors/rfc6962_8leaf.json`.
#![cfg(test)]

use serde_json::Value;
use sigil_core::merkle::{
    Hash, NodeId, VerifyError, consistency_proof, empty_root, inclusion_proof, leaf_hash,
    root_from_inclusion_proof, root_from_leaves, tree_hash, verify_consistency, verify_inclusion,
};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/rfc6962_8leaf.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn h(v: &Value) -> Hash {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(h).collect()
}

fn leaf_hashes(v: &Value) -> Vec<Hash> {
    v["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| leaf_hash(&hex::decode(l.as_str().unwrap()).unwrap()))
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn roots_for_every_size() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let roots = hashes(&v["roots"]);
    assert_eq!(roots.len(), 9);
    assert_eq!(roots[0], empty_root());
    for (size, root) in roots.iter().enumerate() {
        assert_eq!(root_from_leaves(&leaves[..size]), *root, "size {size}");
        assert_eq!(
            tree_hash(size as u64, &leaves).unwrap(),
            *root,
            "size {size}"
        );
    }
}

#[test]
fn complete_node_hashes() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let mut checked = 0;
    for (level, row) in v["node_hashes"].as_array().unwrap().iter().enumerate() {
        for (index, want) in hashes(row).iter().enumerate() {
            let node = NodeId::new(level as u8, index as u64);
            let got = sigil_core::merkle::HashSource::node_hashes(leaves.as_slice(), &[node]);
            assert_eq!(got.unwrap(), vec![*want], "{node:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn inclusion_vectors() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let roots = hashes(&v["roots"]);
    let cases = v["inclusion"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let (index, size, want) = (u(&c["index"]), u(&c["size"]), hashes(&c["proof"]));
        let root = roots[size as usize];
        let leaf = leaves[index as usize];
        assert_eq!(
            inclusion_proof(index, size, &leaves).unwrap(),
            want,
            "{index}/{size}"
        );
        assert_eq!(
            root_from_inclusion_proof(&leaf, index, size, &want),
            Ok(root)
        );
        verify_inclusion(&leaf, index, size, &want, &root).unwrap();
        for (desc, bad) in corrupt_inclusion(index, size, &want, &root, &leaf) {
            assert!(bad.is_err(), "{index}/{size}: accepted {desc}");
        }
    }
}

/// Each probe must fail to verify (mirrors the corruptions of the reference test-suite).
fn corrupt_inclusion(
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
    leaf: &Hash,
) -> Vec<(String, Result<(), VerifyError>)> {
    let some = [0xab; 32];
    let mut out = vec![
        (
            "index+1".into(),
            verify_inclusion(leaf, index + 1, size, proof, root),
        ),
        (
            "index^2".into(),
            verify_inclusion(leaf, index ^ 2, size, proof, root),
        ),
        (
            "size*2".into(),
            verify_inclusion(leaf, index, size * 2, proof, root),
        ),
        (
            "size/2".into(),
            verify_inclusion(leaf, index, size / 2, proof, root),
        ),
        (
            "wrong leaf".into(),
            verify_inclusion(&some, index, size, proof, root),
        ),
        (
            "empty root".into(),
            verify_inclusion(leaf, index, size, proof, &empty_root()),
        ),
        (
            "random root".into(),
            verify_inclusion(leaf, index, size, proof, &some),
        ),
    ];
    if index > 0 {
        out.push((
            "index-1".into(),
            verify_inclusion(leaf, index - 1, size, proof, root),
        ));
    }
    let mut longer = proof.to_vec();
    longer.push(*root);
    out.push((
        "trailing root".into(),
        verify_inclusion(leaf, index, size, &longer, root),
    ));
    let mut longer = vec![*root];
    longer.extend_from_slice(proof);
    out.push((
        "preceding root".into(),
        verify_inclusion(leaf, index, size, &longer, root),
    ));
    for i in 0..proof.len() {
        let mut bad = proof.to_vec();
        bad[i][0] ^= 8;
        out.push((
            format!("flipped [{i}]"),
            verify_inclusion(leaf, index, size, &bad, root),
        ));
    }
    if !proof.is_empty() {
        let short = &proof[..proof.len() - 1];
        out.push((
            "removed".into(),
            verify_inclusion(leaf, index, size, short, root),
        ));
    }
    if proof.len() > 1 {
        let mut bad = vec![proof[0], some];
        bad.extend_from_slice(&proof[1..]);
        out.push((
            "inserted".into(),
            verify_inclusion(leaf, index, size, &bad, root),
        ));
    }
    out
}

#[test]
fn consistency_vectors() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let roots = hashes(&v["roots"]);
    let cases = v["consistency"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let (old, new, want) = (u(&c["old"]), u(&c["new"]), hashes(&c["proof"]));
        let (r1, r2) = (roots[old as usize], roots[new as usize]);
        assert_eq!(
            consistency_proof(old, new, &leaves).unwrap(),
            want,
            "{old}->{new}"
        );
        verify_consistency(old, new, &r1, &r2, &want).unwrap();
        if want.is_empty() {
            continue;
        }
        for (desc, bad) in corrupt_consistency(old, new, &r1, &r2, &want) {
            assert!(bad.is_err(), "{old}->{new}: accepted {desc}");
        }
    }
}

fn corrupt_consistency(
    s1: u64,
    s2: u64,
    r1: &Hash,
    r2: &Hash,
    proof: &[Hash],
) -> Vec<(String, Result<(), VerifyError>)> {
    let wrong = [0x77; 32];
    let vc = |a: u64, b: u64, x: &Hash, y: &Hash, p: &[Hash]| verify_consistency(a, b, x, y, p);
    let with = |front: Option<Hash>, back: Option<Hash>| {
        let mut p: Vec<Hash> = front.into_iter().collect();
        p.extend_from_slice(proof);
        p.extend(back);
        p
    };
    let mut out = vec![
        ("size1-1".into(), vc(s1 - 1, s2, r1, r2, proof)),
        ("size1+1".into(), vc(s1 + 1, s2, r1, r2, proof)),
        ("size1^2".into(), vc(s1 ^ 2, s2, r1, r2, proof)),
        ("size2*2".into(), vc(s1, s2 * 2, r1, r2, proof)),
        ("size2/2".into(), vc(s1, s2 / 2, r1, r2, proof)),
        ("wrong root1".into(), vc(s1, s2, &wrong, r2, proof)),
        ("wrong root2".into(), vc(s1, s2, r1, &wrong, proof)),
        ("swapped roots".into(), vc(s1, s2, r2, r1, proof)),
        ("empty proof".into(), vc(s1, s2, r1, r2, &[])),
        (
            "trailing root1".into(),
            vc(s1, s2, r1, r2, &with(None, Some(*r1))),
        ),
        (
            "trailing root2".into(),
            vc(s1, s2, r1, r2, &with(None, Some(*r2))),
        ),
        (
            "preceding root1".into(),
            vc(s1, s2, r1, r2, &with(Some(*r1), None)),
        ),
        (
            "preceding root2".into(),
            vc(s1, s2, r1, r2, &with(Some(*r2), None)),
        ),
        (
            "preceding [0]".into(),
            vc(s1, s2, r1, r2, &with(Some(proof[0]), None)),
        ),
        (
            "truncated".into(),
            vc(s1, s2, r1, r2, &proof[..proof.len() - 1]),
        ),
    ];
    for i in 0..proof.len() {
        let mut bad = proof.to_vec();
        bad[i][0] ^= 16;
        out.push((format!("flipped [{i}]"), vc(s1, s2, r1, r2, &bad)));
    }
    out
}

#[test]
fn degenerate_consistency() {
    let e = empty_root();
    let x = [1u8; 32];
    // Every tree extends the empty one; equal sizes need equal roots; no time travel.
    assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 5, &e, &x, &[]), Ok(()));
    assert!(verify_consistency(0, 5, &x, &x, &[]).is_err());
    assert!(verify_consistency(0, 5, &e, &x, &[x]).is_err());
    assert_eq!(verify_consistency(3, 3, &x, &x, &[]), Ok(()));
    assert!(verify_consistency(3, 3, &x, &e, &[]).is_err());
    assert!(verify_consistency(3, 3, &x, &x, &[x]).is_err());
    assert!(matches!(
        verify_consistency(2, 1, &x, &x, &[]),
        Err(VerifyError::SizesOutOfOrder { .. })
    ));
    assert!(matches!(
        verify_inclusion(&x, 1, 1, &[], &x),
        Err(VerifyError::IndexOutOfRange { .. })
    ));
    assert!(verify_inclusion(&x, 0, 0, &[], &x).is_err());
    assert_eq!(verify_inclusion(&x, 0, 1, &[], &x), Ok(()));
}
