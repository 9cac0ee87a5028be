//! Who may talk to an HTTP listener: the web configuration file (TLS, basic auth, response
//! headers; see [`crate::web_config`]) and a bearer-token file, both re-read when they
//! change ([`crate::reload`]). A file that turns bad afterwards is not papered over:
//! requests get 500 and TLS handshakes fail until it is fixed (Prometheus's behaviour),
//! and the error is logged.
//!
//! Basic-auth passwords are checked with bcrypt one at a time (it costs tens of
//! milliseconds of CPU by design) on the blocking pool; results are cached for 100
//! (user, hash, password) triples, as exporter-toolkit does. An unknown user is checked
//! against a fixed hash so timing does not tell which users exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use subtle::ConstantTimeEq;

use crate::metrics::Reason;
use crate::reload::{OnError, Reloading};
use crate::tenant::AuthenticatedUser;
use crate::web_config::{self, WebConfig};

/// Who may use a listener. Default: anyone (no file given).
#[derive(Debug, Clone, Default)]
pub struct WebSecurityConfig {
    /// Prometheus's web configuration file (`--web.config.file`): TLS, basic-auth users,
    /// response headers. Default none: plain HTTP, no authentication.
    pub config_file: Option<PathBuf>,
    /// A file of bearer tokens (`--web.bearer-tokens-file`), one `USER TOKEN` per line
    /// (`#` starts a comment): a request with `Authorization: Bearer TOKEN` is that user's.
    /// Default none.
    pub bearer_tokens_file: Option<PathBuf>,
    /// Serve `/metrics`, `/-/healthy` and `/-/ready` without authentication (for
    /// Kubernetes probes and scrapers that cannot authenticate); TLS still applies.
    /// Default false.
    pub open_probes: bool,
}

/// This bcrypt hash (of "fakepassword") is checked for unknown users.
const FAKE_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Most cached password checks.
const CACHE_ENTRIES: usize = 100;

/// The configuration in force, from the files as last read.
#[derive(Debug, Default)]
pub(crate) struct Current {
    pub(crate) web: WebConfig,
    /// Token → user.
    tokens: Vec<(String, String)>,
}

impl Current {
    fn requires_auth(&self) -> bool {
        !self.web.users.is_empty() || !self.tokens.is_empty()
    }
}

/// The files of a [`WebSecurityConfig`], reloaded when they change, and the check of a
/// request's credentials.
#[derive(Debug)]
pub(crate) struct WebSecurity {
    open_probes: bool,
    files: Reloading<Current>,
    cache: Mutex<HashMap<(String, String, String), bool>>,
    bcrypt: tokio::sync::Mutex<()>,
    /// Requests refused, by reason.
    refused: Family<Reason, Counter>,
}

fn read_tokens(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(user), Some(token), None) => out.push((token.to_owned(), user.to_owned())),
            _ => return Err(format!("{} line {}: expected `USER TOKEN`", path.display(), i + 1)),
        }
    }
    Ok(out)
}

impl WebSecurity {
    /// Reads the files of `cfg`; an error names the file and what is wrong with it.
    pub(crate) fn new(cfg: WebSecurityConfig, refused: Family<Reason, Counter>) -> Result<Self, String> {
        let open_probes = cfg.open_probes;
        let files = Reloading::new("web configuration", OnError::Refuse, move || Self::read(&cfg))?;
        Ok(WebSecurity {
            open_probes,
            files,
            cache: Mutex::default(),
            bcrypt: tokio::sync::Mutex::new(()),
            refused,
        })
    }

    fn read(cfg: &WebSecurityConfig) -> (Vec<PathBuf>, Result<Current, String>) {
        let mut files: Vec<PathBuf> =
            cfg.config_file.iter().chain(&cfg.bearer_tokens_file).cloned().collect();
        let current = (|| {
            let web = match &cfg.config_file {
                Some(p) => web_config::load(p).map_err(|e| format!("{}: {e}", p.display()))?,
                None => WebConfig { http2: true, ..WebConfig::default() },
            };
            let tokens = match &cfg.bearer_tokens_file {
                Some(p) => read_tokens(p)?,
                None => Vec::new(),
            };
            Ok(Current { web, tokens })
        })();
        if let Ok(c) = &current {
            files.extend(c.web.files.iter().cloned());
        }
        files.sort();
        files.dedup();
        (files, current)
    }

