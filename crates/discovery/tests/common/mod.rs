//! Helpers shared by the discovery tests.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strata_discovery::{Discovery, TargetGroup};

/// The first list of groups `done` accepts, within `within`.
pub(crate) async fn wait_for(
    discovery: &Discovery,
    within: Duration,
    done: impl Fn(&[TargetGroup]) -> bool,
) -> Vec<TargetGroup> {
    let mut rx = discovery.subscribe();
    let wait = async {
        loop {
            {
                let groups = rx.borrow_and_update();
                if done(&groups) {
                    return groups.clone();
                }
            }
            rx.changed().await.unwrap();
        }
    };
    match tokio::time::timeout(within, wait).await {
        Ok(groups) => groups,
        Err(_) => panic!("timed out; last groups: {:#?}", *rx.borrow()),
    }
}
