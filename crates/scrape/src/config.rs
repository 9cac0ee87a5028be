//! The Prometheus configuration file, as far as scraping goes.
//!
//! Keys and defaults are Prometheus's; unknown keys are rejected with their line. The
//! sections a scraper has no use for (`alerting`, `rule_files`, `remote_write`, ...) are
//! accepted and ignored with a log line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use strata_discovery::{
    Authorization, BasicAuth, FileSdConfig, HttpClientConfig, KubernetesSdConfig, LabelSet, PromDuration,
    Provider, Secret, StaticConfig, TlsConfig,
};

use crate::error::ConfigError;
use crate::relabel::RelabelConfig;

/// Top-level sections Strata accepts and does not use.
const IGNORED_SECTIONS: [&str; 8] =
    ["alerting", "rule_files", "remote_write", "remote_read", "storage", "tracing", "otlp", "runtime"];

/// A parsed and validated configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `global`.
    pub global: GlobalConfig,
    /// `scrape_configs`, with the global defaults filled in.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// The directory relative paths of the file are resolved against.
    pub base_dir: PathBuf,
}

/// `global`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How often targets are scraped by default. Default 1m.
    #[serde(default = "default_interval")]
    pub scrape_interval: PromDuration,
    /// How long a scrape may take by default. Default 10s (capped at the interval).
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// Labels added to every scraped series that lacks them (as Prometheus adds them to
    /// what it sends by remote write). Default none.
    #[serde(default)]
    pub external_labels: LabelSet,
    /// Rule evaluation interval: accepted, unused (Strata runs no rules). Default 1m.
    #[serde(default)]
    pub evaluation_interval: Option<PromDuration>,
    /// Prometheus's query log: accepted, unused.
    #[serde(default)]
    pub query_log_file: Option<String>,
    /// Protocols asked for, in order of preference, unless a job says otherwise.
    /// Default OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText0.0.4.
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Default per-scrape limit of samples (0: none).
    #[serde(default)]
    pub sample_limit: u64,
    /// Default per-sample limit of labels (0: none).
    #[serde(default)]
    pub label_limit: u64,
    /// Default limit of a label name's length in bytes (0: none).
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Default limit of a label value's length in bytes (0: none).
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Default limit of targets per job after relabeling (0: none).
    #[serde(default)]
    pub target_limit: u64,
    /// Default largest accepted uncompressed body, e.g. `10MB` (0: none).
    #[serde(default)]
    pub body_size_limit: ByteSize,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

/// A protocol a scrape can ask for (`scrape_protocols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ScrapeProtocol {
    /// `application/openmetrics-text; version=1.0.0`.
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetrics1,
    /// `application/openmetrics-text; version=0.0.1`.
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetrics0,
    /// `text/plain; version=1.0.0` (the text format with UTF-8 names).
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1,
    /// `text/plain; version=0.0.4`.
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0,
    /// Protobuf: accepted in the file, never asked for (Strata parses text formats only).
    #[serde(rename = "PrometheusProto")]
    PrometheusProto,
}

impl ScrapeProtocol {
    /// The media type of the Accept header.
    fn media_type(self) -> Option<&'static str> {
        match self {
            ScrapeProtocol::OpenMetrics1 => Some("application/openmetrics-text;version=1.0.0"),
            ScrapeProtocol::OpenMetrics0 => Some("application/openmetrics-text;version=0.0.1"),
            ScrapeProtocol::PrometheusText1 => Some("text/plain;version=1.0.0"),
            ScrapeProtocol::PrometheusText0 => Some("text/plain;version=0.0.4"),
            ScrapeProtocol::PrometheusProto => None,
        }
    }

    /// The parser a response in this protocol needs.
    pub fn format(self) -> Option<strata_textparse::Format> {
        match self {
            ScrapeProtocol::OpenMetrics1 | ScrapeProtocol::OpenMetrics0 => {
                Some(strata_textparse::Format::OpenMetrics)
            }
            ScrapeProtocol::PrometheusText1 | ScrapeProtocol::PrometheusText0 => {
                Some(strata_textparse::Format::PrometheusText)
            }
            ScrapeProtocol::PrometheusProto => None,
        }
    }
}

const DEFAULT_PROTOCOLS: [ScrapeProtocol; 3] =
    [ScrapeProtocol::OpenMetrics1, ScrapeProtocol::OpenMetrics0, ScrapeProtocol::PrometheusText0];

