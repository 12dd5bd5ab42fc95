//! The memory budget (`--request-memory-budget`): how many bytes of request
//! bodies the API holds at once, across every call on both transports.
//!
//! A call's body is charged as its bytes arrive, and the charge is held
//! until the call's answer begins: by then the operation that read the body
//! whole (a state save, a bulk publish, a query) has finished with it. The
//! first [`FREE_BYTES`] of each body are not charged, so small calls never
//! touch the budget. A body that would go over waits for room (its sender
//! is held back by flow control meanwhile), up to `--request-memory-wait`
//! ([`DEFAULT_WAIT`]); then its reader fails with [`OverBudget`], which the
//! API answers with 429 (`RESOURCE_EXHAUSTED` on gRPC) rather than risk
//! running out of memory. Bodies that stream on (service invocation, proxied gRPC
//! calls) are never charged: they are not held whole.
//!
//! What a body costs once decoded is bounded by the limits on item counts
//! (`mecha_core::limits`), so the runtime's memory stays within a small
//! multiple of the budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mecha_core::{ApiError, GrpcCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use mecha_invoke::body::BoxError;

/// What each body may bring before it is charged.
pub const FREE_BYTES: usize = 64 * 1024;

/// How long a body waits for room in the budget, by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The default budget: eight bodies of the default `--max-body-size`. A
/// body read whole takes about three times its size while its operation
/// runs (measured in docs/benchmarks.md).
pub const DEFAULT_BYTES: usize = 32 * 1024 * 1024;

/// The error code of a call refused for the budget (daprd has none).
pub const CODE: &str = "ERR_RESOURCE_EXHAUSTED";

/// The bytes of request bodies the API may hold at once.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    room: Arc<Semaphore>,
    bytes: usize,
    max_body: usize,
    wait: Duration,
}

impl MemoryBudget {
    /// A budget of `bytes`, at least one body of `max_body` (so that any
    /// body the limit admits can be served, one at a time), where a body
    /// waits up to `wait` for room.
    pub fn new(bytes: usize, max_body: usize, wait: Duration) -> Self {
        let bytes = bytes
            .max(max_body)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            room: Arc::new(Semaphore::new(bytes)),
            bytes,
            max_body,
            wait,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bytes held now.
    pub fn held(&self) -> usize {
        self.bytes - self.room.available_permits()
    }

    /// An account for a call whose body is read whole, unless the body is
    /// known to be small (or absent): those are never charged.
    pub fn account_for<B: Body>(&self, body: &B) -> Option<Account> {
        let small = body.is_end_stream()
            || body
                .size_hint()
                .upper()
                .is_some_and(|upper| upper <= FREE_BYTES as u64);
        (!small).then(|| self.account())
    }

    /// A call's account: its body is charged through [`Account::charge`],
    /// and its charge is returned when the account is [`Account::settle`]d
    /// (the answer begins) or dropped.
    pub fn account(&self) -> Account {
        Account(Arc::new(Ledger {
            room: self.room.clone(),
            total: self.bytes,
            max_body: self.max_body,
            wait: self.wait,
            state: Mutex::new(State {
                brought: 0,
                held: None,
                settled: false,
            }),
        }))
    }
}

/// One call's charge against the budget.
#[derive(Clone)]
pub struct Account(Arc<Ledger>);

struct Ledger {
    room: Arc<Semaphore>,
    total: usize,
    /// `--max-body-size`: what a body of unknown size is charged.
    max_body: usize,
    wait: Duration,
    state: Mutex<State>,
}

struct State {
    /// Bytes the body has brought so far.
    brought: usize,
    held: Option<OwnedSemaphorePermit>,
    /// The answer has begun: nothing more is charged.
    settled: bool,
}

/// What a body is expected to bring in all, charged when its first
/// chargeable chunk arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// A declared length (HTTP's `Content-Length`).
    Declared(usize),
    /// A gRPC message: its length is in the first 5 bytes (`prefix` holds
    /// those seen so far, `seen` how many).
    GrpcMessage { prefix: [u8; 5], seen: u8 },
    /// Not known: charged as a body of `--max-body-size`.
    Unknown,
}

