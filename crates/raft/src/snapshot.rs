//! Snapshots on the wire, streamed with bounded memory on both sides.
//!
//! A snapshot is a stream of [`Frame`]s: a header with the sender's vote, the applier's
//! data frames (about a MiB each) as its [`Exporter`] produces them on a blocking thread,
//! at most [`AHEAD`] frames ahead of the network, and an end frame with the count, so
//! that a stream cut short is never taken for a whole one. The receiver hands data frames
//! to the group's [`Stager`] on a blocking thread (again at most [`AHEAD`] queued) and
//! gives openraft the staged result. A node-wide [`Throttle`] paces the bytes a node
//! sends; [`SnapshotStats`] counts them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use openraft::type_config::alias::VoteOf;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::TypeConfig;
use crate::codec::encode;
use crate::state_machine::{Exporter, Staged, Stager};

/// Frames produced or received ahead of the side consuming them.
pub(crate) const AHEAD: usize = 2;

/// One frame of a snapshot stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// First: the sender's vote (it must be an elected leader's).
    Header {
        /// The vote.
        vote: VoteOf<TypeConfig>,
    },
    /// Some of the applier's data.
    Data(Vec<u8>),
    /// Last: how many data frames came before.
    End {
        /// The number of data frames.
        frames: u64,
    },
}

/// A snapshot's encoded frames, as a transport carries them; an `Err` ends the stream (the
/// sender failed, or the link did).
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, String>> + Send>>;

/// Counters of the snapshots a node sent and received.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    /// Snapshots sent to completion (the receiver answered).
    pub sent: AtomicU64,
    /// Bytes of snapshot frames sent.
    pub sent_bytes: AtomicU64,
    /// Snapshots received and staged to completion.
    pub received: AtomicU64,
    /// Bytes of snapshot frames received.
    pub received_bytes: AtomicU64,
    /// Time sends waited for the throttle, in microseconds.
    pub throttled_micros: AtomicU64,
    /// Snapshot streams under way (sent or received).
    pub in_flight: AtomicU64,
}

/// Counts a stream under way while alive.
pub(crate) struct InFlight(Arc<SnapshotStats>);

impl InFlight {
    pub(crate) fn new(stats: &Arc<SnapshotStats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A node-wide limit on snapshot bytes sent per second, shared by every stream: a frame
/// leaves when the frames before it have had their time at the rate (no burst beyond one
/// frame). 0 = no limit.
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_sec: u64,
    /// When the bytes taken so far are paid for.
    paid_until: Mutex<Option<Instant>>,
}

impl Throttle {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Throttle { bytes_per_sec, paid_until: Mutex::new(None) }
    }

    /// How long a frame of `n` bytes must wait before it leaves, reserving its share.
    fn reserve(&self, n: usize, now: Instant) -> Duration {
        if self.bytes_per_sec == 0 {
            return Duration::ZERO;
        }
        let mut paid = self.paid_until.lock();
        let start = paid.map_or(now, |p| p.max(now));
        *paid = Some(start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64));
        start - now
    }
}

/// The frames of a snapshot of this node's checkpoint sent with `vote`: header, what
/// `export` emits (run on a blocking thread), end; each data frame paced by `throttle`.
pub(crate) fn outgoing(
    vote: VoteOf<TypeConfig>,
    export: Exporter,
    throttle: Arc<Throttle>,
    stats: Arc<SnapshotStats>,
) -> FrameStream {
    let header = encode(&Frame::Header { vote }).map_err(|e| e.to_string());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut frames = 0u64;
        let exported = export(&mut |data| {
            frames += 1;
            let frame = encode(&Frame::Data(data)).map_err(|e| e.to_string());
            tx.blocking_send(frame).is_ok()
        });
        let last = match exported {
            Ok(()) => encode(&Frame::End { frames }).map_err(|e| e.to_string()),
            Err(e) => Err(format!("exporting the snapshot failed: {e}")),
        };
        let _ = tx.blocking_send(last);
    });
    let data = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let paced = futures_util::stream::once(std::future::ready(header)).chain(data).then(move |frame| {
        let (throttle, stats) = (throttle.clone(), stats.clone());
        async move {
            if let Ok(f) = &frame {
                let wait = throttle.reserve(f.len(), Instant::now());
                if !wait.is_zero() {
                    stats.throttled_micros.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                stats.sent_bytes.fetch_add(f.len() as u64, Ordering::Relaxed);
            }
            frame
        }
    });
    Box::pin(paced)
}

/// Stages the data frames that follow a header on `frames` with `stager` (on a blocking
/// thread); checks the end frame. Returns the staged checkpoint.
pub(crate) async fn stage(
    frames: &mut FrameStream,
    stager: Stager,
    stats: &SnapshotStats,
) -> Result<Staged, String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(AHEAD);
    let staging = tokio::task::spawn_blocking(move || stager(&mut std::iter::from_fn(|| rx.blocking_recv())));
    let mut count = 0u64;
    let mut end = None;
    while let Some(f) = frames.next().await {
        let f = f?;
        stats.received_bytes.fetch_add(f.len() as u64, Ordering::Relaxed);
        match crate::codec::decode::<Frame>(&f).map_err(|e| format!("bad snapshot frame: {e}"))? {
            Frame::Data(d) => {
                count += 1;
                if tx.send(d).await.is_err() {
                    break; // the stager stopped: its error follows
                }
            }
            Frame::End { frames } => {
                end = Some(frames);
                break;
            }
            Frame::Header { .. } => return Err("a snapshot stream has one header".into()),
        }
    }
    drop(tx);
    let staged = staging
        .await
        .map_err(|e| format!("staging the snapshot failed: {e}"))?
        .map_err(|e| format!("staging the snapshot failed: {e}"))?;
    match end {
        Some(n) if n == count => Ok(staged),
        Some(n) => Err(format!("the snapshot stream ended after {count} of its {n} data frames")),
        None => Err(format!("the snapshot stream ended after {count} data frames, without its end")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_paces_frames_at_the_rate() {
        let t = Throttle::new(1000);
        let now = Instant::now();
        assert_eq!(t.reserve(500, now), Duration::ZERO);
        assert_eq!(t.reserve(500, now), Duration::from_millis(500));
        assert_eq!(t.reserve(1000, now), Duration::from_secs(1));
        // time passed without frames: no credit beyond now
        let later = now + Duration::from_secs(10);
        assert_eq!(t.reserve(100, later), Duration::ZERO);
        assert_eq!(t.reserve(100, later), Duration::from_millis(100));
        assert_eq!(Throttle::new(0).reserve(1 << 30, now), Duration::ZERO);
    }
}
