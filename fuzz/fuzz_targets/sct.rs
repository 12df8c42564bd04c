//! RFC 6962 structures: SCT lists, digitally-signed structs and Merkle tree leaves never panic
//! the parsers, and what parses re-encodes to the same bytes; the precertificate TBS rules never
//! panic on arbitrary certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::sct;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = sct::decode_sct_list(data) {
        assert_eq!(sct::encode_sct_list(&list).expect("re-encodes"), data);
    }
    if let Ok(ds) = sct::decode_digitally_signed(data) {
        assert_eq!(sct::encode_digitally_signed(&ds).expect("re-encodes"), data);
    }
    if let Ok(leaf) = sct::parse_merkle_tree_leaf(data) {
        assert_eq!(sct::merkle_tree_leaf(&leaf).expect("re-encodes"), data);
    }
    let _ = sct::precert_tbs_from_precert(data);
    let _ = sct::precert_tbs_from_cert(data);
});