impl Size {
    /// A gRPC message, its prefix not yet seen.
    pub const GRPC_MESSAGE: Self = Self::GrpcMessage {
        prefix: [0; 5],
        seen: 0,
    };

    /// A body's declared size, when its length is known.
    pub fn of<B: Body>(body: &B) -> Self {
        match body.size_hint().exact() {
            Some(len) => Self::Declared(usize::try_from(len).unwrap_or(usize::MAX)),
            None => Self::Unknown,
        }
    }
}

/// What charging a chunk asks of its reader.
enum Charge {
    Done,
    /// Wait for this many bytes of room.
    Wait(u32),
    Never,
}

impl Account {
    /// Returns the charge: the call's answer has begun.
    pub fn settle(&self) {
        let mut state = self.0.state.lock().expect("budget lock");
        state.settled = true;
        state.held = None;
    }

    /// Wraps a body of `size` so that what it brings is charged to this
    /// account.
    pub fn charge<B>(&self, body: B, size: Size) -> Charged<B> {
        Charged {
            inner: body,
            account: self.clone(),
            size,
            waiting: None,
        }
    }

    /// Charges a chunk of `len` bytes of a body expected to bring
    /// `expected` bytes in all: the whole expected size is charged at once,
    /// so that no body ever holds part of the budget while it waits for
    /// the rest (bodies holding parts, each waiting for more, would wait
    /// for each other).
    fn take(&self, len: usize, expected: usize) -> Charge {
        let ledger = &self.0;
        let mut state = ledger.state.lock().expect("budget lock");
        if state.settled {
            return Charge::Done;
        }
        state.brought = state.brought.saturating_add(len);
        // Nothing is charged until the body passes its free allowance:
        // small bodies of unknown size are never charged as large ones.
        if state.brought <= FREE_BYTES {
            return Charge::Done;
        }
        let target = state.brought.max(expected).saturating_sub(FREE_BYTES);
        let held = state.held.as_ref().map_or(0, |p| p.num_permits());
        let due = target.saturating_sub(held);
        if due == 0 {
            return Charge::Done;
        }
        if target > ledger.total {
            return Charge::Never;
        }
        match ledger.room.clone().try_acquire_many_owned(due as u32) {
            Ok(permit) => {
                add(&mut state.held, permit);
                Charge::Done
            }
            Err(_) => Charge::Wait(due as u32),
        }
    }

    /// The refusal of a body this account cannot hold.
    fn over(&self) -> BoxError {
        Box::new(OverBudget {
            budget: self.0.total,
        })
    }

    fn add(&self, permit: OwnedSemaphorePermit) {
        let mut state = self.0.state.lock().expect("budget lock");
        // Settled meanwhile: the permit goes back at once.
        if !state.settled {
            add(&mut state.held, permit);
        }
    }
}

fn add(held: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
}

pin_project_lite::pin_project! {
    /// A call's work, which settles its account when its answer begins.
    pub struct Settle<F> {
        #[pin]
        inner: F,
        account: Option<Account>,
    }
}

impl<F> Settle<F> {
    /// `work` for a call whose body is charged to `account`, if any.
    pub fn new(work: F, account: Option<Account>) -> Self {
        Self {
            inner: work,
            account,
        }
    }
}

impl<F: Future> Future for Settle<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(account) = this.account.take() {
            account.settle();
        }
        Poll::Ready(output)
    }
}

/// A body over the budget: it waited its time for room, or is larger than
/// the whole budget.
#[derive(Debug)]
pub struct OverBudget {
    pub budget: usize,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the runtime holds as many request bodies as its memory budget of {} bytes allows \
             (--request-memory-budget); retry later",
            self.budget
        )
    }
}

impl std::error::Error for OverBudget {}

impl OverBudget {
    /// The API's answer: 429, gRPC `RESOURCE_EXHAUSTED`.
    pub fn error(&self) -> ApiError {
        ApiError::new(CODE, 429, GrpcCode::ResourceExhausted, self.to_string())
    }

