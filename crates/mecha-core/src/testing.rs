//! One rule for every test that needs an external service: when the service
//! is unreachable the test prints a clear `SKIP` line and passes, unless
//! `MECHA_REQUIRE_SERVICES=1`, in which case it fails.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// True when `MECHA_REQUIRE_SERVICES=1` is set (CI sets it).
pub fn services_required() -> bool {
    std::env::var("MECHA_REQUIRE_SERVICES").is_ok_and(|value| value == "1")
}

/// Checks that `service` answers at `address` (`host:port`). Returns false,
/// after printing a SKIP line, when it does not and services are optional;
/// panics when they are required.
pub fn service_available(service: &str, address: &str) -> bool {
    let reachable = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if reachable {
        return true;
    }
    assert!(
        !services_required(),
        "{service} is unreachable at {address} and MECHA_REQUIRE_SERVICES=1"
    );
    eprintln!("SKIP: {service} is unreachable at {address}; set it up or see README.md");
    false
}

/// The address of a test service: `MECHA_TEST_<NAME>_URL` or the default.
pub fn service_url(name: &str, default: &str) -> String {
    std::env::var(format!("MECHA_TEST_{}_URL", name.to_ascii_uppercase()))
        .unwrap_or_else(|_| default.to_owned())
}

/// A name no other test (in this process, or another run sharing the
/// backend) uses: `{name}-{pid}-{count}-{nanos}`.
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{count}-{nanos:x}", std::process::id())
}
