//! Integration tests over the real `strata` binary (and real peers where named).

mod cli;
mod crash;
mod differential;
mod prometheus_peer;
