//! Input bindings as a service of the runtime: once the runtime is ready,
//! each binding whose events the app takes starts reading, and delivers to
//! the app; what a gRPC app answers may go on to output bindings (`to`), as
//! in daprd. Draining stops them all.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mecha_core::{HostStatus, Service};
use tokio_util::sync::CancellationToken;

use crate::{AppBindings, BindingsBlock, InputEvent, InputHandler, InvokeRequest, Refused};

/// The input bindings the app takes.
pub struct InputBindings {
    host: Arc<dyn HostStatus>,
    /// The app; `None` when the runtime has none (`--app-port`).
    app: Option<Arc<dyn AppBindings>>,
    stop: CancellationToken,
}

impl InputBindings {
    pub fn new(host: Arc<dyn HostStatus>, app: Option<Arc<dyn AppBindings>>) -> Self {
        Self {
            host,
            app,
            stop: CancellationToken::new(),
        }
    }
}

#[async_trait]
impl Service for InputBindings {
    fn name(&self) -> &'static str {
        "input bindings"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let (host, app, stop) = (self.host.clone(), self.app.clone(), self.stop.clone());
        tokio::spawn(async move {
            host.wait_ready().await;
            if !host.is_shutting_down() {
                // Asking the app patiently ends when the runtime stops.
                let cancelled = stop.clone();
                tokio::select! {
                    () = start_input_bindings(&host, app, stop) => {}
                    () = cancelled.cancelled() => {}
                }
            }
        });
        Ok(())
    }

    async fn drain(&self, _grace: Duration) {
        self.stop.cancel();
    }
}

/// Delivers one binding's events to the app.
struct ToApp {
    app: Arc<dyn AppBindings>,
    name: String,
    route: String,
    host: Weak<dyn HostStatus>,
}

#[async_trait]
impl InputHandler for ToApp {
    async fn handle(&self, event: InputEvent) -> Result<Bytes, Refused> {
        let answer = self.app.deliver(&self.name, &self.route, &event).await?;
        if !answer.to.is_empty()
            && let Some(host) = self.host.upgrade()
        {
            forward(&*host, &answer.to, &answer.data, answer.parallel).await;
        }
        Ok(answer.data)
    }
}

/// Sends what the app answered to the output bindings it named, with the
/// operation `create`: one after another (stopping at a failure), or all at
/// once.
async fn forward(host: &dyn HostStatus, to: &[String], data: &Bytes, parallel: bool) {
    let components = host.components();
    let send = |name: &String| {
        let binding = components
            .get::<BindingsBlock>(name)
            .and_then(|b| b.output.clone());
        let request = InvokeRequest::new("create", data.clone());
        let name = name.clone();
        async move {
            let Some(binding) = binding else {
                tracing::warn!(binding = %name, "the app's answer names an output binding that is not loaded");
                return false;
            };
            match binding.invoke(&request).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(binding = %name, error = %err, "error executing app response");
                    false
                }
            }
        }
    };
    if parallel {
        futures::future::join_all(to.iter().map(send)).await;
    } else {
        for name in to {
            if !send(name).await {
                break;
            }
        }
    }
}

/// Starts the input bindings the app takes. `stop` ends them all.
async fn start_input_bindings(
    host: &Arc<dyn HostStatus>,
    app: Option<Arc<dyn AppBindings>>,
    stop: CancellationToken,
) {
    let components = host.components();
    let inputs: Vec<_> = components
        .all::<BindingsBlock>()
        .filter(|b| b.input.is_some())
        .cloned()
        .collect();
    if inputs.is_empty() {
        return;
    }
    let Some(app) = app else {
        tracing::warn!(
            count = inputs.len(),
            "input bindings are loaded, but there is no app (--app-port) to deliver to; not reading"
        );
        return;
    };
    for binding in inputs {
        let asked = binding.directions.is_some_and(|d| d.input);
        if !asked && !app.subscribes(&binding.name, &binding.route).await {
            tracing::info!(binding = %binding.name, "app has not subscribed to binding {}.", binding.name);
            continue;
        }
        let handler = Arc::new(ToApp {
            app: app.clone(),
            name: binding.name.clone(),
            route: binding.route.clone(),
            host: Arc::downgrade(host),
        });
        let input = binding.input.clone().expect("an input binding");
        match input.read(handler, stop.child_token()).await {
            Ok(()) => {
                tracing::info!(binding = %binding.name, route = %binding.route, "reading input binding")
            }
            Err(err) => {
                tracing::error!(binding = %binding.name, error = %err, "cannot start reading input binding")
            }
        }
    }
}
