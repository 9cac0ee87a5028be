//! Scrape targets for tests and benchmarks: a small threaded HTTP/1.1 server whose every
//! answer a closure decides (status, content type, body, delay), and a synthetic
//! exposition of any number of series.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One answer of an [`ExpositionServer`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The Content-Type header (none when empty).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// Waited before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a body in the text format 0.0.4.
    pub fn text(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// Decides the reply to a request for a path (with its query string).
pub type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A running server; stops accepting when dropped.
pub struct ExpositionServer {
    /// `127.0.0.1:port`.
    pub addr: String,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for ExpositionServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpositionServer").field("addr", &self.addr).finish()
    }
}

impl ExpositionServer {
    /// Serves `handler` on a free loopback port.
    pub fn start(handler: Handler) -> std::io::Result<ExpositionServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (h, r, s) = (handler.clone(), r.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &h, &r, &s));
            }
        });
        Ok(ExpositionServer { addr, requests, stop })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for ExpositionServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Answers the requests of one connection (keep-alive) until it closes or the server
/// stops.
fn serve(conn: TcpStream, handler: &Handler, requests: &AtomicU64, stop: &AtomicBool) {
    let Ok(write_half) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    let mut out = write_half;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let reply = handler(&path);
        std::thread::sleep(reply.delay);
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", reply.status, reply.body.len());
        if !reply.content_type.is_empty() {
            head.push_str(&format!("Content-Type: {}\r\n", reply.content_type));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(&reply.body)).is_err() {
            return;
        }
    }
}

/// A text-format exposition of `series` series in families of 100 (a counter per
/// family, labelled like node_exporter's), whose values move with `scrape`.
pub fn synthetic_body(series: usize, scrape: u64) -> Vec<u8> {
    let mut out = String::with_capacity(series * 90);
    for i in 0..series {
        let family = i / 100;
        if i % 100 == 0 {
            out.push_str(&format!(
                "# HELP bench_metric_{family}_total A synthetic counter.\n# TYPE bench_metric_{family}_total counter\n"
            ));
        }
        let value = (scrape * (i as u64 % 7 + 1)) as f64 + 0.5;
        out.push_str(&format!(
            "bench_metric_{family}_total{{device=\"dev{}\",mode=\"m{}\",path=\"/srv/{}\"}} {value}\n",
            i % 100,
            i % 3,
            i % 10
        ));
    }
    out.into_bytes()
}
