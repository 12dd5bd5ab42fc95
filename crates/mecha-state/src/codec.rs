//! How stores with a JSON column (PostgreSQL v1's `jsonb`, MySQL's `JSON`)
//! keep values, the way daprd lays them out: a JSON value as JSON, and
//! anything else as the JSON string of its base64, with the row's binary
//! flag set. Unlike daprd, which decides by how the value reached it
//! (bytes over gRPC are always binary), the value itself decides, so JSON
//! saved over gRPC can be queried too.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

/// The deepest nesting of arrays and objects a JSON column takes: MariaDB
/// refuses 32 (MySQL 101, PostgreSQL thousands); one rule for all.
const MAX_DEPTH: usize = 31;

/// The column text of a value, and whether it is binary. JSON that a JSON
/// column would refuse — the NUL character (PostgreSQL), a lone surrogate
/// escape such as `"\ud800"`, nesting deeper than [`MAX_DEPTH`] — is kept
/// as binary, so every value round-trips, on every store alike.
pub fn to_json_column(value: &[u8]) -> (String, bool) {
    if let Ok(text) = std::str::from_utf8(value)
        && !text.contains("\\u0000")
        && column_json(text)
    {
        return (text.to_owned(), false);
    }
    let encoded = serde_json::to_string(&BASE64.encode(value)).expect("a string serializes");
    (encoded, true)
}

/// Whether `text` is JSON a JSON column takes: every string's escapes
/// decode to Unicode scalar values, and nesting is at most [`MAX_DEPTH`].
fn column_json(text: &str) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    // serde_json's own depth limit (128) would stop a deeper value first;
    // ours is lower.
    serde::de::DeserializeSeed::deserialize(Strict(0), &mut deserializer).is_ok()
        && deserializer.end().is_ok()
}

/// Reads any JSON value, checking every string and the depth, keeping
/// nothing.
#[derive(Clone, Copy)]
struct Strict(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

impl Strict {
    fn deeper<E: serde::de::Error>(self) -> Result<Self, E> {
        if self.0 >= MAX_DEPTH {
            return Err(E::custom("nested too deep for a JSON column"));
        }
        Ok(Self(self.0 + 1))
    }
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

    #[test]
    fn json_a_column_refuses_is_kept_as_binary() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!to_json_column(deep(MAX_DEPTH).as_bytes()).1);
        let nested = format!(r#"{{"a":{}}}"#, deep(MAX_DEPTH - 1));
        assert!(!to_json_column(nested.as_bytes()).1);
        let nested = format!(r#"{{"a":{}}}"#, deep(MAX_DEPTH));
        assert!(to_json_column(nested.as_bytes()).1);
        for value in [
            deep(MAX_DEPTH + 1),
            deep(100_000),
            r#""\ud800""#.to_owned(),
            r#"{"\udc00":1}"#.to_owned(),
            r#"["ok", "\ud800x"]"#.to_owned(),
        ] {
            let (text, binary) = to_json_column(value.as_bytes());
            assert!(binary, "{value:.40}");
            assert_eq!(from_json_column(&text, true).unwrap(), value.as_bytes());
        }
        // A surrogate pair is a character: JSON.
        assert!(!to_json_column(r#""\ud83d\ude00""#.as_bytes()).1);
    }
}
