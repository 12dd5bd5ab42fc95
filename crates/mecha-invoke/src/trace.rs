//! W3C trace context: every hop carries a `traceparent`, created when the
//! caller sent none, with a new parent id at each runtime.

use http::HeaderMap;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

/// The trace id and flags of a valid `traceparent` (version 00).
fn parse(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let valid = parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace != "00000000000000000000000000000000"
        && parent != "0000000000000000";
    valid.then_some((trace, flags))
}

/// Sets the `traceparent` of the next hop: the same trace with a new parent
/// id when the caller sent a valid one, else a new sampled trace. An invalid
/// one is replaced, and `tracestate` is kept only with a valid parent.
pub fn next_hop(headers: &mut HeaderMap) {
    let current = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse(v).map(|(t, f)| (t.to_owned(), f.to_owned())));
    let value = match current {
        Some((trace, flags)) => format!("00-{trace}-{}-{flags}", random_hex(8)),
        None => {
            headers.remove(TRACESTATE);
            format!("00-{}-{}-01", random_hex(16), random_hex(8))
        }
    };
    crate::headers::set(headers, TRACEPARENT, &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_when_missing_and_kept_across_hops() {
        let mut headers = HeaderMap::new();
        next_hop(&mut headers);
        let first = headers[TRACEPARENT].to_str().unwrap().to_owned();
        let (trace, flags) = parse(&first).expect("a valid traceparent");
        assert_eq!(flags, "01");
        next_hop(&mut headers);
        let second = headers[TRACEPARENT].to_str().unwrap().to_owned();
        assert_eq!(parse(&second).unwrap().0, trace, "same trace");
        assert_ne!(first, second, "new parent id");
    }

    #[test]
    fn invalid_ones_are_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, "garbage".parse().unwrap());
        headers.insert(TRACESTATE, "k=v".parse().unwrap());
        next_hop(&mut headers);
        assert!(parse(headers[TRACEPARENT].to_str().unwrap()).is_some());
        assert!(!headers.contains_key(TRACESTATE));
    }
}
