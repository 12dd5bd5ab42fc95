//! `scheduler.in-memory` (Mecha's own): the scheduler store in the
//! process, for tests. Not durable: its jobs go with the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mecha_core::ComponentFactory;
use mecha_scheduler::{JobStore, Row, StoreError};

pub const SCHEDULER_IN_MEMORY: ComponentFactory<dyn JobStore, ()> = ComponentFactory::new(
    "scheduler.in-memory",
    |_, _, _| (),
    |()| Box::pin(async { Ok(MemoryJobStore::new() as Arc<dyn JobStore>) }),
);

#[derive(Default)]
struct Rows {
    by_key: HashMap<String, Row>,
    /// Per partition, `(due, key)`: the time order claims read.
    due: HashMap<String, BTreeSet<(i64, String)>>,
    /// Per partition, its keys in order.
    keys: HashMap<String, BTreeMap<String, ()>>,
}

impl Rows {
    fn insert(&mut self, row: Row) {
        self.remove(&row.key);
        self.due
            .entry(row.partition.clone())
            .or_default()
            .insert((row.due, row.key.clone()));
        self.keys
            .entry(row.partition.clone())
            .or_default()
            .insert(row.key.clone(), ());
        self.by_key.insert(row.key.clone(), row);
    }

    fn remove(&mut self, key: &str) -> Option<Row> {
        let row = self.by_key.remove(key)?;
        if let Some(due) = self.due.get_mut(&row.partition) {
            due.remove(&(row.due, row.key.clone()));
        }
        if let Some(keys) = self.keys.get_mut(&row.partition) {
            keys.remove(&row.key);
        }
        Some(row)
    }

    fn set_due(&mut self, key: &str, due: i64, version: Option<i64>, body: Option<&[u8]>) {
        if let Some(mut row) = self.remove(key) {
            row.due = due;
            if let Some(version) = version {
                row.version = version;
            }
            if let Some(body) = body {
                row.body = body.to_vec();
            }
            self.insert(row);
        }
    }
}

/// The in-memory scheduler store.
#[derive(Default)]
pub struct MemoryJobStore {
    rows: Mutex<Rows>,
}

impl MemoryJobStore {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().expect("the in-memory scheduler store")
    }
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn put(&self, row: &Row, overwrite: bool) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        if !overwrite && rows.by_key.contains_key(&row.key) {
            return Ok(false);
        }
        rows.insert(row.clone());
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Row>, StoreError> {
        Ok(self.rows().by_key.get(key).cloned())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.rows().remove(key).is_some())
    }

    async fn list(&self, partition: &str) -> Result<Vec<Row>, StoreError> {
        let rows = self.rows();
        let Some(keys) = rows.keys.get(partition) else {
            return Ok(Vec::new());
        };
        Ok(keys.keys().map(|key| rows.by_key[key].clone()).collect())
    }

    async fn delete_prefix(&self, partition: &str, key_prefix: &str) -> Result<u64, StoreError> {
        let mut rows = self.rows();
        let doomed: Vec<String> = rows
            .keys
            .get(partition)
            .map(|keys| {
                keys.range(key_prefix.to_owned()..)
                    .map(|(key, ())| key)
                    .take_while(|key| key.starts_with(key_prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in &doomed {
            rows.remove(key);
        }
        Ok(doomed.len() as u64)
    }

    async fn claim(
        &self,
        partition: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let mut rows = self.rows();
        let due: Vec<String> = rows
            .due
            .get(partition)
            .map(|due| {
                due.iter()
                    .take_while(|(at, _)| *at <= now)
                    .take(limit)
                    .map(|(_, key)| key.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut claimed = Vec::with_capacity(due.len());
        for key in due {
            let version = rows.by_key[&key].version.wrapping_add(1);
            rows.set_due(&key, lease_until, Some(version), None);
            claimed.push(rows.by_key[&key].clone());
        }
        Ok(claimed)
    }

    async fn extend(&self, claims: &[(String, i64)], until: i64) -> Result<(), StoreError> {
        let mut rows = self.rows();
        for (key, version) in claims {
            if rows
                .by_key
                .get(key)
                .is_some_and(|row| row.version == *version)
            {
                rows.set_due(key, until, None, None);
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        key: &str,
        version: i64,
        next: Option<(i64, &[u8])>,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        if rows
            .by_key
            .get(key)
            .is_none_or(|row| row.version != version)
        {
            return Ok(false);
        }
        match next {
            Some((due, body)) => {
                let version = version.wrapping_add(1);
                rows.set_due(key, due, Some(version), Some(body));
            }
            None => {
                rows.remove(key);
            }
        }
        Ok(true)
    }

    async fn next_due(&self, partition: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .rows()
            .due
            .get(partition)
            .and_then(|due| due.first())
            .map(|(at, _)| *at))
    }

    fn durable(&self) -> bool {
        false
    }
}
