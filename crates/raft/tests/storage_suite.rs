//! openraft's own storage test suite (`openraft::testing::log::Suite`) against our log
//! store and state machine, on the in-memory engine and on RocksDB.

use std::io;
use std::sync::{Arc, Mutex};

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use strata_raft::{
    Applier, Exporter, LogStats, LogStore, LogWriter, Reopener, Request, Response, Staged, StagedData,
    Stager, StateMachine, TypeConfig, WriteHealth,
};
use strata_tsdb::{KvEngine, MemEngine};

/// A checkpoint: its Raft state and data.
type Checkpoint = (Vec<u8>, Vec<u8>);

/// An applier that remembers what it applied (its whole state is that list); its
/// checkpoint is kept in memory beside it.
#[derive(Debug, Default)]
struct Recorder {
    applied: Vec<(u64, Vec<u8>)>,
    checkpoint: Arc<Mutex<Option<Checkpoint>>>,
}

fn codec_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Applier for Recorder {
    fn apply(&mut self, index: u64, request: &Request) -> io::Result<Response> {
        self.applied.push((index, request.0.clone()));
        Ok(Response { accepted: 1, ..Response::default() })
    }

    fn checkpoint(&mut self, raft_state: Vec<u8>) -> io::Result<()> {
        let data =
            bincode::serde::encode_to_vec(&self.applied, bincode::config::standard()).map_err(codec_err)?;
        *self.checkpoint.lock().map_err(codec_err)? = Some((raft_state, data));
        Ok(())
    }

    fn checkpointed(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.checkpoint.lock().map_err(codec_err)?.as_ref().map(|c| c.0.clone()))
    }

    /// One frame: the checkpoint, encoded.
    fn exporter(&self) -> Exporter {
        let c = self.checkpoint.clone();
        Arc::new(move |emit| {
            let pair =
                c.lock().map_err(codec_err)?.clone().ok_or_else(|| io::Error::other("no checkpoint"))?;
            emit(bincode::serde::encode_to_vec(&pair, bincode::config::standard()).map_err(codec_err)?);
            Ok(())
        })
    }

    fn stager(&self) -> Stager {
        Arc::new(|frames| {
            let frame = frames.next().ok_or_else(|| io::Error::other("no frame"))?;
            let (raft_state, data): (Vec<u8>, Vec<u8>) =
                bincode::serde::decode_from_slice(&frame, bincode::config::standard()).map_err(codec_err)?.0;
            Ok(Staged { raft_state, data: StagedData::Bytes(Arc::new(data)) })
        })
    }

    fn import(&mut self, snapshot: Staged) -> io::Result<()> {
        let StagedData::Bytes(data) = snapshot.data else { return Err(io::Error::other("staged in files")) };
        self.applied =
            bincode::serde::decode_from_slice(&data, bincode::config::standard()).map_err(codec_err)?.0;
        *self.checkpoint.lock().map_err(codec_err)? = Some((snapshot.raft_state, data.to_vec()));
        Ok(())
    }

    fn reopener(&self) -> Reopener {
        // the suite never restarts a group
        Arc::new(|| Err(io::Error::other("a recorder is not restarted")))
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
        let health = Arc::new(WriteHealth::new(None, 0));
        let writer = LogWriter::start(kv.clone(), Arc::new(LogStats::default()), health).expect("log writer");
        let sm = StateMachine::new(Recorder::default()).expect("state machine");
        Ok((dir, LogStore::new(kv, writer, 3), sm))
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
