//! Pieces of network addresses and URLs that component metadata carries:
//! `host:port` and percent-encoding.

/// Splits `host:port`, `[v6]:port`, `[v6]` or `host`. An IPv6 address
/// without brackets has no port.
pub fn split_host_port(value: &str) -> Result<(String, Option<u16>), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("'{text}' is not a port"))
    };
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("'[' without ']'")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_owned(), Some(port(p)?))),
            None if after.is_empty() => Ok((host.to_owned(), None)),
            None => Err(format!("unexpected '{after}'")),
        };
    }
    match value.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Ok((value.to_owned(), None)),
        Some((host, p)) => Ok((host.to_owned(), Some(port(p)?))),
        None => Ok((value.to_owned(), None)),
    }
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result
/// is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        let ok = |v: &str| split_host_port(v).unwrap();
        assert_eq!(ok("db:5432"), ("db".into(), Some(5432)));
        assert_eq!(ok("[::1]:3306"), ("::1".into(), Some(3306)));
        assert_eq!(ok("[::1]"), ("::1".into(), None));
        assert_eq!(ok("::1"), ("::1".into(), None));
        assert_eq!(ok("db"), ("db".into(), None));
        assert!(split_host_port("db:port").is_err());
        assert!(split_host_port("[::1").is_err());
    }

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
        assert_eq!(
            percent_decode("p%40ss%3Aw%2Frd%20%C3%A9").unwrap(),
            "p@ss:w/rd é"
        );
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