    /// The budget's refusal, when `err` (a body's error) is one.
    pub fn find<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e OverBudget> {
        mecha_invoke::body::cause(err)
    }
}

type Acquire = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Result<OwnedSemaphorePermit, tokio::sync::AcquireError>,
                    tokio::time::error::Elapsed,
                >,
            > + Send,
    >,
>;

/// A body whose bytes are charged to an [`Account`].
pub struct Charged<B> {
    inner: B,
    account: Account,
    size: Size,
    /// A chunk read, waiting for room.
    waiting: Option<(Frame<Bytes>, Acquire)>,
}

impl<B> Charged<B> {
    /// What the body is expected to bring in all, seeing `data`.
    fn expected(&mut self, data: &Bytes) -> usize {
        let max_body = self.account.0.max_body;
        match self.size {
            Size::Declared(len) => len.min(max_body),
            Size::Unknown => max_body,
            Size::GrpcMessage {
                mut prefix,
                mut seen,
            } => {
                // The body starts with the message's prefix, maybe over
                // several chunks: a compression flag, then its length
                // (big-endian). Until it is whole, nothing is expected.
                for byte in data.iter().take(5 - usize::from(seen)) {
                    prefix[usize::from(seen)] = *byte;
                    seen += 1;
                }
                if seen < 5 {
                    self.size = Size::GrpcMessage { prefix, seen };
                    return 0;
                }
                let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                self.size = Size::Declared((len as usize).saturating_add(5));
                self.expected(data)
            }
        }
    }
}

