//! App health checks (`--enable-app-health-check`): probe the app every
//! interval; after `threshold` failures in a row it is unhealthy and calls
//! to it are refused, until a probe succeeds again.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::Request;
use mecha_invoke::body;

use crate::Channel;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// HTTP apps: the path probed with GET (`--app-health-check-path`).
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub threshold: u32,
}

pub struct Health {
    healthy: tokio::sync::watch::Sender<bool>,
}

impl Health {
    /// Without checks the app is taken as healthy; with them, it is not
    /// until the first probe succeeds.
    pub fn new(checked: bool) -> Arc<Self> {
        Arc::new(Self {
            healthy: tokio::sync::watch::Sender::new(!checked),
        })
    }

    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// Resolves once the app is healthy.
    pub async fn wait_healthy(&self) {
        let mut rx = self.healthy.subscribe();
        let _ = rx.wait_for(|healthy| *healthy).await;
    }

    fn set(&self, healthy: bool) {
        if self.healthy.send_replace(healthy) != healthy {
            if healthy {
                tracing::info!("the app is healthy");
            } else {
                tracing::warn!("the app is unhealthy: calls to it are refused until it recovers");
            }
        }
    }
}

pub fn spawn(channel: Weak<Channel>, check: HealthCheck) {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let Some(strong) = channel.upgrade() else {
                break;
            };
            let ok = tokio::time::timeout(check.timeout, strong.speaks.probe(&strong, &check.path))
                .await
                .unwrap_or(false);
            if ok {
                failures = 0;
                strong.health.set(true);
            } else {
                failures = failures.saturating_add(1);
                if failures >= check.threshold.max(1) {
                    strong.health.set(false);
                }
            }
            drop(strong);
            tokio::time::sleep(check.interval).await;
        }
    });
}

/// One probe of an HTTP app: a GET of its health path.
pub(crate) async fn probe_http(channel: &Channel, path: &str) -> bool {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let Ok(uri) = channel.uri(&path) else {
        return false;
    };
    let mut request = Request::get(uri)
        .body(body::empty())
        .expect("valid request");
    channel.add_token(request.headers_mut());
    match channel.client.request(request).await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}
