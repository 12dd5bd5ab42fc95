//! Placement with no service to start, for the runtimes of one host: they
//! share it through their data directory. The first runtime to need it
//! takes `placement.lock` (an exclusive file lock), serves placement on a
//! loopback port and records its address in `placement.addr`; the others
//! read the address. When the serving runtime dies, the system releases
//! its lock, the others' streams end, and the next one to look takes the
//! lock and serves: the runtimes report to it and agree again.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, oneshot};

use crate::{Options, PlacementService, Resolve};

const LOCK: &str = "placement.lock";
const ADDRESS: &str = "placement.addr";

struct Serving {
    /// Held while this runtime serves; closing it releases the lock.
    _lock: File,
    address: String,
    service: PlacementService,
    stop: oneshot::Sender<()>,
}

/// One runtime's share of its host's embedded placement.
pub struct Embedded {
    dir: PathBuf,
    options: Options,
    serving: Mutex<Option<Serving>>,
    serves: AtomicBool,
}

impl Embedded {
    pub fn new(dir: impl Into<PathBuf>, options: Options) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.into(),
            options,
            serving: Mutex::new(None),
            serves: AtomicBool::new(false),
        })
    }

    /// Whether this runtime serves the host's placement.
    pub fn serves(&self) -> bool {
        self.serves.load(Ordering::Acquire)
    }

    /// The address of the host's placement: this runtime's own when it
    /// serves it or can take it over now, else the one recorded.
    pub async fn address(&self) -> anyhow::Result<String> {
        let mut serving = self.serving.lock().await;
        if let Some(serving) = serving.as_ref() {
            return Ok(serving.address.clone());
        }
        std::fs::create_dir_all(&self.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let address = std::fs::read_to_string(self.dir.join(ADDRESS))?;
                return Ok(address.trim().to_owned());
            }
            Err(TryLockError::Error(err)) => return Err(err.into()),
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = format!("http://{}", listener.local_addr()?);
        let service = PlacementService::new(self.options.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service.clone().server())
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async move {
                        let _ = stopped.await;
                    },
                ),
        );
        // Written whole, then renamed: a reader never sees half of it.
        let written = self.dir.join(format!("{ADDRESS}.new"));
        std::fs::write(&written, &address)?;
        std::fs::rename(&written, self.dir.join(ADDRESS))?;
        tracing::info!(%address, "serving the host's embedded placement");
        *serving = Some(Serving {
            _lock: lock,
            address: address.clone(),
            service,
            stop,
        });
        self.serves.store(true, Ordering::Release);
        Ok(address)
    }

    /// Stops serving (the runtime is stopping), releasing the lock for
    /// the others to take.
    pub async fn stop(&self) {
        if let Some(serving) = self.serving.lock().await.take() {
            serving.service.shutdown();
            let _ = serving.stop.send(());
            self.serves.store(false, Ordering::Release);
        }
    }

    /// The host's placement address, looked up afresh on every attempt
    /// of a runtime's [`crate::Placement`] to reach it.
    pub fn resolver(self: &Arc<Self>) -> Resolve {
        let embedded = self.clone();
        Arc::new(move || {
            let embedded = embedded.clone();
            Box::pin(async move { embedded.address().await })
        })
    }
}
