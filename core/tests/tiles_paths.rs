//! Tile paths and entry bundles: canonical examples, typed errors, and no panics on any input.
#![cfg(test)]

use proptest::prelude::*;
use sigil_core::tiles::{
    MAX_BUNDLE_ENTRIES, TileError, TileId, TilePath, encode_entry_bundle, parse_entry_bundle,
    parse_tile_path,
};

fn tile(level: u8, index: u64, width: u16) -> TileId {
    TileId {
        level,
        index,
        width,
    }
}

#[test]
fn canonical_examples_round_trip() {
    let hashes = [
        ("tile/0/000", tile(0, 0, 256)),
        ("tile/0/x001/x234/067", tile(0, 1_234_067, 256)),
        ("tile/1/000.p/17", tile(1, 0, 17)),
        ("tile/0/273.p/112", tile(0, 273, 112)),
        ("tile/2/000.p/1", tile(2, 0, 1)),
        ("tile/0/x001/000", tile(0, 1000, 256)),
        ("tile/0/999", tile(0, 999, 256)),
        ("tile/3/x123/456.p/255", tile(3, 123_456, 255)),
        ("tile/7/000.p/255", tile(7, 0, 255)),
        // The largest level-0 tile a u64 tree can have.
        (
            "tile/0/x072/x057/x594/x037/x927/935.p/255",
            tile(0, u64::MAX >> 8, 255),
        ),
    ];
    for (path, t) in hashes {
        assert_eq!(parse_tile_path(path), Ok(TilePath::Hashes(t)), "{path}");
        assert_eq!(t.path(), path);
    }
    let entries = [
        ("tile/entries/000", tile(0, 0, 256)),
        ("tile/entries/x001/x234/067", tile(0, 1_234_067, 256)),
        ("tile/entries/x001/x234/067.p/8", tile(0, 1_234_067, 8)),
        ("tile/entries/005.p/1", tile(0, 5, 1)),
    ];
    for (path, t) in entries {
        assert_eq!(parse_tile_path(path), Ok(TilePath::Entries(t)), "{path}");
        assert_eq!(t.entries_path(), path);
    }
    assert!(tile(0, 0, 256).is_full());
    assert!(!tile(0, 0, 255).is_full());
}

#[test]
fn malformed_paths_are_typed_errors() {
    let malformed = [
        "",
        "tile",
        "tile/",
        "tile/0",
        "tile/0/",
        "/tile/0/000",
        "TILE/0/000",
        "tiles/0/000",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/+1/000",
        "tile/a/000",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/x001/x000/001x",
        "tile/0/001/000",
        "tile/0/x001",
        "tile/0/x01/000",
        "tile/0/X001/000",
        "tile/0/x001//000",
        "tile/0/000/",
        "tile/0/000.p",
        "tile/0/000.p/",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/010",
        "tile/0/000.p/+5",
        "tile/0/000.p/5/",
        "tile/0/000.p/5.p/5",
        "tile/0/000.q/5",
        "tile/0/000p/5",
        "tile/0/+12",
        "tile/0/1 2",
        "tile/0/\u{0661}\u{0662}\u{0663}",
        "tile/entries/",
        "tile/entries/0/000",
        "tile/entries/00",
        "tile/entries/000.p/256",
        "tile/entries/000.p/0",
        "tile/entries/x000/000",
        "tile/1/entries/000",
        "tile/0/000\n",
        " tile/0/000",
    ];
    for path in malformed {
        assert!(
            matches!(parse_tile_path(path), Err(TileError::MalformedPath(_))),
            "{path:?}: {:?}",
            parse_tile_path(path)
        );
    }
    // Well-formed but naming tiles no u64-sized tree can have (or indices beyond u64).
    let out_of_range = [
        "tile/8/000.p/1",
        "tile/63/000",
        "tile/7/000",
        "tile/7/001.p/1",
        "tile/0/x072/x057/x594/x037/x927/936.p/1",
        "tile/0/x018/x446/x744/x073/x709/x551/615",
        "tile/0/x999/x999/x999/x999/x999/x999/999",
        "tile/0/x001/x000/x000/x000/x000/x000/x000/000",
        "tile/entries/x072/x057/x594/x037/x927/936",
    ];
    for path in out_of_range {
        assert_eq!(
            parse_tile_path(path),
            Err(TileError::OutOfRange),
            "{path:?}"
        );
    }
}

