//! W3C trace context: every hop carries a `traceparent`, created when the
//! caller sent none, with a new parent id at each runtime.

use http::HeaderMap;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// 64 random bits from one of two SplitMix64 streams per thread, seeded
/// once from the system's random source, taken in turn: a trace id's 128
/// bits come from 128 bits of state, not one stream's 64. Trace and span
/// ids need ids spread evenly and never zero, not secrecy; a system call
/// per id (two per hop) showed in the profile of every call.
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64, bool)> = {
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            Cell::new((a, b, false))
        };
    }
    STATE.with(|state| {
        let (a, b, second) = state.get();
        let next = if second { b } else { a }.wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(if second {
            (a, next, false)
        } else {
            (next, b, true)
        });
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// Writes random lower-case hex into `out` (whose length is even), never
/// all zeros.
fn random_hex_into(out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    loop {
        let mut zero = true;
        for chunk in out.chunks_mut(16) {
            let bits = random_u64();
            zero &= bits >> (64 - 4 * chunk.len()) == 0;
            for (i, byte) in chunk.iter_mut().enumerate() {
                *byte = HEX[((bits >> (60 - 4 * i)) & 0xf) as usize];
            }
        }
        if !zero {
            return;
        }
    }
}

/// `bytes` random bytes as lower-case hex, never all zeros.
#[cfg(test)]
fn random_hex(bytes: usize) -> String {
    let mut out = vec![0; bytes * 2];
    random_hex_into(&mut out);
    String::from_utf8(out).expect("hex is ASCII")
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
    // `00-{trace: 32}-{parent: 16}-{flags: 2}`
    let mut value = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let current = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse);
    if let Some((trace, flags)) = current {
        value[3..35].copy_from_slice(trace.as_bytes());
        value[53..55].copy_from_slice(flags.as_bytes());
    } else {
        headers.remove(TRACESTATE);
        random_hex_into(&mut value[3..35]);
    }
    random_hex_into(&mut value[36..52]);
    let value = http::HeaderValue::from_bytes(&value).expect("hex and dashes");
    headers.insert(TRACEPARENT, value);
}

/// The W3C `baggage` header.
pub const BAGGAGE: &str = "baggage";

/// The most bytes and list members a `baggage` value may have (W3C).
const BAGGAGE_MAX_BYTES: usize = 8192;
const BAGGAGE_MAX_MEMBERS: usize = 180;

/// Checks a W3C `baggage` value as OpenTelemetry's parser (daprd's) does:
/// comma-separated `key=value` members with `;`-separated properties, keys
/// HTTP tokens, values baggage octets with valid percent-encoding. Empty is
/// valid; the error says what is wrong.
pub fn check_baggage(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > BAGGAGE_MAX_BYTES {
        return Err(format!(
            "baggage is {} bytes, more than {BAGGAGE_MAX_BYTES}",
            value.len()
        ));
    }
    let members: Vec<&str> = value.split(',').collect();
    if members.len() > BAGGAGE_MAX_MEMBERS {
        return Err(format!(
            "baggage has {} members, more than {BAGGAGE_MAX_MEMBERS}",
            members.len()
        ));
    }
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let is_value = |s: &str| {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = bytes.get(i + 1..i + 3);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    i += 3;
                    continue;
                }
                0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E => {}
                _ => return false,
            }
            i += 1;
        }
        true
    };
    let ows = |s: &str| s.trim_matches([' ', '\t']).to_owned();
    for member in members {
        let mut parts = member.split(';');
        let pair = ows(parts.next().unwrap_or_default());
        let Some((key, val)) = pair.split_once('=') else {
            return Err(format!("invalid baggage list-member: {member:?}"));
        };
        if !is_token(&ows(key)) || !is_value(&ows(val)) {
            return Err(format!("invalid baggage list-member: {member:?}"));
        }
        for property in parts {
            let property = ows(property);
            let valid = match property.split_once('=') {
                Some((key, val)) => is_token(&ows(key)) && is_value(&ows(val)),
                None => is_token(&property),
            };
            if !valid {
                return Err(format!("invalid baggage property: {property:?}"));
            }
        }
    }
    Ok(())
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
    fn ids_are_hex_and_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| random_hex(8)).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && parse(&format!("00-{id}{id}-{id}-01")).is_some())
        );
        // Other threads draw other ids.
        let other = std::thread::spawn(|| random_hex(16)).join().unwrap();
        assert_ne!(other, random_hex(16));
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

    #[test]
    fn baggage_as_opentelemetry_reads_it() {
        for good in [
            "",
            "userId=alice",
            "userId=alice,serverNode=DF%2028, isProduction=false",
            "key1=value1;property1;property2=p2, key2 = value2",
        ] {
            assert_eq!(check_baggage(good), Ok(()), "{good}");
        }
        for bad in [
            "no-equals",
            "k=v,,k2=v2",
            "bad key=v",
            "k=v v",
            "k=%zz",
            "k=\"quoted\"",
            "k=v;bad prop",
        ] {
            assert!(check_baggage(bad).is_err(), "{bad}");
        }
        assert!(check_baggage(&"k=v,".repeat(181)).is_err());
        assert!(check_baggage(&format!("k={}", "v".repeat(9000))).is_err());
    }
}
