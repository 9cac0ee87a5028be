//! The dashboard query workload: `../shared/workloads/dashboards/*.queries.txt` with
//! template variables substituted the way Grafana does.

use std::path::Path;

/// Grafana's substitution for our node_exporter-shaped fleet: single values as written,
/// multi-value and include-All variables as regex alternations of regex-escaped values
/// (`(a|b)`), `$__rate_interval` as the Go duration Grafana writes (e.g. `1m0s`).
pub fn substitute(q: &str, rate_interval: &str) -> String {
    let multi = |vals: &[&str]| {
        let esc: Vec<String> = vals
            .iter()
            .map(|v| {
                v.chars()
                    .map(|c| if "\\^$.|?*+()[]{}".contains(c) { format!("\\\\{c}") } else { c.to_string() })
                    .collect()
            })
            .collect();
        format!("({})", esc.join("|"))
    };
    let vars: Vec<(&str, String)> = vec![
        ("$__rate_interval", rate_interval.to_owned()),
        ("$origin_prometheus", String::new()),
        ("$interval", "2m".into()),
        ("$job", "node".into()),
        ("$hostname", ".*".into()),
        ("$node", multi(&["host-0:9100", "host-1:9100"])),
        ("$instance", "host-0:9100".into()),
        ("$device", multi(&["eth0", "sda"])),
        ("$maxmount", "/".into()),
        ("$cluster", ".*".into()),
        ("$namespace", "default".into()),
        ("$pod", "x".into()),
        ("$show_hostname", "host-0".into()),
        ("$total", "3".into()),
    ];
    let mut out = q.to_owned();
    for (k, v) in vars {
        out = out.replace(k, &v);
    }
    out
}

/// Every non-empty line of every `*.queries.txt` under `dir`, with its file name.
pub fn load(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
    files.retain(|p| p.to_string_lossy().ends_with(".queries.txt"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for line in std::fs::read_to_string(&f)?.lines().filter(|l| !l.trim().is_empty()) {
            out.push((name.clone(), line.to_owned()));
        }
    }
    Ok(out)
}