#[test]
fn entry_bundles() {
    let entries: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 65_535], b"xyz".to_vec()];
    let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
    let enc = encode_entry_bundle(&refs).unwrap();
    assert_eq!(&enc[..5], &[0, 0, 0, 1, b'a']);
    assert_eq!(enc.len(), 2 + 3 + 2 + 65_535 + 5);
    assert_eq!(parse_entry_bundle(&enc).unwrap(), entries);

    assert_eq!(parse_entry_bundle(&[]).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(parse_entry_bundle(&[0]), Err(TileError::TruncatedBundle));
    assert_eq!(
        parse_entry_bundle(&[0, 2, 1]),
        Err(TileError::TruncatedBundle)
    );
    assert_eq!(
        parse_entry_bundle(&enc[..enc.len() - 1]),
        Err(TileError::TruncatedBundle)
    );

    let big = vec![0u8; 65_536];
    assert_eq!(
        encode_entry_bundle(&[&big]),
        Err(TileError::EntryTooLarge(65_536))
    );
    let many = vec![&b"e"[..]; MAX_BUNDLE_ENTRIES + 1];
    assert_eq!(encode_entry_bundle(&many), Err(TileError::TooManyEntries));
    let full = encode_entry_bundle(&many[..MAX_BUNDLE_ENTRIES]).unwrap();
    assert_eq!(parse_entry_bundle(&full).unwrap().len(), MAX_BUNDLE_ENTRIES);
    let mut over = full.clone();
    over.extend_from_slice(&[0, 0]);
    assert_eq!(parse_entry_bundle(&over), Err(TileError::TooManyEntries));
}

fn valid_tile() -> impl Strategy<Value = TileId> {
    (0u8..=7, any::<u64>(), 1u16..=256).prop_filter_map("in range", |(level, index, width)| {
        // Scale the index down so every level gets tiles that exist.
        let index = index >> (8 * (u32::from(level) + 1)).min(63);
        let t = tile(level, index, width);
        let need = (u128::from(index) * 256 + u128::from(width)) << (8 * u32::from(level));
        (need <= u128::from(u64::MAX)).then_some(t)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tile_paths_round_trip(t in valid_tile()) {
        prop_assert_eq!(parse_tile_path(&t.path()), Ok(TilePath::Hashes(t)));
        let at0 = tile(0, t.index, t.width);
        prop_assert_eq!(parse_tile_path(&at0.entries_path()), Ok(TilePath::Entries(at0)));
    }

    #[test]
    fn parse_tile_path_never_panics(s in any::<String>()) {
        if let Ok(TilePath::Hashes(t)) = parse_tile_path(&s) {
            prop_assert_eq!(t.path(), s);
        }
    }

    #[test]
    fn near_valid_paths_parse_canonically(
        s in "tile/(entries|[0-9]{1,2})/((x[0-9]{3}|[0-9x]{1,4})/){0,7}[0-9x]{1,4}(\\.p/[0-9]{1,4})?"
    ) {
        match parse_tile_path(&s) {
            Ok(TilePath::Hashes(t)) => prop_assert_eq!(t.path(), s),
            Ok(TilePath::Entries(t)) => prop_assert_eq!(t.entries_path(), s),
            Err(_) => {}
        }
    }

    #[test]
    fn parse_entry_bundle_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(entries) = parse_entry_bundle(&data) {
            let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
            prop_assert_eq!(encode_entry_bundle(&refs).unwrap(), data);
        }
    }

    #[test]
    fn entry_bundles_round_trip(
        entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..=256)
    ) {
        let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
        let enc = encode_entry_bundle(&refs).unwrap();
        prop_assert_eq!(parse_entry_bundle(&enc).unwrap(), entries);
    }
}

#[test]
fn parse_tile_path_never_panics_on_bytes() {
    // Byte-level mutations of valid paths (lossily decoded), exhaustively for one position.
    let base = "tile/1/x001/x234/067.p/17";
    for i in 0..base.len() {
        for b in 0u8..=255 {
            let mut bytes = base.as_bytes().to_vec();
            bytes[i] = b;
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(TilePath::Hashes(t)) = parse_tile_path(&s) {
                assert_eq!(t.path(), s);
            }
            bytes.truncate(i);
            let _ = parse_tile_path(&String::from_utf8_lossy(&bytes));
        }
    }
}