/// The Accept header for `protocols`, with decreasing weights as Prometheus writes it.
pub(crate) fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut out = String::new();
    let mut weight = 10u32;
    for media in protocols.iter().filter_map(|p| p.media_type()) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(media);
        if weight < 10 {
            out.push_str(&format!(";q=0.{weight}"));
        }
        weight = weight.saturating_sub(1).max(2);
    }
    out.push_str(",*/*;q=0.1");
    out
}

/// A size in bytes written as Prometheus writes them (`512`, `10KB`, `10MB`, `1GB`:
/// powers of 1024). Default 0 (no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => return Ok(ByteSize(n)),
            Raw::S(s) => s,
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| serde::de::Error::custom(format!("invalid size {s:?}")))?;
        let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" | "KIB" | "K" => 1 << 10,
            "MB" | "MIB" | "M" => 1 << 20,
            "GB" | "GIB" | "G" => 1 << 30,
            "TB" | "TIB" | "T" => 1 << 40,
            _ => return Err(serde::de::Error::custom(format!("invalid size {s:?}: unknown unit {unit:?}"))),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| serde::de::Error::custom(format!("size {s:?} overflows")))
    }
}

/// The YAML form of a scrape config (what the file says, before defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeConfig {
    job_name: String,
    #[serde(default)]
    honor_labels: bool,
    #[serde(default = "yes")]
    honor_timestamps: bool,
    #[serde(default)]
    track_timestamps_staleness: bool,
    scrape_interval: Option<PromDuration>,
    scrape_timeout: Option<PromDuration>,
    scrape_protocols: Option<Vec<ScrapeProtocol>>,
    fallback_scrape_protocol: Option<ScrapeProtocol>,
    #[serde(default = "metrics_path")]
    metrics_path: String,
    #[serde(default = "http")]
    scheme: String,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes")]
    enable_compression: bool,
    body_size_limit: Option<ByteSize>,
    sample_limit: Option<u64>,
    label_limit: Option<u64>,
    label_name_length_limit: Option<u64>,
    label_value_length_limit: Option<u64>,
    target_limit: Option<u64>,
    #[serde(default)]
    keep_dropped_targets: u64,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    bearer_token: Option<Secret>,
    bearer_token_file: Option<String>,
    #[serde(default)]
    tls_config: TlsConfig,
    proxy_url: Option<String>,
    #[serde(default = "yes")]
    follow_redirects: bool,
    #[serde(default = "yes")]
    enable_http2: bool,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default)]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    metric_relabel_configs: Vec<RelabelConfig>,
}

fn yes() -> bool {
    true
}
fn metrics_path() -> String {
    "/metrics".into()
}
fn http() -> String {
    "http".into()
}

/// One `scrape_configs` entry with the global defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// `job_name`: the `job` label and the name of the scrape pool.
    pub job_name: String,
    /// Scraped labels win over target labels on conflict. Default false.
    pub honor_labels: bool,
    /// Timestamps in the exposition are kept. Default true.
    pub honor_timestamps: bool,
    /// Series with explicit timestamps also get staleness markers. Default false.
    pub track_timestamps_staleness: bool,
    /// Time between scrapes. Default: global.
    pub scrape_interval: Duration,
    /// Longest a scrape may take. Default: global (10s), at most the interval.
    pub scrape_timeout: Duration,
    /// Protocols asked for, in order of preference.
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// Parser used when a target answers with a missing or unknown Content-Type.
    /// Default none: such a scrape fails.
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// Path scraped. Default `/metrics`.
    pub metrics_path: String,
    /// `http` or `https`. Default `http`.
    pub scheme: String,
    /// URL query parameters of every scrape.
    pub params: BTreeMap<String, Vec<String>>,
    /// Ask for gzip. Default true.
    pub enable_compression: bool,
    /// Largest accepted uncompressed body in bytes (0: none).
    pub body_size_limit: u64,
    /// Most samples a scrape may keep after metric relabeling (0: none).
    pub sample_limit: u64,
    /// Most labels a sample may have (0: none).
    pub label_limit: u64,
    /// Longest label name in bytes (0: none).
    pub label_name_length_limit: u64,
    /// Longest label value in bytes (0: none).
    pub label_value_length_limit: u64,
    /// Most targets the job may have after relabeling (0: none).
    pub target_limit: u64,
    /// Most dropped targets kept for the targets API (0: all).
    pub keep_dropped_targets: u64,
    /// The `Authorization` header, resolved from basic_auth/authorization/bearer_token.
    pub auth: Option<AuthHeader>,
    /// TLS settings of https scrapes.
    pub tls_config: TlsConfig,
    /// Follow HTTP redirects. Default true.
    pub follow_redirects: bool,
    /// Allow HTTP/2. Default true.
    pub enable_http2: bool,
    /// Where the targets come from.
    pub providers: Vec<Provider>,
    /// Relabeling of discovered targets.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples.
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// How a scrape authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthHeader {
    /// HTTP basic authentication.
    Basic(BasicAuth),
    /// `Authorization: <type> <credentials>`.
    Authorization(Authorization),
}

