//! The host: the runtime's services, started in order and drained in the
//! reverse order.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mecha_core::{ComponentStore, Service};

use crate::components::Plan;
use crate::runtime::Runtime;

/// The services of one runtime, in start order.
pub struct Host {
    runtime: Arc<Runtime>,
    services: Vec<Box<dyn Service>>,
}

impl Host {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            services: Vec::new(),
        }
    }

    /// Adds a service, started after those added before it.
    pub fn add(&mut self, service: impl Service + 'static) {
        self.services.push(Box::new(service));
    }

    /// The services' names, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.services.iter().map(|s| s.name()).collect()
    }

    /// Starts the services in order, serves until `stop` resolves, then
    /// drains the services that started, in the reverse order, each within
    /// `grace`. A service that fails to start stops the runtime; its error
    /// is the result. `stop` resolving while services start stops the
    /// starting.
    pub async fn run(
        self,
        started_at: Instant,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let mut stop = std::pin::pin!(stop);
        let mut started = 0;
        let mut failure = None;
        for service in &self.services {
            tokio::select! {
                result = service.start() => match result {
                    Ok(()) => started += 1,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                },
                () = &mut stop => break,
            }
        }
        if failure.is_none() && started == self.services.len() && !self.runtime.is_shutting_down() {
            self.runtime.set_started();
            tracing::info!(
                startup_ms = started_at.elapsed().as_millis() as u64,
                components = self.runtime.components().infos().len(),
                "mecha is up and running"
            );
            stop.await;
        }
        self.runtime.request_shutdown();
        if failure.is_none() {
            tracing::info!("shutting down: draining in-flight requests");
        }
        for service in self.services[..started].iter().rev() {
            tracing::debug!(service = service.name(), "draining");
            service.drain(grace).await;
        }
        match failure {
            Some(err) => Err(err),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}

/// The components as a service: started by building them (secret stores
/// first), after which they are ready.
pub struct Components {
    runtime: Arc<Runtime>,
    plan: Mutex<Option<Plan>>,
}

impl Components {
    pub fn new(runtime: Arc<Runtime>, plan: Plan) -> Self {
        Self {
            runtime,
            plan: Mutex::new(Some(plan)),
        }
    }
}

#[async_trait]
impl Service for Components {
    fn name(&self) -> &'static str {
        "components"
    }

    async fn start(&self) -> anyhow::Result<()> {
        let plan = self.plan.lock().expect("lock").take();
        let built = match plan {
            Some(plan) => plan.build().await,
            None => Ok(ComponentStore::default()),
        };
        match built {
            Ok(store) => {
                self.runtime.set_components(store);
                Ok(())
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!("{error}");
                }
                anyhow::bail!("{} component(s) failed to initialise", errors.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuntimeInfo;

    /// A service that records what happens to it.
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        fail: bool,
    }

    #[async_trait]
    impl Service for Recorder {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn start(&self) -> anyhow::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("start {}", self.name));
            if self.fail {
                anyhow::bail!("{} cannot start", self.name);
            }
            Ok(())
        }

        async fn drain(&self, _grace: Duration) {
            self.log
                .lock()
                .unwrap()
                .push(format!("drain {}", self.name));
        }
    }

    fn host(names: &[(&'static str, bool)]) -> (Host, Arc<Runtime>, Arc<Mutex<Vec<String>>>) {
        let runtime = Runtime::new(RuntimeInfo::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut host = Host::new(runtime.clone());
        for (name, fail) in names {
            host.add(Recorder {
                name,
                log: log.clone(),
                fail: *fail,
            });
        }
        (host, runtime, log)
    }

    #[tokio::test]
    async fn services_start_in_order_and_drain_in_reverse() {
        let (host, runtime, log) = host(&[("a", false), ("b", false), ("c", false)]);
        assert_eq!(host.names(), ["a", "b", "c"]);
        // Stop once every service started.
        let started = log.clone();
        let stop = async move {
            while started.lock().unwrap().len() < 3 {
                tokio::task::yield_now().await;
            }
        };
        host.run(Instant::now(), stop, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(runtime.is_shutting_down());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "start a", "start b", "start c", "drain c", "drain b", "drain a"
            ]
        );
    }

    #[tokio::test]
    async fn a_service_that_fails_stops_the_runtime_and_drains_those_started() {
        let (host, runtime, log) = host(&[("a", false), ("b", true), ("c", false)]);
        let err = host
            .run(
                Instant::now(),
                std::future::pending(),
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "b cannot start");
        assert!(runtime.is_shutting_down());
        assert_eq!(*log.lock().unwrap(), ["start a", "start b", "drain a"]);
    }
}