impl<B> Body for Charged<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some((_, acquire)) = &mut this.waiting {
            return match acquire.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Ok(permit))) => {
                    this.account.add(permit);
                    let (frame, _) = this.waiting.take().expect("waiting");
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(_) => {
                    this.waiting = None;
                    Poll::Ready(Some(Err(this.account.over())))
                }
            };
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let (len, expected) = match frame.data_ref() {
            Some(data) => (data.len(), this.expected(data)),
            None => (0, 0),
        };
        match this.account.take(len, expected) {
            Charge::Done => Poll::Ready(Some(Ok(frame))),
            Charge::Never => Poll::Ready(Some(Err(this.account.over()))),
            Charge::Wait(due) => {
                let ledger = &this.account.0;
                let acquire: Acquire = Box::pin(tokio::time::timeout(
                    ledger.wait,
                    ledger.room.clone().acquire_many_owned(due),
                ));
                this.waiting = Some((frame, acquire));
                // Poll once, so that the wait registers its wake-up.
                self.poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn body(len: usize) -> Full<Bytes> {
        Full::new(Bytes::from(vec![b'x'; len]))
    }

    /// Reads a body of `len` bytes charged to `account`.
    async fn read(account: &Account, len: usize) -> Result<(), BoxError> {
        let charged = account.charge(body(len), Size::Declared(len));
        charged.collect().await.map(drop)
    }

    #[tokio::test]
    async fn small_bodies_are_free_and_large_ones_held_until_settled() {
        let budget = MemoryBudget::new(1024 * 1024, 1024 * 1024, DEFAULT_WAIT);
        let small = budget.account();
        read(&small, FREE_BYTES).await.unwrap();
        assert_eq!(budget.held(), 0);
        let large = budget.account();
        read(&large, FREE_BYTES + 1000).await.unwrap();
        assert_eq!(budget.held(), 1000);
        large.settle();
        assert_eq!(budget.held(), 0);
        // After the answer began, nothing more is charged.
        read(&large, FREE_BYTES + 1000).await.unwrap();
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_body_waits_for_room_then_is_refused() {
        let budget = MemoryBudget::new(FREE_BYTES, FREE_BYTES, DEFAULT_WAIT);
        let first = budget.account();
        read(&first, 2 * FREE_BYTES).await.unwrap();
        assert_eq!(budget.held(), FREE_BYTES);
        // A second body waits; the first one's answer makes room.
        let second = budget.account();
        let waiting = tokio::spawn({
            let second = second.clone();
            async move { read(&second, 2 * FREE_BYTES).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.settle();
        assert!(waiting.await.unwrap());
        assert_eq!(budget.held(), FREE_BYTES);
        // A body larger than the whole budget is refused at once.
        let err = read(&budget.account(), 3 * FREE_BYTES).await.unwrap_err();
        assert!(OverBudget::find(err.as_ref()).is_some(), "{err}");
        drop(second);
        assert_eq!(budget.held(), 0, "a dropped account returns its charge");
    }

    #[tokio::test]
    async fn a_body_is_charged_whole_before_it_is_read_on() {
        // Two bodies of three quarters of the budget, their chunks
        // interleaved: the first takes its whole size at once and reads on;
        // the second waits for all of its own (at the head of the line, it
        // gathers what is freed), so neither waits for the other.
        let budget = MemoryBudget::new(4 * FREE_BYTES, 4 * FREE_BYTES, DEFAULT_WAIT);
        let size = 3 * FREE_BYTES + FREE_BYTES;
        let (first, second) = (budget.account(), budget.account());
        let chunks = |n| {
            futures::stream::iter((0..4).map(move |_| {
                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; n])))
            }))
        };
        let one = first.charge(
            http_body_util::StreamBody::new(chunks(size / 4)),
            Size::Declared(size),
        );
        let mut one = std::pin::pin!(one);
        one.frame().await.unwrap().unwrap();
        one.frame().await.unwrap().unwrap();
        assert_eq!(budget.held(), 3 * FREE_BYTES);
        let two = second.charge(
            http_body_util::StreamBody::new(chunks(size / 4)),
            Size::Declared(size),
        );
        let reading = tokio::spawn(async move { two.collect().await.is_ok() });
        tokio::task::yield_now().await;
        while one.frame().await.is_some() {}
        assert!(!reading.is_finished(), "the second waits for room");
        first.settle();
        assert!(reading.await.unwrap());
    }

    #[tokio::test]
    async fn a_grpc_message_is_charged_by_its_prefix() {
        let budget = MemoryBudget::new(1024 * 1024, 1024 * 1024, DEFAULT_WAIT);
        let account = budget.account();
        let mut message = vec![0u8, 0, 2, 0, 0];
        message.extend(vec![b'x'; FREE_BYTES]);
        let first = Bytes::from(message);
        let body = account.charge(Full::new(first), Size::GRPC_MESSAGE);
        body.collect().await.unwrap();
        // 0x20000 bytes declared, plus the prefix, less what is free.
        assert_eq!(budget.held(), 0x20000 + 5 - FREE_BYTES);
        drop(account);
        // The prefix split over chunks, the first of two bytes.
        let account = budget.account();
        let chunks = [vec![0u8, 0], vec![2, 0, 0], vec![b'x'; FREE_BYTES]];
        let body = http_body_util::StreamBody::new(futures::stream::iter(
            chunks.map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
        ));
        account
            .charge(body, Size::GRPC_MESSAGE)
            .collect()
            .await
            .unwrap();
        assert_eq!(budget.held(), 0x20000 + 5 - FREE_BYTES);
    }

    #[tokio::test]
    async fn a_small_body_of_unknown_size_is_free() {
        let budget = MemoryBudget::new(1024 * 1024, 1024 * 1024, DEFAULT_WAIT);
        let account = budget.account();
        account
            .charge(body(100), Size::Unknown)
            .collect()
            .await
            .unwrap();
        assert_eq!(budget.held(), 0);
        // Past the allowance, it is charged as the largest body.
        let account = budget.account();
        account
            .charge(body(FREE_BYTES + 1), Size::Unknown)
            .collect()
            .await
            .unwrap();
        assert_eq!(budget.held(), 1024 * 1024 - FREE_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_after_its_time() {
        let budget = MemoryBudget::new(FREE_BYTES, FREE_BYTES, DEFAULT_WAIT);
        let first = budget.account();
        read(&first, 2 * FREE_BYTES).await.unwrap();
        let err = read(&budget.account(), 2 * FREE_BYTES).await.unwrap_err();
        let over = OverBudget::find(err.as_ref()).expect("over budget");
        assert_eq!(over.error().http_status, 429);
    }
}