impl AuthHeader {
    /// Adds the header to `req` (secret files are read now, so a rotated secret is picked
    /// up).
    pub(crate) fn apply(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, String> {
        let secret = |inline: &Option<Secret>, file: &Option<String>| match (inline, file) {
            (_, Some(f)) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("reading {f}: {e}")),
            (Some(p), None) => Ok(p.0.clone()),
            (None, None) => Ok(String::new()),
        };
        Ok(match self {
            AuthHeader::Basic(b) => req.basic_auth(&b.username, Some(secret(&b.password, &b.password_file)?)),
            AuthHeader::Authorization(a) => req.header(
                reqwest::header::AUTHORIZATION,
                format!("{} {}", a.kind, secret(&a.credentials, &a.credentials_file)?),
            ),
        })
    }
}

/// The YAML form of the whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: GlobalConfig,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
    #[serde(default)]
    alerting: Option<serde_yaml::Value>,
    #[serde(default)]
    rule_files: Option<serde_yaml::Value>,
    #[serde(default)]
    remote_write: Option<serde_yaml::Value>,
    #[serde(default)]
    remote_read: Option<serde_yaml::Value>,
    #[serde(default)]
    storage: Option<serde_yaml::Value>,
    #[serde(default)]
    tracing: Option<serde_yaml::Value>,
    #[serde(default)]
    otlp: Option<serde_yaml::Value>,
    #[serde(default)]
    runtime: Option<serde_yaml::Value>,
}

