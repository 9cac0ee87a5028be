//! The HTTP side of a scrape: content negotiation, compression, authentication, the
//! timeout and the body size limit. Errors read as Prometheus's `lastError`s.

use std::io::Read;
use std::time::Duration;

use strata_textparse::Format;

use crate::config::{AuthHeader, ScrapeConfig, accept_header};

/// Fetches the targets of one job.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    accept: String,
    auth: Option<AuthHeader>,
    compression: bool,
    body_limit: u64,
    fallback: Option<Format>,
}

/// The user agent of scrapes.
const USER_AGENT: &str = concat!("Strata/", env!("CARGO_PKG_VERSION"));

impl Fetcher {
    /// A fetcher for the job `cfg`.
    pub(crate) fn new(cfg: &ScrapeConfig) -> Result<Fetcher, String> {
        let make = || {
            let redirects = if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            };
            let b = reqwest::Client::builder().redirect(redirects).no_proxy().user_agent(USER_AGENT);
            if cfg.enable_http2 { b } else { b.http1_only() }
        };
        let client = crate::tls::client(make, &cfg.tls_config)
            .map_err(|e| format!("job {:?}: building the HTTP client: {e}", cfg.job_name))?;
        Ok(Fetcher {
            client,
            accept: accept_header(&cfg.scrape_protocols),
            auth: cfg.auth.clone(),
            compression: cfg.enable_compression,
            body_limit: cfg.body_size_limit,
            fallback: cfg.fallback_scrape_protocol.and_then(|p| p.format()),
        })
    }

    /// The body of `url` and the format to parse it with, or why not.
    pub(crate) async fn fetch(&self, url: &str, timeout: Duration) -> Result<(Vec<u8>, Format), String> {
        match tokio::time::timeout(timeout, self.get(url, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(format!("Get {url:?}: context deadline exceeded")),
        }
    }

    async fn get(&self, url: &str, timeout: Duration) -> Result<(Vec<u8>, Format), String> {
        let mut req = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, &self.accept)
            .header(reqwest::header::ACCEPT_ENCODING, if self.compression { "gzip" } else { "identity" })
            .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()));
        if let Some(a) = &self.auth {
            req = a.apply(req)?;
        }
        let mut resp = req.send().await.map_err(|e| send_error(url, &e))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ));
        }
        let header = |h| {
            resp.headers()
                .get(h)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let gzip = header(reqwest::header::CONTENT_ENCODING).eq_ignore_ascii_case("gzip");
        let format = match Format::from_content_type(&content_type).or(self.fallback) {
            Some(f) => f,
            None => {
                return Err(format!(
                    "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
                ));
            }
        };
        let limit = if self.body_limit == 0 { u64::MAX } else { self.body_limit };
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading the body: {}", chain(&e)))? {
            body.extend_from_slice(&chunk);
            if !gzip && body.len() as u64 > limit {
                return Err(body_limit_error(limit));
            }
        }
        if gzip {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body.as_slice())
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| format!("decompressing the gzip body: {e}"))?;
            if out.len() as u64 > limit {
                return Err(body_limit_error(limit));
            }
            body = out;
        }
        Ok((body, format))
    }
}

fn body_limit_error(limit: u64) -> String {
    format!("body size limit exceeded (limit {limit} bytes)")
}

/// A request that got no response, worded as Prometheus words the usual causes (Go's
/// dial errors: a refused connection, an unknown host); others with their causes.
fn send_error(url: &str, e: &reqwest::Error) -> String {
    // the host that failed: the URL asked for, or where a redirect led
    let failed = e.url().cloned().or_else(|| reqwest::Url::parse(url).ok());
    let host_port = failed.and_then(|u| {
        let port = u.port_or_known_default()?;
        Some((u.host_str()?.to_owned(), port))
    });
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = src {
        if let (Some(io), Some((host, port))) = (c.downcast_ref::<std::io::Error>(), &host_port)
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return format!("Get {url:?}: dial tcp {host}:{port}: connect: connection refused");
        }
        src = c.source();
    }
    let text = chain(e);
    match &host_port {
        Some((host, _))
            if e.is_connect()
                && (text.contains("Name or service not known")
                    || text.contains("No address associated with hostname")) =>
        {
            format!("Get {url:?}: dial tcp: lookup {host}: no such host")
        }
        _ => format!("Get {url:?}: {text}"),
    }
}

/// An error with its causes, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = c.source();
    }
    s
}
