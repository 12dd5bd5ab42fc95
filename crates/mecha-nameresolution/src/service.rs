//! Name resolution as a service of the runtime: started by registering the
//! runtime (so others find it), drained by leaving.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use mecha_core::Service;

use crate::{NameResolver, Registration};

pub struct Registered {
    resolver: Arc<dyn NameResolver>,
    /// `None` for a runtime without an app id: it resolves, and is not
    /// found.
    registration: Option<Registration>,
}

impl Registered {
    pub fn new(resolver: Arc<dyn NameResolver>, registration: Option<Registration>) -> Self {
        Self {
            resolver,
            registration,
        }
    }
}

#[async_trait]
impl Service for Registered {
    fn name(&self) -> &'static str {
        "name resolution"
    }

    async fn start(&self) -> anyhow::Result<()> {
        if let Some(registration) = &self.registration {
            self.resolver
                .register(registration)
                .await
                .context("registering with name resolution")?;
        }
        Ok(())
    }

    async fn drain(&self, _grace: Duration) {
        if let Err(err) = self.resolver.close().await {
            tracing::warn!("leaving name resolution: {err:#}");
        }
    }
}