impl RawConfig {
    fn ignored(&self) -> impl Iterator<Item = &'static str> + '_ {
        let present = [
            self.alerting.is_some(),
            self.rule_files.is_some(),
            self.remote_write.is_some(),
            self.remote_read.is_some(),
            self.storage.is_some(),
            self.tracing.is_some(),
            self.otlp.is_some(),
            self.runtime.is_some(),
        ];
        IGNORED_SECTIONS.iter().zip(present).filter(|(_, p)| *p).map(|(n, _)| *n)
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, None, format!("cannot read the file: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base).map_err(|mut e| {
            e.file = path.display().to_string();
            e
        })
    }

    /// Parses and validates a configuration text; relative paths are resolved against
    /// `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            ConfigError::new(Path::new(""), line, strip_location(&e.to_string()))
        })?;
        for section in raw.ignored() {
            tracing::info!(section, "configuration section ignored: Strata only scrapes");
        }
        let g = &raw.global;
        let global_interval = g.scrape_interval.0;
        // an unset timeout is 10s, capped at the interval; a set one is checked against it
        let global_timeout = g.scrape_timeout.map_or(Duration::from_secs(10).min(global_interval), |d| d.0);
        if global_interval.is_zero() {
            return Err(ConfigError::new(
                Path::new(""),
                None,
                "global scrape_interval must be positive".into(),
            ));
        }
        if global_timeout > global_interval {
            return Err(ConfigError::new(
                Path::new(""),
                line_of(text, "scrape_timeout:"),
                "global scrape timeout greater than scrape interval".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut scrape_configs = Vec::with_capacity(raw.scrape_configs.len());
        for sc in raw.scrape_configs.iter() {
            let at =
                line_of(text, &format!("job_name: {}", sc.job_name)).or_else(|| line_of(text, &sc.job_name));
            let fail = |msg: String| ConfigError::new(Path::new(""), at, msg);
            if sc.job_name.is_empty() {
                return Err(fail("job_name is empty".into()));
            }
            if !seen.insert(sc.job_name.clone()) {
                return Err(fail(format!("found multiple scrape configs with job name {:?}", sc.job_name)));
            }
            let interval = sc.scrape_interval.map(|d| d.0).unwrap_or(global_interval);
            let timeout = match sc.scrape_timeout {
                Some(t) => t.0,
                None => global_timeout.min(interval),
            };
            if interval.is_zero() {
                return Err(fail(format!("scrape interval of job {:?} must be positive", sc.job_name)));
            }
            if timeout > interval {
                return Err(fail(format!(
                    "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                    sc.job_name
                )));
            }
            if sc.scheme != "http" && sc.scheme != "https" {
                return Err(fail(format!("unsupported scheme {:?} for job {:?}", sc.scheme, sc.job_name)));
            }
            if sc.proxy_url.is_some() {
                return Err(fail(format!("job {:?}: proxy_url is not supported", sc.job_name)));
            }
            let auth = resolve_auth(sc, base_dir).map_err(fail)?;
            let mut tls = sc.tls_config.clone();
            for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file].into_iter().flatten() {
                *p = base_dir.join(&*p).display().to_string();
            }
            let mut providers = Vec::new();
            if !sc.static_configs.is_empty() {
                providers.push(Provider::Static(sc.static_configs.clone()));
            }
            providers.extend(sc.file_sd_configs.iter().cloned().map(Provider::File));
            providers.extend(sc.kubernetes_sd_configs.iter().cloned().map(Provider::Kubernetes));
            let protocols = sc
                .scrape_protocols
                .clone()
                .or_else(|| g.scrape_protocols.clone())
                .unwrap_or_else(|| DEFAULT_PROTOCOLS.to_vec());
            if protocols.iter().all(|p| p.media_type().is_none()) {
                return Err(fail(format!(
                    "job {:?}: scrape_protocols must name a text protocol (Strata does not parse protobuf)",
                    sc.job_name
                )));
            }
            scrape_configs.push(ScrapeConfig {
                job_name: sc.job_name.clone(),
                honor_labels: sc.honor_labels,
                honor_timestamps: sc.honor_timestamps,
                track_timestamps_staleness: sc.track_timestamps_staleness,
                scrape_interval: interval,
                scrape_timeout: timeout,
                scrape_protocols: protocols,
                fallback_scrape_protocol: sc.fallback_scrape_protocol,
                metrics_path: sc.metrics_path.clone(),
                scheme: sc.scheme.clone(),
                params: sc.params.clone(),
                enable_compression: sc.enable_compression,
                body_size_limit: sc.body_size_limit.unwrap_or(g.body_size_limit).0,
                sample_limit: sc.sample_limit.unwrap_or(g.sample_limit),
                label_limit: sc.label_limit.unwrap_or(g.label_limit),
                label_name_length_limit: sc.label_name_length_limit.unwrap_or(g.label_name_length_limit),
                label_value_length_limit: sc.label_value_length_limit.unwrap_or(g.label_value_length_limit),
                target_limit: sc.target_limit.unwrap_or(g.target_limit),
                keep_dropped_targets: sc.keep_dropped_targets,
                auth,
                tls_config: tls,
                follow_redirects: sc.follow_redirects,
                enable_http2: sc.enable_http2,
                providers,
                relabel_configs: sc.relabel_configs.clone(),
                metric_relabel_configs: sc.metric_relabel_configs.clone(),
            });
        }
        let mut global = raw.global.clone();
        global.scrape_timeout = Some(PromDuration(global_timeout));
        Ok(Config { global, scrape_configs, base_dir: base_dir.to_path_buf() })
    }
}

