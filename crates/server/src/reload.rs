//! Configuration read from files and read again when one of them changes: checked on use,
//! at most once a second (a `stat` per file), as Prometheus re-reads its web configuration
//! and Mimir its runtime configuration. What a file that turns bad while the node runs
//! does depends on the file: [`OnError::Refuse`] (the web configuration: nothing is served
//! until it is fixed, Prometheus's behaviour) or [`OnError::KeepLast`] (limits: the last
//! good ones stay in force, Mimir's).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

/// How often, at most, the files are checked for changes.
const RECHECK: Duration = Duration::from_secs(1);

/// What a bad file does once the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// The error is what [`Reloading::current`] answers until the files are fixed.
    Refuse,
    /// The last good configuration stays in force (the error is logged).
    KeepLast,
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A loader: the configuration and the files it was read from (every one watched).
type Loader<T> = Box<dyn Fn() -> (Vec<PathBuf>, Result<T, String>) + Send + Sync>;

struct State<T> {
    at: Instant,
    stamps: Vec<(PathBuf, Stamp)>,
    current: Result<Arc<T>, String>,
}

/// A configuration of type `T` kept in step with its files.
pub(crate) struct Reloading<T> {
    what: &'static str,
    load: Loader<T>,
    on_error: OnError,
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading").field("what", &self.what).finish()
    }
}

impl<T> Reloading<T> {
    /// Loads `what` with `load`; its first error fails here (a bad file stops the start).
    pub(crate) fn new(
        what: &'static str,
        on_error: OnError,
        load: impl Fn() -> (Vec<PathBuf>, Result<T, String>) + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let (files, current) = load();
        let current = Arc::new(current?);
        let stamps = files.into_iter().map(|f| (f.clone(), stamp(&f))).collect();
        let state = Mutex::new(State { at: Instant::now(), stamps, current: Ok(current) });
        Ok(Reloading { what, load: Box::new(load), on_error, state })
    }

    /// The configuration in force: read again when a file changed since it was read.
    pub(crate) fn current(&self) -> Result<Arc<T>, String> {
        let mut st = self.state.lock();
        if st.at.elapsed() >= RECHECK {
            st.at = Instant::now();
            if st.stamps.iter().any(|(p, s)| stamp(p) != *s) {
                let (files, loaded) = (self.load)();
                st.stamps = files.into_iter().map(|f| (f.clone(), stamp(&f))).collect();
                match loaded {
                    Ok(c) => {
                        tracing::info!(what = self.what, "configuration reloaded");
                        st.current = Ok(Arc::new(c));
                    }
                    Err(e) if self.on_error == OnError::KeepLast && st.current.is_ok() => {
                        tracing::error!(what = self.what, error = %e, "configuration not reloaded: keeping the one in force");
                    }
                    Err(e) => {
                        tracing::error!(what = self.what, error = %e, "configuration not usable: refusing requests until it is fixed");
                        st.current = Err(e);
                    }
                }
            }
        }
        st.current.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_again_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c");
        std::fs::write(&f, "1").unwrap();
        let load = |f: PathBuf| {
            move || {
                let r = std::fs::read_to_string(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.trim().parse::<u32>().map_err(|e| e.to_string()));
                (vec![f.clone()], r)
            }
        };
        let keep = Reloading::new("t", OnError::KeepLast, load(f.clone())).unwrap();
        let refuse = Reloading::new("t", OnError::Refuse, load(f.clone())).unwrap();
        assert_eq!(*keep.current().unwrap(), 1);
        std::fs::write(&f, "22").unwrap();
        std::thread::sleep(RECHECK);
        assert_eq!(*keep.current().unwrap(), 22);
        assert_eq!(*refuse.current().unwrap(), 22);
        std::fs::write(&f, "bad!").unwrap();
        std::thread::sleep(RECHECK);
        assert_eq!(*keep.current().unwrap(), 22, "the last good one");
        assert!(refuse.current().is_err());
        std::fs::write(&f, "x").unwrap();
        assert!(Reloading::new("t", OnError::Refuse, load(f)).is_err(), "a bad file at start");
    }
}
