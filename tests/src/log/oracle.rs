//! The independent oracle: RFC 6962 / RFC 9162 written from the RFC text, RFC 8785 JSON from
//! serde_json with sorted keys, ECDSA with aws-lc-rs directly. Shares no code with sigil-core.

use super::*;

pub fn leaf(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// Largest power of two smaller than n (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[lo..hi]) (RFC 6962 §2.1), leaves already hashed.
pub fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// MTH with a memo over (lo, hi) so many prefixes of one big log stay cheap.
pub fn mth_memo(
    leaves: &[Hash],
    lo: usize,
    hi: usize,
    memo: &mut HashMap<(usize, usize), Hash>,
) -> Hash {
    if let Some(h) = memo.get(&(lo, hi)) {
        return *h;
    }
    let h = match hi - lo {
        0 => Sha256::digest([]).into(),
        1 => leaves[lo],
        n => {
            let k = split(n);
            let l = mth_memo(leaves, lo, lo + k, memo);
            let r = mth_memo(leaves, lo + k, hi, memo);
            node(&l, &r)
        }
    };
    // Only aligned power-of-two subtrees recur across prefixes; keep the memo small.
    if (hi - lo).is_power_of_two() {
        memo.insert((lo, hi), h);
    }
    h
}

/// PATH(m, D[n]) (RFC 6962 §2.1.1).
pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// PROOF(m, D[n]) (RFC 6962 §2.1.2).
pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn sub(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(d)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = sub(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    sub(m, leaves, true)
}

/// RFC 9162 §2.1.3.2, from the RFC text.
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return None;
        }
        if fnode % 2 == 1 || fnode == snode {
            r = node(p, &r);
            while fnode.is_multiple_of(2) && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// RFC 9162 §2.1.4.2, from the RFC text.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 || first > second {
        return false;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_root);
    }
    let mut fnode = first - 1;
    let mut snode = second - 1;
    while fnode % 2 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first_hash, rest)) = path.split_first() else {
        return false;
    };
    let mut fr = *first_hash;
    let mut sr = *first_hash;
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode % 2 == 1 || fnode == snode {
            fr = node(c, &fr);
            sr = node(c, &sr);
            while fnode.is_multiple_of(2) && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *first_root && sr == *second_root
}

/// The raw P-256 point of a 91-byte P-256 SPKI.
fn p256_point(spki: &[u8]) -> Option<&[u8]> {
    (spki.len() == 91).then(|| &spki[26..])
}

/// A plain ECDSA P-256 verify over RFC 8785 JSON built here: serde_json over a BTreeMap
/// (sorted keys, compact, no floats), which is exactly RFC 8785 for these values.
pub fn verify_set(log: &LogIdentity, body: &[u8], time: i64, index: u64, sig: &[u8]) -> bool {
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("body", Value::String(B64.encode(body)));
    m.insert("integratedTime", Value::from(time));
    m.insert("logID", Value::String(log.log_id_hex.clone()));
    m.insert("logIndex", Value::from(index));
    let Ok(msg) = serde_json::to_vec(&m) else {
        return false;
    };
    let Some(point) = p256_point(&log.spki_der) else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&msg, sig)
        .is_ok()
}

/// Parse and verify a checkpoint note by hand (C2SP signed-note, Rekor's ECDSA key id).
pub fn open_checkpoint(log: &LogIdentity, note: &str) -> Option<(u64, Hash)> {
    let (text, sigs) = note.split_once("\n\n")?;
    let text = format!("{text}\n");
    let key_id = &Sha256::digest(&log.spki_der)[..4];
    let point = p256_point(&log.spki_der)?;
    let verified = sigs.lines().any(|line| {
        let Some(rest) = line
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.strip_prefix(log.name.as_str()))
            .and_then(|l| l.strip_prefix(' '))
        else {
            return false;
        };
        let Ok(raw) = B64.decode(rest) else {
            return false;
        };
        raw.len() > 4
            && &raw[..4] == key_id
            && UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(text.as_bytes(), &raw[4..])
                .is_ok()
    });
    if !verified {
        return None;
    }
    let mut lines = text.lines();
    let _origin = lines.next()?;
    let size = lines.next()?.parse().ok()?;
    let root: Hash = B64.decode(lines.next()?).ok()?.try_into().ok()?;
    Some((size, root))
}

/// A 64-column PEM, as Go's `pem.Encode` writes it.
pub fn pem64(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}
