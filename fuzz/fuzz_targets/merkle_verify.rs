//! Proof verification on arbitrary sizes, indices and hashes: never panics, and the two
//! inclusion entry points agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::merkle::{Hash, root_from_inclusion_proof, verify_consistency, verify_inclusion};

fn take_u64(data: &mut &[u8]) -> u64 {
    let (head, tail) = data.split_at(data.len().min(8));
    *data = tail;
    let mut b = [0u8; 8];
    b[..head.len()].copy_from_slice(head);
    u64::from_le_bytes(b)
}

fn take_hash(data: &mut &[u8]) -> Hash {
    let (head, tail) = data.split_at(data.len().min(32));
    *data = tail;
    let mut h = [0u8; 32];
    h[..head.len()].copy_from_slice(head);
    h
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let (a, b) = (take_u64(&mut d), take_u64(&mut d));
    let (x, y) = (take_hash(&mut d), take_hash(&mut d));
    let proof: Vec<Hash> = d
        .chunks(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h[..c.len()].copy_from_slice(c);
            h
        })
        .collect();
    match root_from_inclusion_proof(&x, a, b, &proof) {
        Ok(root) => {
            assert!(verify_inclusion(&x, a, b, &proof, &root).is_ok());
            assert_eq!(verify_inclusion(&x, a, b, &proof, &y).is_ok(), root == y);
        }
        Err(_) => assert!(verify_inclusion(&x, a, b, &proof, &y).is_err()),
    }
    let _ = verify_consistency(a, b, &x, &y, &proof);
    let _ = verify_consistency(a.min(b), a.max(b), &x, &y, &proof);
});
