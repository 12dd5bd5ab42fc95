//! JSON as protobuf's well-known `Struct` and `Value` (the one conversion
//! both the gRPC adapter and the app channel need; written by hand, and
//! depending on no workspace crate).

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
}
