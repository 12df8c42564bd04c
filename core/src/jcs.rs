//! RFC 8785 JSON Canonicalization Scheme for the values Sigstore signs and hashes.
//!
//! Written out explicitly instead of relying on `serde_json`'s map order, which a
//! `preserve_order` feature anywhere in a dependency graph would silently change.

use serde_json::Value;

/// Why a value cannot be canonicalized.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JcsError {
    /// Only integers representable exactly are supported (Sigstore bodies hold no floats).
    #[error("non-integer number {0} cannot be canonicalized")]
    UnsupportedNumber(String),
}

/// Serialize `value` in RFC 8785 canonical form.
pub fn to_canonical_vec(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(JcsError::UnsupportedNumber(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // RFC 8785 orders keys by their UTF-16 code units.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if let Some(v) = map.get(*key) {
                    write_value(v, out)?;
                }
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{09}' => out.extend_from_slice(b"\\t"),
            '\u{0a}' => out.extend_from_slice(b"\\n"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\u{0d}' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX.get(b >> 4).copied().unwrap_or(b'0'));
                out.push(HEX.get(b & 0xf).copied().unwrap_or(b'0'));
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes() {
        let v = json!({"b": 1, "a": [true, null, "x\n\u{1}é"], "A": {"z": -3, "y": "q\"\\"}});
        let out = to_canonical_vec(&v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"A":{"y":"q\"\\","z":-3},"a":[true,null,"x\n\u0001é"],"b":1}"#
        );
    }

    #[test]
    fn rejects_floats() {
        assert!(to_canonical_vec(&json!({"f": 1.5})).is_err());
    }

    #[test]
    fn utf16_key_order() {
        // U+E000 sorts before U+1F600 in UTF-16 (0xE000 < 0xD83D surrogate is false: 0xD83D < 0xE000).
        let v = json!({"\u{e000}": 1, "\u{1f600}": 2});
        let out = String::from_utf8(to_canonical_vec(&v).unwrap()).unwrap();
        assert_eq!(out, "{\"\u{1f600}\":2,\"\u{e000}\":1}");
    }
}
