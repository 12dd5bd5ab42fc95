//! How stores with a JSON column (PostgreSQL v1's `jsonb`, MySQL's `JSON`)
//! keep values, the way daprd lays them out: a JSON value as JSON, and
//! anything else as the JSON string of its base64, with the row's binary
//! flag set. Unlike daprd, which decides by how the value reached it
//! (bytes over gRPC are always binary), the value itself decides, so JSON
//! saved over gRPC can be queried too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

/// The column text of a value, and whether it is binary.
pub fn to_json_column(value: &[u8]) -> (String, bool) {
    if let Ok(text) = std::str::from_utf8(value)
        // PostgreSQL's jsonb cannot hold the NUL character.
        && !text.contains("\\u0000")
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        return (text.to_owned(), false);
    }
    let encoded = serde_json::to_string(&BASE64.encode(value)).expect("a string serializes");
    (encoded, true)
}

/// The value of a column read back.
pub fn from_json_column(text: &str, is_binary: bool) -> Result<Bytes, String> {
    if !is_binary {
        return Ok(Bytes::copy_from_slice(text.as_bytes()));
    }
    let encoded: String = serde_json::from_str(text)
        .map_err(|err| format!("a binary value is not a JSON string: {err}"))?;
    BASE64
        .decode(encoded.as_bytes())
        .map(Bytes::from)
        .map_err(|err| format!("a binary value is not base64: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stays_json_and_the_rest_round_trips() {
        assert_eq!(
            to_json_column(br#"{"a": 1}"#),
            (r#"{"a": 1}"#.into(), false)
        );
        assert_eq!(to_json_column(b"12"), ("12".into(), false));
        for value in [&b"plain text"[..], b"", &[0, 159, 255], br#""nul \u0000""#] {
            let (text, binary) = to_json_column(value);
            assert!(binary, "{value:?}");
            assert_eq!(from_json_column(&text, true).unwrap(), value);
        }
        assert!(from_json_column("not json", true).is_err());
    }
}
