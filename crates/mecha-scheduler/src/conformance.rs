//! The scheduler conformance suite: every scheduler store passes it against
//! its real backend. [`scheduler_conformance!`](crate::scheduler_conformance)
//! expands it into one `#[tokio::test]` per case. The store cases hold the
//! contract of [`JobStore`]; the firing cases run the block's firing loop
//! over the store, with an app that records what reaches it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::*;

/// Gives each case its store.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A store, or `None` when its backend is unreachable and the case is
    /// skipped (see `mecha_core::testing::service_available`).
    async fn store(&self) -> Option<Arc<dyn JobStore>>;

    /// Two stores on the same backend, as two runtimes have them.
    async fn pair(&self) -> Option<(Arc<dyn JobStore>, Arc<dyn JobStore>)>;
}

fn owner(case: &str) -> Owner {
    Owner::new(None, &mecha_core::testing::unique(case))
}

fn row(owner: &Owner, name: &str, due: i64, body: &[u8]) -> Row {
    Row {
        key: owner.key(name),
        partition: owner.partition(),
        due,
        version: fresh_version(),
        body: body.to_vec(),
    }
}

/// How long a case waits for what it expects.
const PATIENCE: Duration = Duration::from_secs(10);

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Rows are stored, read, refused without `overwrite`, replaced with it,
/// and deleted.
pub async fn put_get_delete(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let owner = owner("put");
    let first = row(&owner, "job", 1_000, b"one");
    assert!(store.put(&first, false).await.unwrap());
    assert_eq!(store.get(&first.key).await.unwrap(), Some(first.clone()));
    let second = row(&owner, "job", 2_000, b"two");
    assert!(
        !store.put(&second, false).await.unwrap(),
        "an existing key is kept without overwrite"
    );
    assert_eq!(store.get(&first.key).await.unwrap(), Some(first.clone()));
    assert!(store.put(&second, true).await.unwrap());
    assert_eq!(store.get(&first.key).await.unwrap(), Some(second.clone()));
    assert!(store.delete(&first.key).await.unwrap());
    assert!(!store.delete(&first.key).await.unwrap());
    assert_eq!(store.get(&first.key).await.unwrap(), None);
}

