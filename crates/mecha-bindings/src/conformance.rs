//! The binding conformance suites: one for input bindings, one for output
//! bindings. Every binding component passes the suite of each direction it
//! serves, against its real backend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::*;

/// Makes the backend of an input binding produce one event (publishes to
/// its queue or topic, as another system would).
#[async_trait]
pub trait Trigger: Send + Sync {
    async fn fire(&self, data: &[u8]);
}

/// One input case: the binding, and how to make it produce events (`None`
/// for bindings that produce them by themselves, such as cron).
pub struct InputCase {
    pub binding: Arc<dyn InputBinding>,
    pub trigger: Option<Arc<dyn Trigger>>,
    /// An event the app refused comes again (the backend keeps it).
    pub redelivers: bool,
}

#[async_trait]
pub trait InputHarness: Send + Sync {
    /// A binding on a queue, topic or schedule of its own, or `None` to skip.
    async fn case(&self) -> Option<InputCase>;

    /// A new binding on the same queue or session as the last case, as a
    /// restarted runtime would make it, for backends that keep what was not
    /// acknowledged; `None` to skip.
    async fn reopen(&self) -> Option<Arc<dyn InputBinding>> {
        None
    }
}

/// Records the events it gets, refusing the first delivery of each when
/// asked to.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<InputEvent>>,
    refuse_first: bool,
    refuse_all: bool,
    arrived: Notify,
}

#[async_trait]
impl InputHandler for Recorder {
    async fn handle(&self, event: InputEvent) -> Result<Bytes, Refused> {
        let first = {
            let mut events = self.events.lock().unwrap();
            let first = !events.iter().any(|e| e.data == event.data);
            events.push(event);
            first
        };
        self.arrived.notify_waiters();
        if self.refuse_all || (self.refuse_first && first) {
            return Err(Refused("refused, as the test asks".into()));
        }
        Ok(Bytes::new())
    }
}

impl Recorder {
    fn count(&self, data: &[u8]) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.data == data)
            .count()
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    async fn wait(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() && !done(self) {
                panic!("timed out waiting for {what}; got {} events", self.len());
            }
        }
    }
}

fn payload(name: &str) -> Vec<u8> {
    format!("{{\"event\":\"{}\"}}", mecha_core::testing::unique(name)).into_bytes()
}

/// Every event reaches the handler, with its data.
pub async fn delivers_events(harness: &impl InputHarness) {
    let Some(case) = harness.case().await else {
        return;
    };
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    case.binding
        .read(recorder.clone(), stop.clone())
        .await
        .unwrap();
    match &case.trigger {
        Some(trigger) => {
            let events: Vec<Vec<u8>> = (0..3).map(|_| payload("event")).collect();
            for data in &events {
                trigger.fire(data).await;
            }
            recorder
                .wait("every event", |r| events.iter().all(|d| r.count(d) >= 1))
                .await;
        }
        None => recorder.wait("two events", |r| r.len() >= 2).await,
    }
    stop.cancel();
}

/// Starts a case's binding reading into `recorder` and fires one event;
/// `None` when the case cannot (no trigger, or a backend that does not
/// deliver again). The case, the reading's stop, and the event's data.
async fn read_one_event(
    harness: &impl InputHarness,
    recorder: Arc<Recorder>,
    name: &str,
) -> Option<(InputCase, CancellationToken, Vec<u8>)> {
    let case = harness.case().await?;
    let trigger = case.trigger.clone().filter(|_| case.redelivers)?;
    let stop = CancellationToken::new();
    case.binding.read(recorder, stop.clone()).await.unwrap();
    let data = payload(name);
    trigger.fire(&data).await;
    Some((case, stop, data))
}

/// An event the app refused is delivered again, until it is taken; then it
/// is not delivered again.
pub async fn refused_events_come_again(harness: &impl InputHarness) {
    let recorder = Arc::new(Recorder {
        refuse_first: true,
        ..Recorder::default()
    });
    let Some((_case, stop, data)) = read_one_event(harness, recorder.clone(), "again").await else {
        return;
    };
    recorder
        .wait("a second delivery", |r| r.count(&data) >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(recorder.count(&data), 2, "taken once, delivered no more");
    stop.cancel();
}

/// An event the app never took is not lost when the binding stops (a
/// runtime shutting down): a new binding on the same backend delivers it.
pub async fn refused_events_outlive_stop(harness: &impl InputHarness) {
    let refusing = Arc::new(Recorder {
        refuse_all: true,
        ..Recorder::default()
    });
    let Some((case, stop, data)) = read_one_event(harness, refusing.clone(), "outlives").await
    else {
        return;
    };
    refusing
        .wait("a first delivery", |r| r.count(&data) >= 1)
        .await;
    stop.cancel();
    drop(case);
    // The stopped binding lets go of what it held.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let Some(again) = harness.reopen().await else {
        return;
    };
    let taking = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    again.read(taking.clone(), stop.clone()).await.unwrap();
    taking
        .wait("the event, from the new binding", |r| r.count(&data) >= 1)
        .await;
    stop.cancel();
}