    /// The configuration in force.
    pub(crate) fn current(&self) -> Result<Arc<Current>, String> {
        self.files.current()
    }

    /// Whether the listener serves TLS (decided by the files at start).
    pub(crate) fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.current().ok().and_then(|c| c.web.tls.clone())
    }

    fn refuse(&self, reason: &str) {
        self.refused.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    /// Checks a request's credentials against `c`: Ok(user), or the reason it is refused.
    async fn authenticate(&self, c: &Current, headers: &HeaderMap) -> Result<String, &'static str> {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Err("no_credentials");
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim().as_bytes();
            // every token compared, each in constant time
            let mut user = None;
            for (t, u) in &c.tokens {
                if bool::from(t.as_bytes().ct_eq(token)) {
                    user = Some(u.clone());
                }
            }
            return user.ok_or("bad_token");
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err("no_credentials");
        }
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| "bad_password")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "bad_password")?;
        let (user, pass) = decoded.split_once(':').ok_or("bad_password")?;
        let (hash, known) = match c.web.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (FAKE_HASH.to_owned(), false),
        };
        let key = (user.to_owned(), hash.clone(), pass.to_owned());
        let cached = self.cache.lock().get(&key).copied();
        let ok = match cached {
            Some(ok) => ok,
            None => {
                let _one_at_a_time = self.bcrypt.lock().await;
                let pass = pass.to_owned();
                let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
                    .await
                    .unwrap_or(false);
                let mut cache = self.cache.lock();
                if cache.len() >= CACHE_ENTRIES {
                    let drop: Vec<_> = cache.keys().take(CACHE_ENTRIES / 10).cloned().collect();
                    for k in drop {
                        cache.remove(&k);
                    }
                }
                cache.insert(key, ok);
                ok
            }
        };
        if ok && known { Ok(user.to_owned()) } else { Err("bad_password") }
    }
}

/// Whether a request is a gRPC call (the query API shares the HTTP port).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"))
}

/// A refused request: `status` with `msg` as text, or for a gRPC call the gRPC status of
/// the same meaning (a trailers-only answer, so that clients see UNAUTHENTICATED,
/// PERMISSION_DENIED… instead of a protocol error).
pub(crate) fn refusal(grpc: bool, status: StatusCode, msg: &str) -> Response {
    if !grpc {
        return (status, format!("{msg}\n")).into_response();
    }
    let code = match status {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    };
    tonic::Status::new(code, msg).into_http()
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/metrics" | "/-/healthy" | "/-/ready")
}

/// The middleware of every listener: the configured response headers, and authentication
/// when the files ask for it (401 with `WWW-Authenticate`, as Prometheus's).
pub(crate) async fn middleware(
    State(sec): State<Arc<WebSecurity>>,
    mut req: Request,
    next: Next,
) -> Response {
    let grpc = is_grpc(req.headers());
    let current = match sec.current() {
        Ok(c) => c,
        Err(_) => {
            sec.refuse("config_error");
            return refusal(grpc, StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let open = !current.requires_auth() || (sec.open_probes && is_probe(req.uri().path()));
    let mut resp = if open {
        next.run(req).await
    } else {
        match sec.authenticate(&current, req.headers()).await {
            Ok(user) => {
                req.extensions_mut().insert(AuthenticatedUser(user));
                next.run(req).await
            }
            Err(reason) => {
                sec.refuse(reason);
                let challenge = if current.web.users.is_empty() { "Bearer" } else { "Basic" };
                let mut r = refusal(grpc, StatusCode::UNAUTHORIZED, "Unauthorized");
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static(challenge));
                r
            }
        }
    };
    for (k, v) in &current.web.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// Checks a web configuration file as `promtool check web-config` does: None when it is
/// good, else the reason.
pub fn check_web_config(path: &Path) -> Option<String> {
    web_config::load(path).err()
}

/// Whether the web configuration file at `path` turns TLS on (false when it does not load).
pub fn web_config_serves_tls(path: &Path) -> bool {
    web_config::load(path).is_ok_and(|c| c.tls.is_some())
}