/// Lists and prefix deletes stay within their partition.
pub async fn partitions_are_apart(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let (a, b) = (owner("part-a"), owner("part-b"));
    for (owner, name) in [(&a, "x-2"), (&a, "x-1"), (&a, "y"), (&b, "x-1")] {
        assert!(store.put(&row(owner, name, 5, b"{}"), false).await.unwrap());
    }
    let keys = |rows: Vec<Row>| rows.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(
        keys(store.list(&a.partition()).await.unwrap()),
        vec![a.key("x-1"), a.key("x-2"), a.key("y")]
    );
    assert_eq!(
        store
            .delete_prefix(&a.partition(), &a.key("x-"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        keys(store.list(&a.partition()).await.unwrap()),
        vec![a.key("y")]
    );
    assert_eq!(
        keys(store.list(&b.partition()).await.unwrap()),
        vec![b.key("x-1")],
        "another partition keeps its rows"
    );
    assert_eq!(
        store
            .delete_prefix(&a.partition(), &a.key(""))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.next_due(&a.partition()).await.unwrap(), None);
    assert_eq!(store.next_due(&b.partition()).await.unwrap(), Some(5));
}

/// Claims take due rows earliest first, move them to the lease's end with
/// a new version, and leave rows not yet due.
pub async fn claims_are_ordered_and_leased(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let owner = owner("claim");
    let partition = owner.partition();
    for (name, due) in [("c", 30), ("a", 10), ("b", 20), ("later", 1_000)] {
        assert!(
            store
                .put(&row(&owner, name, due, b"{}"), false)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.next_due(&partition).await.unwrap(), Some(10));
    let first = store.claim(&partition, 100, 500, 2).await.unwrap();
    let names: Vec<_> = first.iter().map(|r| r.key.clone()).collect();
    assert_eq!(names, vec![owner.key("a"), owner.key("b")]);
    for claimed in &first {
        assert_eq!(claimed.due, 500);
        assert_eq!(
            store.get(&claimed.key).await.unwrap().as_ref(),
            Some(claimed)
        );
    }
    let second = store.claim(&partition, 100, 500, 10).await.unwrap();
    assert_eq!(
        second.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        vec![owner.key("c")],
        "claimed rows are not claimed again while leased; later rows wait"
    );
    // The leases run out: the rows are claimed again, with new versions.
    let again = store.claim(&partition, 600, 900, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    for claimed in &again {
        let before = first.iter().chain(&second).find(|r| r.key == claimed.key);
        assert_ne!(claimed.version, before.unwrap().version);
    }
}

/// A settlement applies only to the claim that still holds the row.
pub async fn settlements_are_fenced(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let owner = owner("settle");
    let partition = owner.partition();
    assert!(
        store
            .put(&row(&owner, "j", 10, b"v0"), false)
            .await
            .unwrap()
    );
    let stale = store
        .claim(&partition, 100, 200, 1)
        .await
        .unwrap()
        .remove(0);
    let held = store
        .claim(&partition, 300, 400, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        !store
            .settle(&stale.key, stale.version, Some((1_000, b"stale")))
            .await
            .unwrap(),
        "a claim whose lease was taken over settles nothing"
    );
    assert!(
        store
            .settle(&held.key, held.version, Some((1_000, b"v1")))
            .await
            .unwrap()
    );
    let now = store.get(&held.key).await.unwrap().unwrap();
    assert_eq!((now.due, now.body.as_slice()), (1_000, b"v1".as_slice()));
    // A job overwritten while it fires keeps the new registration.
    let claim = store
        .claim(&partition, 2_000, 3_000, 1)
        .await
        .unwrap()
        .remove(0);
    let replaced = row(&owner, "j", 5_000, b"new");
    assert!(store.put(&replaced, true).await.unwrap());
    assert!(!store.settle(&claim.key, claim.version, None).await.unwrap());
    assert_eq!(store.get(&claim.key).await.unwrap(), Some(replaced));
    // Settling with nothing next deletes the row.
    let claim = store
        .claim(&partition, 6_000, 7_000, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(store.settle(&claim.key, claim.version, None).await.unwrap());
    assert_eq!(store.get(&claim.key).await.unwrap(), None);
}

/// Extended claims are not claimed again at their first lease's end.
pub async fn extended_claims_hold(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let owner = owner("extend");
    let partition = owner.partition();
    assert!(
        store
            .put(&row(&owner, "j", 10, b"{}"), false)
            .await
            .unwrap()
    );
    let claim = store
        .claim(&partition, 100, 200, 1)
        .await
        .unwrap()
        .remove(0);
    store
        .extend(&[(claim.key.clone(), claim.version)], 1_000)
        .await
        .unwrap();
    assert!(
        store
            .claim(&partition, 500, 600, 1)
            .await
            .unwrap()
            .is_empty()
    );
    // A stale claim extends nothing.
    store
        .extend(&[(claim.key.clone(), 7)], 5_000)
        .await
        .unwrap();
    assert_eq!(store.get(&claim.key).await.unwrap().unwrap().due, 1_000);
    // Nor does a claim once settled: its next tick stands.
    assert!(
        store
            .settle(&claim.key, claim.version, Some((1_500, b"next")))
            .await
            .unwrap()
    );
    store
        .extend(&[(claim.key.clone(), claim.version)], 9_000)
        .await
        .unwrap();
    let row = store.get(&claim.key).await.unwrap().unwrap();
    assert_eq!(
        row.due, 1_500,
        "an extend after the settlement moved the tick"
    );
    assert_ne!(row.version, claim.version);
    let again = store
        .claim(&partition, 2_000, 3_000, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(store.settle(&again.key, again.version, None).await.unwrap());
}

/// Two stores on one backend, claiming at once, never get the same row.
pub async fn concurrent_claims_are_exclusive(harness: &impl Harness) {
    let Some((one, two)) = harness.pair().await else {
        return;
    };
    let owner = owner("race");
    let partition = owner.partition();
    for i in 0..200 {
        assert!(
            one.put(&row(&owner, &format!("j{i:03}"), i, b"{}"), false)
                .await
                .unwrap()
        );
    }
    let claim = |store: Arc<dyn JobStore>, partition: String| async move {
        let mut got = Vec::new();
        loop {
            let batch = store.claim(&partition, 1_000, 1_000_000, 7).await.unwrap();
            if batch.is_empty() {
                return got;
            }
            got.extend(batch.into_iter().map(|r| r.key));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim(one, partition.clone())),
        tokio::spawn(claim(two, partition.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all: Vec<_> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let count = all.len();
    all.dedup();
    assert_eq!(all.len(), count, "a row was claimed twice");
    assert_eq!(count, 200, "every row was claimed");
}

/// An app that records the fires that reach it, and fails the first
/// `failures` of them.
#[derive(Default)]
pub struct Recorder {
    fires: Mutex<Vec<(String, JobData, i64)>>,
    failures: Mutex<usize>,
}

impl Recorder {
    fn failing(failures: usize) -> Arc<Self> {
        Arc::new(Self {
            failures: Mutex::new(failures),
            ..Self::default()
        })
    }

    fn fires(&self) -> Vec<(String, JobData, i64)> {
        self.fires.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.fires.lock().unwrap().len()
    }
}

#[async_trait]
impl AppJobs for Recorder {
    async fn deliver(&self, name: &str, data: &JobData) -> Result<(), Refused> {
        self.fires
            .lock()
            .unwrap()
            .push((name.to_owned(), data.clone(), now_ms()));
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(Refused("failing on purpose".into()));
        }
        Ok(())
    }
}

/// A firing loop over `store` for `owner` until the guard drops.
struct Loop(CancellationToken);

impl Drop for Loop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn start(scheduler: &Scheduler, app: Arc<Recorder>, owner: &Owner) -> Loop {
    let stop = CancellationToken::new();
    let (scheduler, owner, token) = (scheduler.clone(), owner.clone(), stop.clone());
    tokio::spawn(async move { fire_jobs(scheduler, app, &owner, token).await });
    Loop(stop)
}

fn job(name: &str) -> Job {
    Job {
        name: name.into(),
        data: JobData {
            type_url: "type.googleapis.com/google.protobuf.Value".into(),
            value: format!("\"{name}\"").into_bytes(),
        },
        ..Job::default()
    }
}

/// Jobs fire with their data, never before their due time, in due order,
/// and a one-shot job is gone once it fired.
pub async fn fires_in_order_and_never_early(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store);
    let owner = owner("order");
    let app = Arc::new(Recorder::default());
    let _loop = start(&scheduler, app.clone(), &owner);
    let registered = now_ms();
    for (name, due) in [("third", "600ms"), ("first", "200ms"), ("second", "400ms")] {
        let job = Job {
            due_time: Some(due.into()),
            ..job(name)
        };
        scheduler.schedule(&owner, job, false).await.unwrap();
    }
    eventually("three fires", async || (app.count() >= 3).then_some(())).await;
    let fires = app.fires();
    let names: Vec<_> = fires.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    for ((name, data, at), due) in fires.iter().zip([200, 400, 600]) {
        assert!(*at >= registered + due, "{name} fired early");
        assert_eq!(data, &job(name).data);
    }
    eventually("one-shot jobs are deleted", async || {
        scheduler
            .list(&owner)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

/// A job with `repeats` fires that many times, then is gone.
pub async fn repeats_then_ends(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store);
    let owner = owner("repeats");
    let app = Arc::new(Recorder::default());
    let _loop = start(&scheduler, app.clone(), &owner);
    let job = Job {
        schedule: Some("@every 50ms".into()),
        repeats: Some(4),
        ..job("r")
    };
    scheduler.schedule(&owner, job, false).await.unwrap();
    eventually("the job ends", async || {
        scheduler
            .get(&owner, "r")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(app.count(), 4);
    let times: Vec<i64> = app.fires().iter().map(|f| f.2).collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0] + 40), "{times:?}");
}

/// Two runtimes' loops on one store fire each tick once in all.
pub async fn each_tick_fires_once_across_claimers(harness: &impl Harness) {
    let Some((one, two)) = harness.pair().await else {
        return;
    };
    let owner = owner("once");
    let (first, second) = (Scheduler::new("a", one), Scheduler::new("b", two));
    let app = Arc::new(Recorder::default());
    let _a = start(&first, app.clone(), &owner);
    let _b = start(&second, app.clone(), &owner);
    let job = Job {
        schedule: Some("@every 20ms".into()),
        repeats: Some(50),
        ..job("tick")
    };
    first.schedule(&owner, job, false).await.unwrap();
    eventually("50 ticks", async || {
        second
            .get(&owner, "tick")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(app.count(), 50, "each tick fires once in all");
}

/// A failed fire is retried by its policy, then given up; `drop` gives up
/// at once.
pub async fn failure_policies_apply(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store);
    let owner = owner("policy");
    let app = Recorder::failing(usize::MAX);
    let _loop = start(&scheduler, app.clone(), &owner);
    let retried = Job {
        due_time: Some("0s".into()),
        failure_policy: Some(FailurePolicy::Constant {
            interval: Some(Duration::from_millis(50)),
            max_retries: Some(2),
        }),
        ..job("retried")
    };
    let dropped = Job {
        due_time: Some("0s".into()),
        failure_policy: Some(FailurePolicy::Drop),
        ..job("dropped")
    };
    scheduler.schedule(&owner, retried, false).await.unwrap();
    scheduler.schedule(&owner, dropped, false).await.unwrap();
    eventually("both are given up", async || {
        scheduler
            .list(&owner)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    let attempts = |name: &str| app.fires().iter().filter(|f| f.0 == name).count();
    assert_eq!(attempts("retried"), 3, "the first try and two retries");
    assert_eq!(attempts("dropped"), 1);
    let times: Vec<i64> = app
        .fires()
        .iter()
        .filter(|f| f.0 == "retried")
        .map(|f| f.2)
        .collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0] + 50), "{times:?}");
}

/// A job stops firing once its ttl ends.
pub async fn ttl_ends_a_job(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store);
    let owner = owner("ttl");
    let app = Arc::new(Recorder::default());
    let _loop = start(&scheduler, app.clone(), &owner);
    let registered = now_ms();
    let repeating = Job {
        schedule: Some("@every 100ms".into()),
        ttl: Some("450ms".into()),
        ..job("t")
    };
    scheduler.schedule(&owner, repeating, false).await.unwrap();
    eventually("the job ends", async || {
        scheduler
            .get(&owner, "t")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let fires = app.fires();
    assert!((1..=4).contains(&fires.len()), "{} fires", fires.len());
    assert!(fires.iter().all(|f| f.2 <= registered + 450 + 100));
    // A tick at the ttl's very end fires, however late it is delivered.
    let last = Job {
        schedule: Some("@every 10s".into()),
        due_time: Some("100ms".into()),
        ttl: Some("0s".into()),
        ..job("edge")
    };
    scheduler.schedule(&owner, last, false).await.unwrap();
    eventually("the job ends", async || {
        scheduler
            .get(&owner, "edge")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(app.fires().iter().filter(|f| f.0 == "edge").count(), 1);
}

/// A job claimed by a runtime that died fires once its claim runs out.
pub async fn a_dead_claimers_job_fires_again(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store.clone());
    let owner = owner("lease");
    let job = Job {
        due_time: Some("0s".into()),
        ..job("orphan")
    };
    scheduler.schedule(&owner, job, false).await.unwrap();
    // Claimed by a runtime that then dies: its lease ends in 300 ms.
    let now = now_ms();
    let claimed = store
        .claim(&owner.partition(), now, now + 300, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let app = Arc::new(Recorder::default());
    let _loop = start(&scheduler, app.clone(), &owner);
    eventually("the orphan fires", async || {
        (app.count() == 1).then_some(())
    })
    .await;
    assert!(
        app.fires()[0].2 >= now + 300,
        "not before the lease ran out"
    );
}

/// After downtime, a repeating job's missed ticks fire once, and that fire
/// counts as one of its repeats.
pub async fn missed_ticks_fire_once(harness: &impl Harness) {
    let Some(store) = harness.store().await else {
        return;
    };
    let scheduler = Scheduler::new("conformance", store.clone());
    let owner = owner("missed");
    // Registered 100 s ago, every 10 s, and never fired since.
    let long_ago = now_ms() - 100_000;
    let job = Job {
        schedule: Some("@every 10s".into()),
        repeats: Some(5),
        ..job("m")
    };
    let record = Record::new(job, long_ago).unwrap();
    let row = Row {
        key: owner.key("m"),
        partition: owner.partition(),
        due: record.first_due().unwrap(),
        version: fresh_version(),
        body: record.encode(),
    };
    assert!(store.put(&row, false).await.unwrap());
    let app = Arc::new(Recorder::default());
    let _loop = start(&scheduler, app.clone(), &owner);
    // One fire for the nine missed ticks; then the row waits for the next
    // tick, in the future.
    let settled = eventually("the missed ticks fire", async || {
        let row = store.get(&owner.key("m")).await.unwrap()?;
        let record = Record::decode(&row.body).unwrap();
        (record.fired >= 1 && row.due < now_ms() + 11_000).then_some((row, record))
    })
    .await;
    let (row, record) = settled;
    assert_eq!(app.count(), 1, "missed ticks fire once, not as a flood");
    assert_eq!(record.fired, 1, "and count as one repeat");
    assert!(row.due > now_ms(), "the next tick is in the future");
}

/// Expands the suite into one test per case, for a harness built by `$harness`.
#[macro_export]
macro_rules! scheduler_conformance {
    ($harness:expr) => {
        $crate::scheduler_conformance!(@cases $harness;
            put_get_delete,
            partitions_are_apart,
            claims_are_ordered_and_leased,
            settlements_are_fenced,
            extended_claims_hold,
            concurrent_claims_are_exclusive,
            fires_in_order_and_never_early,
            repeats_then_ends,
            each_tick_fires_once_across_claimers,
            failure_policies_apply,
            ttl_ends_a_job,
            a_dead_claimers_job_fires_again,
            missed_ticks_fire_once,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case(&$harness).await;
            }
        )*
    };
}
