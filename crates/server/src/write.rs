//! `POST /api/v1/write`: the Prometheus remote-write 1.0 receiver.

use std::cell::RefCell;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_proto::fast::FastDecoder;
use strata_proto::prometheus as pb;
use strata_tsdb::{RejectReason, SeriesBatch};

use crate::AppState;
use crate::backend::WriteError;
use crate::metadata::MetadataStore;

thread_local! {
    static DECODER: RefCell<FastDecoder> = RefCell::new(FastDecoder::new());
}

/// How many problems a 400 response lists before summarising.
const MAX_LISTED_ERRORS: usize = 10;

fn reply(st: &AppState, code: StatusCode, msg: String) -> Response {
    st.metrics.write_requests.get_or_create(&crate::metrics::Code { code: code.as_u16().to_string() }).inc();
    if code.is_success() {
        return code.into_response();
    }
    if code.is_server_error() {
        tracing::warn!(%code, %msg, "remote write failed");
    } else {
        tracing::debug!(%code, %msg, "remote write rejected");
    }
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg + "\n").into_response()
}

/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// 503 with `Retry-After`: nothing of the request was stored, the client retries.
fn unavailable(st: &AppState, msg: String) -> Response {
    let code = StatusCode::SERVICE_UNAVAILABLE;
    st.metrics.write_requests.get_or_create(&crate::metrics::Code { code: code.as_u16().to_string() }).inc();
    tracing::warn!(%msg, "remote write failed");
    (
        code,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS), (header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg + "\n",
    )
        .into_response()
}

/// Request-level problems found before anything is stored.
fn check_headers(headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let get = |h| headers.get(h).and_then(|v: &axum::http::HeaderValue| v.to_str().ok()).unwrap_or("");
    let enc = get(header::CONTENT_ENCODING);
    if !enc.is_empty() && !enc.eq_ignore_ascii_case("snappy") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported compression: {enc}. Only snappy is supported"),
        ));
    }
    let ct = get(header::CONTENT_TYPE);
    if ct.contains("io.prometheus.write.v2.Request") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "remote write 2.0 is not supported: send prometheus.WriteRequest (remote write 1.0)".into(),
        ));
    }
    Ok(())
}

/// What decoding and validation made of a request body.
struct Decoded {
    batch: SeriesBatch,
    errors: Vec<String>,
    invalid_samples: u64,
}

fn decode_body(
    raw: &[u8],
    max_decoded: usize,
    batch: SeriesBatch,
    meta: &MetadataStore,
) -> Result<Decoded, (StatusCode, String)> {
    let len =
        snap::raw::decompress_len(raw).map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))?;
    if len > max_decoded {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body of {len} bytes exceeds the limit of {max_decoded} bytes"),
        ));
    }
    let buf = snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))?;
    DECODER.with(|d| {
        let mut d = d.borrow_mut();
        d.decode(&buf).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        for m in &d.metadata {
            let text = |s: strata_proto::fast::Span| std::str::from_utf8(s.of(&buf)).unwrap_or("");
            meta.record(text(m.family), m.kind, text(m.help), text(m.unit));
        }
        let mut out = Decoded { batch, errors: Vec::new(), invalid_samples: 0 };
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for s in &d.series {
            let samples = &d.samples[s.samples.clone()];
            pairs.clear();
            let mut utf8_ok = true;
            for l in &d.labels[s.labels.clone()] {
                match (std::str::from_utf8(l.name.of(&buf)), std::str::from_utf8(l.value.of(&buf))) {
                    (Ok(n), Ok(v)) => pairs.push((n, v)),
                    _ => utf8_ok = false,
                }
            }
            if !utf8_ok {
                out.errors.push("invalid label: label names and values must be valid UTF-8".into());
                out.invalid_samples += (samples.len() + s.histograms.len()) as u64;
                continue;
            }
            match out.batch.add(&mut pairs, samples) {
                Ok(()) if s.histograms.is_empty() => {}
                Ok(()) => {
                    let mut hists = Vec::with_capacity(s.histograms.len());
                    for span in &d.histograms[s.histograms.clone()] {
                        let h = <pb::Histogram as prost::Message>::decode(span.of(&buf))
                            .map_err(|e| e.to_string())
                            .and_then(|h| crate::histogram::from_wire(&h));
                        match h {
                            Ok(h) => hists.push(h),
                            Err(e) => {
                                let shown: Vec<String> =
                                    pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                                out.errors.push(format!("{e}, series {{{}}}", shown.join(", ")));
                                out.invalid_samples += 1;
                            }
                        }
                    }
                    if let Err(e) = out.batch.add_histograms(&mut pairs, &hists) {
                        out.errors.push(e.to_string());
                        out.invalid_samples += hists.len() as u64;
                    }
                }
                Err(e) => {
                    out.errors.push(e.to_string());
                    out.invalid_samples += (samples.len() + s.histograms.len()) as u64;
                }
            }
        }
        Ok(out)
    })
}

/// Handles one remote-write request.
pub(crate) async fn remote_write(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err((code, msg)) = check_headers(&headers) {
        return reply(&st, code, msg);
    }
    let limit = st.cfg.max_write_body_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return reply(&st, StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds the limit of {limit} bytes"));
    }
    let raw: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return reply(
                &st,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body exceeds the limit of {limit} bytes"),
            );
        }
    };
    let st2 = st.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        decode_body(&raw, st2.cfg.max_write_decoded_bytes, st2.writer.batch(), &st2.metadata)
    })
    .await;
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err((code, msg))) => return reply(&st, code, msg),
        Err(e) => return reply(&st, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let outcome = match st.writer.commit(decoded.batch).await {
        Ok(o) => o,
        Err(WriteError::Unavailable(msg)) => return unavailable(&st, msg),
        Err(WriteError::Invalid(msg)) => return reply(&st, StatusCode::BAD_REQUEST, msg),
        Err(WriteError::Internal(msg)) => return reply(&st, StatusCode::INTERNAL_SERVER_ERROR, msg),
    };
    let (mut errors, invalid) = (decoded.errors, decoded.invalid_samples);
    st.metrics.ingested.inc_by(outcome.accepted);
    st.metrics.reject("invalid_series", invalid);
    for (i, why) in RejectReason::ALL.iter().enumerate() {
        st.metrics.reject(why.label(), outcome.rejected[i]);
    }
    let n = outcome.rejected_total();
    if let Some(e) = outcome.first_error {
        errors.push(if n > 1 { format!("{e} (and {} more rejected samples)", n - 1) } else { e });
    }
    if errors.is_empty() {
        return reply(&st, StatusCode::NO_CONTENT, String::new());
    }
    let more = errors.len().saturating_sub(MAX_LISTED_ERRORS);
    errors.truncate(MAX_LISTED_ERRORS);
    if more > 0 {
        errors.push(format!("... and {more} more errors"));
    }
    reply(&st, StatusCode::BAD_REQUEST, errors.join("\n"))
}
