//! JSON as protobuf's well-known `Struct` and `Value`, both ways, and as a
//! `Value` in an `Any` (the conversions the adapters and the app channel
//! need; written by hand, and depending on no workspace crate).

use serde_json::Value;

/// A JSON value as a protobuf `Value`.
pub fn json_value(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind as K;
    let kind = match value {
        Value::Null => K::NullValue(0),
        Value::Bool(b) => K::BoolValue(*b),
        Value::Number(n) => K::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => K::StringValue(s.clone()),
        Value::Array(items) => K::ListValue(prost_types::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Value::Object(map) => K::StructValue(json_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_struct(map: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), json_value(value)))
            .collect(),
    }
}

/// The type URL of a `google.protobuf.Value` in an `Any`.
pub const VALUE_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Value";

/// A protobuf `Value` as JSON (integral numbers without a fraction, as
/// protojson writes them).
pub fn value_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind as K;
    match &value.kind {
        None | Some(K::NullValue(_)) => Value::Null,
        Some(K::BoolValue(b)) => Value::Bool(*b),
        Some(K::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            Value::from(*n as i64)
        }
        Some(K::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
        }
        Some(K::StringValue(s)) => Value::String(s.clone()),
        Some(K::ListValue(list)) => Value::Array(list.values.iter().map(value_json).collect()),
        Some(K::StructValue(map)) => Value::Object(
            map.fields
                .iter()
                .map(|(key, value)| (key.clone(), value_json(value)))
                .collect(),
        ),
    }
}

/// JSON as an `Any` holding a `google.protobuf.Value`: its type URL and
/// encoded bytes.
pub fn json_any(value: &Value) -> (String, Vec<u8>) {
    use prost::Message as _;
    (VALUE_TYPE_URL.to_owned(), json_value(value).encode_to_vec())
}

/// The JSON of an `Any` that holds a `google.protobuf.Value`; `None` for
/// any other type, or bytes that do not decode.
pub fn any_json(type_url: &str, bytes: &[u8]) -> Option<Value> {
    use prost::Message as _;
    if type_url != VALUE_TYPE_URL {
        return None;
    }
    prost_types::Value::decode(bytes)
        .ok()
        .map(|value| value_json(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_a_protobuf_struct() {
        let json = serde_json::json!({"a": [1, "x", null], "b": {"c": true}});
        let proto = json_struct(json.as_object().unwrap());
        assert_eq!(proto.fields.len(), 2);
        assert!(matches!(
            proto.fields["b"].kind,
            Some(prost_types::value::Kind::StructValue(_))
        ));
        let Some(prost_types::value::Kind::ListValue(list)) = &proto.fields["a"].kind else {
            panic!("a list: {proto:?}");
        };
        assert_eq!(list.values.len(), 3);
    }

    #[test]
    fn json_round_trips_through_an_any() {
        let json = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        let (type_url, bytes) = json_any(&json);
        assert_eq!(any_json(&type_url, &bytes), Some(json));
        assert_eq!(any_json("type.googleapis.com/other", &bytes), None);
    }
}