/// Once stopped, a binding delivers nothing more.
pub async fn stop_ends_delivery(harness: &impl InputHarness) {
    let Some(case) = harness.case().await else {
        return;
    };
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    case.binding
        .read(recorder.clone(), stop.clone())
        .await
        .unwrap();
    match &case.trigger {
        Some(trigger) => {
            let first = payload("before");
            trigger.fire(&first).await;
            recorder
                .wait("the first event", |r| r.count(&first) == 1)
                .await;
            stop.cancel();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = payload("after");
            trigger.fire(&after).await;
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert_eq!(recorder.count(&after), 0, "nothing after stopping");
        }
        None => {
            recorder.wait("an event", |r| r.len() >= 1).await;
            stop.cancel();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let seen = recorder.len();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(recorder.len(), seen, "nothing after stopping");
        }
    }
}

/// Gives each output case its binding, and what it must do.
#[async_trait]
pub trait OutputHarness: Send + Sync {
    /// A binding on a key space, folder, table or endpoint of its own, or
    /// `None` to skip.
    async fn component(&self) -> Option<Arc<dyn OutputBinding>>;

    /// The operations the binding must take.
    fn operations(&self) -> &'static [&'static str];

    /// A write and a read that gives back the data written, for bindings
    /// that store what they are given.
    fn write_then_read(&self, data: &[u8]) -> Option<(InvokeRequest, InvokeRequest)> {
        let _ = data;
        None
    }

    /// The data written, out of what the read answered (the answer itself
    /// for bindings that give back just the data; a SQL binding's rows
    /// hold it in a column).
    fn data_read(&self, answer: &[u8]) -> Vec<u8> {
        answer.to_vec()
    }
}

/// The binding offers the operations Dapr's binding of its type does.
pub async fn declares_its_operations(harness: &impl OutputHarness) {
    let Some(binding) = harness.component().await else {
        return;
    };
    for operation in harness.operations() {
        assert!(
            binding.operations().contains(operation),
            "{operation} is offered: {:?}",
            binding.operations()
        );
    }
}

/// An operation the binding does not take is refused, naming those it does.
pub async fn refuses_unknown_operations(harness: &impl OutputHarness) {
    let Some(binding) = harness.component().await else {
        return;
    };
    let err = binding
        .invoke(&InvokeRequest::new("no-such-operation", ""))
        .await
        .unwrap_err();
    match err {
        BindingError::UnsupportedOperation { supported, .. } => {
            assert!(!supported.is_empty())
        }
        other => panic!("expected an unsupported operation, got {other}"),
    }
}

/// What a storing binding is given, it gives back; many writers at once
/// each read their own.
pub async fn write_then_read(harness: &impl OutputHarness) {
    let Some(binding) = harness.component().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let data = payload(&format!("write-{i}"));
        let Some((write, read)) = harness.write_then_read(&data) else {
            return;
        };
        let binding = binding.clone();
        tasks.push(tokio::spawn(async move {
            binding.invoke(&write).await.unwrap();
            let answer = binding.invoke(&read).await.unwrap().expect("data back");
            (data, answer)
        }));
    }
    for task in tasks {
        let (data, answer) = task.await.unwrap();
        assert_eq!(
            harness.data_read(&answer.data),
            data,
            "read back what was written"
        );
    }
}

/// Expands the input binding suite into one `#[tokio::test]` per case.
#[macro_export]
macro_rules! input_binding_conformance {
    ($harness:ty) => {
        $crate::input_binding_conformance!(@cases $harness;
            delivers_events, refused_events_come_again, refused_events_outlive_stop,
            stop_ends_delivery);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}

/// Expands the output binding suite into one `#[tokio::test]` per case.
#[macro_export]
macro_rules! output_binding_conformance {
    ($harness:ty) => {
        $crate::output_binding_conformance!(@cases $harness;
            declares_its_operations, refuses_unknown_operations, write_then_read);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as ::core::default::Default>::default();
                $crate::conformance::$case(&harness).await;
            }
        )*
    };
}
