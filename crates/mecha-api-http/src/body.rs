//! Request bodies decoded as JSON, and path and query parameters, with
//! Dapr's errors. Bodies are read within `mecha_api::BodyLimit`.

use mecha_core::ApiError;
use serde::Deserialize;

/// `?metadata.k=v` parameters, without their prefix.
pub(crate) fn query_metadata(
    params: &[(String, String)],
) -> std::collections::BTreeMap<String, String> {
    params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata.")
                .map(|k| (k.to_owned(), v.clone()))
        })
        .collect()
}

/// Decodes JSON with Dapr's error for a malformed body.
pub(crate) fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::malformed_request(format!("failed deserializing HTTP body: {err}"))
    })
}

/// A body that must be a JSON object, or `T::default()` when it is empty
/// or blank (daprd's protojson reading skips an empty body).
pub(crate) fn object_or_default<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let Object(value) = json(bytes)?;
    Ok(value)
}

/// A JSON scalar read as text: metadata values are strings in Dapr, but
/// numbers and booleans are accepted too (`"ttlInSeconds": 60`).
#[derive(Debug)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Text(text)),
            serde_json::Value::Number(number) => Ok(Text(number.to_string())),
            serde_json::Value::Bool(flag) => Ok(Text(flag.to_string())),
            serde_json::Value::Null => Ok(Text(String::new())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, found {other}"
            ))),
        }
    }
}

/// A value that must be a JSON object. serde lets a struct be read from a
/// JSON array as well; Dapr's bodies are objects, and an array where an
/// object belongs is a malformed request.
#[derive(Debug, Default)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(Object)
    }
}

/// Path parameters, with Dapr's error when they cannot be decoded (such as
/// percent-encoding that is not UTF-8).
pub(crate) fn path<T>(
    extracted: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, ApiError> {
    extracted
        .map(|axum::extract::Path(value)| value)
        .map_err(|err| ApiError::malformed_request(format!("invalid path: {}", err.body_text())))
}

/// Query parameters, with Dapr's error when they cannot be decoded.
pub(crate) fn query<T>(
    extracted: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    extracted
        .map(|axum::extract::Query(value)| value)
        .map_err(|err| ApiError::malformed_request(format!("invalid query: {}", err.body_text())))
}

/// A JSON array read with at most `LIMIT` elements kept: those beyond are
/// counted and skipped as they are read, so an oversized bulk body costs no
/// more memory than the limit's worth of items, and its answer can still
/// give its size.
#[derive(Debug)]
pub(crate) struct Bounded<T, const LIMIT: usize> {
    pub items: Vec<T>,
    pub total: usize,
}

impl<T, const LIMIT: usize> Default for Bounded<T, LIMIT> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

impl<T, const LIMIT: usize> Bounded<T, LIMIT> {
    /// The items, or the limit's message naming what they are.
    pub fn within(self, what: &str) -> Result<Vec<T>, String> {
        mecha_core::limits::check_count(what, self.total, LIMIT)?;
        Ok(self.items)
    }
}

impl<'de, T: Deserialize<'de>, const LIMIT: usize> Deserialize<'de> for Bounded<T, LIMIT> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T, const LIMIT: usize>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const LIMIT: usize> serde::de::Visitor<'de>
            for SeqVisitor<T, LIMIT>
        {
            type Value = Bounded<T, LIMIT>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON array")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut bounded = Bounded::default();
                while bounded.total < LIMIT {
                    match seq.next_element()? {
                        Some(item) => bounded.items.push(item),
                        None => return Ok(bounded),
                    }
                    bounded.total += 1;
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    bounded.total += 1;
                }
                Ok(bounded)
            }
        }

        deserializer.deserialize_seq(SeqVisitor(std::marker::PhantomData))
    }
}
