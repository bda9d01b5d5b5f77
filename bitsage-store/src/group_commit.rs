//! Group commit: concurrent writers of small records hand them to one flusher task, which
//! commits whatever has queued up as **one** transaction and answers each writer only after
//! that commit (so an acknowledged record is durable).
//!
//! There is no timer: the flusher takes the first waiting record, then everything else that is
//! already queued (up to `max_batch`), and commits. Under light load a batch is one record and
//! nothing waits longer than its own commit; under heavy load the records that arrive while a
//! commit is in progress share the next one, so the number of commits (and fsyncs) per second
//! stays bounded while throughput grows with the batch size.
//!
//! `in_flight` batches may be committing at once (1 for SQLite's single writer; more for
//! PostgreSQL's pool). The queue is bounded (`capacity`): a writer beyond it waits for room,
//! which is how overload reaches the callers (and, through their latency, the coordinator's
//! heartbeat interval) instead of memory.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bitsage_core::{Error, Result};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// The flush function: commits a batch and returns one result per record, in order.
type Flush<T, R> =
    Arc<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = Vec<Result<R>>> + Send>> + Send + Sync>;

type Job<T, R> = (T, oneshot::Sender<Result<R>>);

/// A group-commit queue in front of a store's write path (see the module docs).
pub(crate) struct GroupCommit<T, R> {
    tx: mpsc::Sender<Job<T, R>>,
    backend: &'static str,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            backend: self.backend,
        }
    }
}

impl<T, R> fmt::Debug for GroupCommit<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("backend", &self.backend)
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish()
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the flusher on the current tokio runtime. It stops when every handle is dropped
    /// (after answering what was queued).
    pub(crate) fn spawn<F, Fut>(
        backend: &'static str,
        max_batch: usize,
        capacity: usize,
        in_flight: usize,
        flush: F,
    ) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<R>>> + Send + 'static,
    {
        let flush: Flush<T, R> = Arc::new(move |batch| Box::pin(flush(batch)));
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(run(rx, flush, max_batch.max(1), in_flight.max(1)));
        Self { tx, backend }
    }

    /// Queues `item` and waits for the commit of the batch it joined.
    pub(crate) async fn submit(&self, item: T) -> Result<R> {
        let (answer, answered) = oneshot::channel();
        let stopped = || Error::backend(self.backend, "the store's write queue has stopped");
        self.tx.send((item, answer)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn run<T: Send + 'static, R: Send + 'static>(
    mut rx: mpsc::Receiver<Job<T, R>>,
    flush: Flush<T, R>,
    max_batch: usize,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    loop {
        // Wait for a free commit slot first: records keep queueing meanwhile, so the next
        // batch takes all of them.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut jobs = Vec::with_capacity(max_batch.min(rx.len() + 1));
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (items, answers): (Vec<T>, Vec<_>) = jobs.into_iter().unzip();
        let flush = Arc::clone(&flush);
        tokio::spawn(async move {
            let results = flush(items).await;
            debug_assert_eq!(results.len(), answers.len());
            for (answer, result) in answers.into_iter().zip(results) {
                // A writer that gave up (its request was cancelled) no longer listens: the
                // record is committed all the same.
                let _ = answer.send(result);
            }
            drop(slot);
        });
    }
}

/// A copy of a batch-wide error for one of its records (errors are not `Clone`): an
/// unavailable store stays `Unavailable`, anything else becomes a backend error with the same
/// text.
pub(crate) fn copy_error(backend: &'static str, e: &Error) -> Error {
    match e {
        Error::Unavailable {
            source_name,
            reason,
        } => Error::Unavailable {
            source_name: source_name.clone(),
            reason: reason.clone(),
        },
        other => Error::backend(backend, other.to_string()),
    }
}

/// Splits a batch into rounds in which each key appears at most once, keeping each key's
/// records in arrival order across rounds (a node's second heartbeat of a batch is claimed
/// after its first). Returns indices into `keys`.
pub(crate) fn rounds<K: Eq + std::hash::Hash>(keys: &[K]) -> Vec<Vec<usize>> {
    let mut seen: std::collections::HashMap<&K, usize> = std::collections::HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let round = seen.entry(k).and_modify(|r| *r += 1).or_insert(0);
        if out.len() <= *round {
            out.push(Vec::new());
        }
        out[*round].push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_keys_unique_and_in_order() {
        let keys = ["a", "b", "a", "c", "a", "b"];
        assert_eq!(rounds(&keys), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert!(rounds::<&str>(&[]).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits_and_each_gets_its_answer() {
        let commits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = Arc::clone(&commits);
        let q: GroupCommit<u32, u32> = GroupCommit::spawn("test", 64, 1024, 1, move |batch| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                batch
                    .into_iter()
                    .map(|x| {
                        if x % 7 == 0 {
                            Err(Error::Conflict(format!("{x}")))
                        } else {
                            Ok(x * 2)
                        }
                    })
                    .collect()
            }
        });
        let mut set = tokio::task::JoinSet::new();
        for i in 1..=500u32 {
            let q = q.clone();
            set.spawn(async move { (i, q.submit(i).await) });
        }
        while let Some(r) = set.join_next().await {
            let (i, r) = r.unwrap();
            if i % 7 == 0 {
                assert!(matches!(r, Err(Error::Conflict(_))));
            } else {
                assert_eq!(r.unwrap(), i * 2);
            }
        }
        let n = commits.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < 100, "500 concurrent writers took {n} commits");
    }
}
