//! Tile paths: parsing never panics, and whatever parses is the canonical spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_core::tiles::{TilePath, parse_tile_path};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse_tile_path(s) {
        Ok(TilePath::Hashes(t)) => assert_eq!(t.path(), s),
        Ok(TilePath::Entries(t)) => assert_eq!(t.entries_path(), s),
        Err(_) => {}
    }
});
