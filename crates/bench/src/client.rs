//! A blocking remote-write client that records acknowledgements.

use std::time::{Duration, Instant};

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Ack {
    /// HTTP status (0 when the request did not complete).
    pub status: u16,
    /// Body of an error response.
    pub message: String,
    /// Round-trip time.
    pub latency: Duration,
}

/// Posts remote-write bodies to one URL.
#[derive(Debug, Clone)]
pub struct RemoteWriter {
    http: reqwest::blocking::Client,
    url: String,
}

impl RemoteWriter {
    /// A client for `url` (e.g. `http://127.0.0.1:9090/api/v1/write`).
    pub fn new(url: impl Into<String>) -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(RemoteWriter { http, url: url.into() })
    }

    /// Sends one snappy-compressed body.
    pub fn send(&self, body: Vec<u8>) -> Ack {
        let started = Instant::now();
        let res = self
            .http
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send();
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let message = if status >= 300 { r.text().unwrap_or_default() } else { String::new() };
                Ack { status, message, latency: started.elapsed() }
            }
            Err(e) => Ack { status: 0, message: e.to_string(), latency: started.elapsed() },
        }
    }
}
