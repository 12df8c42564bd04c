//! Entry bundles: parsing never panics, and whatever parses re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::tiles::{encode_entry_bundle, parse_entry_bundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse_entry_bundle(data) {
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        assert_eq!(encode_entry_bundle(&refs).ok().as_deref(), Some(data));
    }
});
