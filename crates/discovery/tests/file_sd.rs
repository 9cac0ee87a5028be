//! file_sd: JSON and YAML files, globs, relative paths, and changes picked up by polling.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::wait_for;
use strata_discovery::{Discovery, FileSdConfig, LabelSet, Provider, TargetGroup};

/// Starts file_sd with `files` (relative to `dir`).
fn discover(dir: &Path, files: &[&str]) -> Discovery {
    let config: FileSdConfig = serde_yaml::from_str(&format!("files: {files:?}")).unwrap();
    Discovery::spawn(Provider::File(config), dir)
}

/// The group file_sd makes of entry `index` of `path`.
fn group(path: &Path, index: usize, targets: &[&str], labels: &[(&str, &str)]) -> TargetGroup {
    let path = path.to_string_lossy().into_owned();
    let mut labels: LabelSet = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.insert("__meta_filepath".into(), path.clone());
    TargetGroup {
        source: format!("{path}:{index}"),
        targets: targets
            .iter()
            .map(|t| LabelSet::from([("__address__".to_string(), t.to_string())]))
            .collect(),
        labels,
    }
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
}

#[tokio::test]
async fn reads_json_and_yaml_files_matched_by_globs_relative_to_the_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    let json = dir.path().join("sd/a.json");
    let yaml = dir.path().join("sd/b.yml");
    write(&json, r#"[{"targets": ["a:1", "a:2"], "labels": {"env": "prod"}}, {"targets": ["a:3"]}]"#);
    write(&yaml, "- targets: ['b:1']\n  labels:\n    job: b\n");
    write(&dir.path().join("sd/ignored.txt"), "not matched");
    let discovery = discover(dir.path(), &["sd/*.json", "sd/*.yml"]);

    let groups = wait_for(&discovery, Duration::from_secs(5), |g| g.len() == 3).await;
    assert_eq!(
        groups,
        vec![
            group(&json, 0, &["a:1", "a:2"], &[("env", "prod")]),
            group(&json, 1, &["a:3"], &[]),
            group(&yaml, 0, &["b:1"], &[("job", "b")]),
        ]
    );

    let added = dir.path().join("sd/c.json");
    write(&added, r#"[{"targets": ["c:1"]}]"#);
    let groups = wait_for(&discovery, Duration::from_secs(3), |g| g.len() == 4).await;
    assert_eq!(groups[3], group(&added, 0, &["c:1"], &[]));
}

#[tokio::test]
async fn picks_up_changed_broken_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.json");
    write(&a, "- targets: ['a:1']\n");
    write(&b, r#"[{"targets": ["b:1"]}]"#);
    let discovery = discover(dir.path(), &["*.yaml", "b.json"]);
    wait_for(&discovery, Duration::from_secs(5), |g| g.len() == 2).await;

    // A change shows within about a second.
    let changed = Instant::now();
    write(&a, "- targets: ['a:1', 'a:2']\n");
    let groups = wait_for(&discovery, Duration::from_secs(3), |g| g[0].targets.len() == 2).await;
    assert!(changed.elapsed() < Duration::from_millis(2500), "took {:?}", changed.elapsed());
    assert_eq!(groups[0], group(&a, 0, &["a:1", "a:2"], &[]));

    // A file that does not parse keeps its previous groups (seen once b's change shows).
    write(&a, "- targets: [unclosed\n");
    write(&b, r#"[{"targets": ["b:2"]}]"#);
    let groups =
        wait_for(&discovery, Duration::from_secs(3), |g| g[1].targets[0]["__address__"] == "b:2").await;
    assert_eq!(groups, vec![group(&a, 0, &["a:1", "a:2"], &[]), group(&b, 0, &["b:2"], &[])]);

    // A removed file's groups go.
    std::fs::remove_file(&b).unwrap();
    let groups = wait_for(&discovery, Duration::from_secs(3), |g| g.len() == 1).await;
    assert_eq!(groups, vec![group(&a, 0, &["a:1", "a:2"], &[])]);
}

#[tokio::test]
async fn static_configs_give_one_group_per_entry() {
    let configs = serde_yaml::from_str("[{targets: ['x:1'], labels: {a: b}}, {targets: ['y:1']}]").unwrap();
    let discovery = Discovery::spawn(Provider::Static(configs), Path::new("/"));
    let groups = wait_for(&discovery, Duration::from_secs(1), |g| !g.is_empty()).await;
    assert_eq!(groups.iter().map(|g| g.source.as_str()).collect::<Vec<_>>(), ["0", "1"]);
    assert_eq!(groups[0].labels["a"], "b");
}
