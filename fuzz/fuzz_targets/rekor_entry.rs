//! Rekor v1 proposed entries (every kind) as JSON: canonicalisation never panics and yields
//! RFC 8785 JSON; entry references and search hashes never panic their parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::rekor;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(c) = rekor::canonicalize(&v) {
        let body: serde_json::Value =
            serde_json::from_slice(&c.body).expect("the canonical body is JSON");
        assert_eq!(
            sigil_core::jcs::to_canonical_vec(&body).expect("serialises"),
            c.body,
            "the body is in RFC 8785 form"
        );
    }
    let _ = rekor::parse_entry_ref(&String::from_utf8_lossy(data));
    let _ = rekor::search_hash_key(&String::from_utf8_lossy(data));
});
