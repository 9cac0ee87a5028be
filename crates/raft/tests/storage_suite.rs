//! openraft's own storage test suite (`openraft::testing::log::Suite`) against our log
//! store and state machine, on the in-memory engine and on RocksDB.

use std::io;
use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use strata_raft::{Applier, LogStore, Request, Response, StateMachine, TypeConfig};
use strata_tsdb::{KvEngine, MemEngine};

/// An applier that remembers what it applied (its whole state is that list).
#[derive(Debug, Default)]
struct Recorder(Vec<(u64, Vec<u8>)>);

impl Applier for Recorder {
    fn apply(&mut self, index: u64, request: &Request) -> Response {
        self.0.push((index, request.0.clone()));
        Response { accepted: 1, rejected: 0 }
    }

    fn snapshot(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(&self.0, bincode::config::standard()).unwrap_or_default()
    }

    fn restore(&mut self, data: &[u8]) -> io::Result<()> {
        self.0 = bincode::serde::decode_from_slice(data, bincode::config::standard())
            .map_err(|e| io::Error::other(e.to_string()))?
            .0;
        Ok(())
    }
}

/// Builds a fresh store per test case on a fresh engine.
struct Builder<F: Fn() -> (Arc<dyn KvEngine>, Option<tempfile::TempDir>)>(F);

impl<F> StoreBuilder<TypeConfig, LogStore, StateMachine<Recorder>, Option<tempfile::TempDir>> for Builder<F>
where
    F: Fn() -> (Arc<dyn KvEngine>, Option<tempfile::TempDir>) + Send + Sync,
{
    async fn build(
        &self,
    ) -> Result<(Option<tempfile::TempDir>, LogStore, StateMachine<Recorder>), StorageError<TypeConfig>> {
        let (kv, dir) = (self.0)();
        Ok((dir, LogStore::new(kv, 3), StateMachine::new(Recorder::default())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_the_memory_engine() {
    Suite::test_all(Builder(|| (Arc::new(MemEngine::new()) as Arc<dyn KvEngine>, None)))
        .await
        .expect("suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_rocksdb() {
    Suite::test_all(Builder(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv =
            strata_engine_rocks::RocksEngine::open(dir.path(), &strata_engine_rocks::RocksConfig::default())
                .expect("rocksdb");
        (Arc::new(kv) as Arc<dyn KvEngine>, Some(dir))
    }))
    .await
    .expect("suite");
}
