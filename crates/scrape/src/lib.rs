//! # strata-scrape — ingestors scrape, as Prometheus does
//!
//! A node given a Prometheus configuration file (`--scrape-config`) scrapes its targets
//! itself and writes the samples through the same [`strata_api::Writer`] remote write
//! uses: a standalone node into its database, an ingestor to the shards' leaders.
//!
//! * [`config`]: the file's `global` and `scrape_configs` with Prometheus's keys and
//!   defaults; unknown keys are errors with their line, unused sections are ignored.
//! * [`relabel`]: every relabel action, validated as Prometheus validates them.
//! * `target`: discovered groups → targets (labels populated, relabeled, URL, hash).
//! * `fetch`: one HTTP scrape (Accept negotiation for OpenMetrics and text 0.0.4, gzip,
//!   auth, timeout, body limit); `append`: the body → samples, with target labels,
//!   `honor_labels`, metric relabeling, limits, the report series (`up`, ...) and
//!   staleness markers, over a cache keyed by the raw series text; `scrape_loop`: one
//!   task per target at a hash-derived offset within its interval.
//! * [`ring`]: replicas share targets by consistent hashing over the live ingestors.
//! * `manager`: one pool per job following its discoveries and the ring; reloads keep
//!   unchanged jobs running. `api`: `/api/v1/targets`, `/api/v1/targets/metadata`.

mod api;
mod append;
pub mod config;
mod error;
mod fetch;
mod manager;
pub mod relabel;
pub mod ring;
mod scrape_loop;
mod target;
mod tls;

pub use api::routes;
pub use append::FamilyMetadata;
pub use error::ConfigError;
pub use manager::{ManagerConfig, ScrapeManager};
pub use scrape_loop::Health;
pub use target::{Outcome, Target, targets};
