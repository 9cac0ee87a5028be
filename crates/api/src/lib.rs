//! # strata-api — the ports of a node
//!
//! What the HTTP API (`strata-server`), the scrape loops (`strata-scrape`) and the cluster
//! roles (`strata-storage`, `strata-ingestor`, `strata-querier`) agree on, so that none of
//! them depends on another for it:
//! * the write port: [`Writer`] stores a [`strata_tsdb::SeriesBatch`] durably (standalone's
//!   writer through its local shard groups; an ingestor's through the shard leaders),
//!   failing with a [`WriteError`] whose kind maps to an HTTP status;
//! * the read port: [`QueryBackend`] hands each query a [`ReadView`] (the evaluator's
//!   [`strata_promql::Source`] plus the series and label lookups) bounded by its
//!   [`ReadOptions`];
//! * the HA tracker's election ([`HaClaim`] decided against the stored [`HaElected`]),
//!   which a [`Writer`] makes where every node taking writes agrees on it;
//! * the [`MetadataStore`] of metric types, help and units that remote write and scrapes
//!   fill and `/api/v1/metadata` serves.

mod ha;
mod metadata;
mod read;
mod write;

pub use ha::{HA_FORGET_AFTER_MS, HaClaim, HaElected};
pub use metadata::{MAX_METADATA_BYTES, MetadataStore};
pub use read::{CancelOnDrop, QueryBackend, ReadOptions, ReadView, Reader};
pub use write::{CommitFuture, ElectFuture, WriteError, Writer};
