//! Integration tests over the real `strata` binary (and real peers where named).

mod cli;
mod cluster;
mod compose;
mod crash;
mod differential;
mod grafana;
mod ha;
mod hostile;
mod hostile_query;
mod prometheus_peer;
mod promql_fuzz;
mod querier;
mod scrape;
mod tenants;
mod web_security;