/// The job's `Authorization` header, checked as Prometheus checks HTTP client settings,
/// with secret files resolved against `base_dir`.
fn resolve_auth(sc: &RawScrapeConfig, base_dir: &Path) -> Result<Option<AuthHeader>, String> {
    HttpClientConfig {
        basic_auth: sc.basic_auth.as_ref(),
        authorization: sc.authorization.as_ref(),
        bearer_token: sc.bearer_token.as_ref(),
        bearer_token_file: sc.bearer_token_file.as_ref(),
        tls_config: &sc.tls_config,
    }
    .validate()
    .map_err(|e| format!("job {:?}: {e}", sc.job_name))?;
    let abs = |f: &Option<String>| f.as_ref().map(|f| base_dir.join(f).display().to_string());
    Ok(match (&sc.basic_auth, &sc.authorization) {
        (Some(b), _) => {
            Some(AuthHeader::Basic(BasicAuth { password_file: abs(&b.password_file), ..b.clone() }))
        }
        (_, Some(a)) => Some(AuthHeader::Authorization(Authorization {
            credentials_file: abs(&a.credentials_file),
            ..a.clone()
        })),
        _ if sc.bearer_token.is_some() || sc.bearer_token_file.is_some() => {
            Some(AuthHeader::Authorization(Authorization {
                kind: "Bearer".into(),
                credentials: sc.bearer_token.clone(),
                credentials_file: abs(&sc.bearer_token_file),
            }))
        }
        _ => None,
    })
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// serde_yaml's message without its trailing "at line L column C" (the line is reported
/// separately).
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/strata"))
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let c =
            parse("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n").unwrap();
        let j = &c.scrape_configs[0];
        assert_eq!(j.scrape_interval, Duration::from_secs(60));
        assert_eq!(j.scrape_timeout, Duration::from_secs(10));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(j.scheme, "http");
        assert!(j.honor_timestamps && !j.honor_labels);
        assert_eq!(j.providers.len(), 1);
    }

    #[test]
    fn global_defaults_flow_into_jobs_and_timeout_is_capped() {
        let c = parse(
            "global: {scrape_interval: 5s, sample_limit: 10}\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 1m\n    sample_limit: 3\n",
        )
        .unwrap();
        assert_eq!(c.scrape_configs[0].scrape_interval, Duration::from_secs(5));
        assert_eq!(c.scrape_configs[0].scrape_timeout, Duration::from_secs(5));
        assert_eq!(c.scrape_configs[0].sample_limit, 10);
        assert_eq!(c.scrape_configs[1].scrape_timeout, Duration::from_secs(5));
        assert_eq!(c.scrape_configs[1].sample_limit, 3);
    }

    #[test]
    fn ignored_sections_are_accepted() {
        let c = parse(
            "rule_files: [a.yml]\nalerting: {alertmanagers: [{static_configs: [{targets: [am:9093]}]}]}\nremote_write: [{url: 'http://x/api/v1/write'}]\nscrape_configs: []\n",
        )
        .unwrap();
        assert!(c.scrape_configs.is_empty());
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let e = parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.reason.contains("unknown field `scrape_intervall`"), "{e}");
        let e = parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
        assert!(e.reason.contains("multiple scrape configs with job name \"a\""), "{e}");
        let e = parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n")
            .unwrap_err();
        assert!(e.reason.contains("scrape timeout greater than scrape interval"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = parse("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '(['\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = parse("global:\n  scrape_interval: 15\n").unwrap_err();
        assert!(e.reason.contains("not a valid duration"), "{e}");
    }

    #[test]
    fn auth_resolves_and_paths_are_relative_to_the_file() {
        let c = parse(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n  - job_name: b\n    authorization: {credentials_file: tok}\n    tls_config: {ca_file: ca.pem}\n",
        )
        .unwrap();
        let req = reqwest::Client::new().get("http://x/");
        let req = c.scrape_configs[0].auth.as_ref().unwrap().apply(req).unwrap().build().unwrap();
        assert_eq!(req.headers()[reqwest::header::AUTHORIZATION], "Basic dTpw");
        match &c.scrape_configs[1].auth {
            Some(AuthHeader::Authorization(a)) => {
                assert_eq!(a.credentials_file.as_deref(), Some("/etc/strata/tok"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.scrape_configs[1].tls_config.ca_file.as_deref(), Some("/etc/strata/ca.pem"));
        assert!(
            parse("scrape_configs:\n  - job_name: a\n    bearer_token: x\n    basic_auth: {username: u}\n")
                .is_err()
        );
    }

    #[test]
    fn sizes_and_accept_header() {
        let c = parse("scrape_configs:\n  - job_name: a\n    body_size_limit: 10MB\n").unwrap();
        assert_eq!(c.scrape_configs[0].body_size_limit, 10 << 20);
        assert_eq!(
            accept_header(&DEFAULT_PROTOCOLS),
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.9,text/plain;version=0.0.4;q=0.8,*/*;q=0.1"
        );
    }
}
