//! `POST /api/v1/write`: the Prometheus remote-write 1.0 receiver.

use std::cell::RefCell;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_proto::fast::{self, FastDecoder};
use strata_proto::prometheus as pb;
use strata_tsdb::{LabelsError, RejectReason, SeriesBatch, SeriesLimits, labels};

use crate::AppState;
use crate::ha::{Claimant, HaLimits, HaRefusal};
use crate::limits::IngestLimits;
use crate::metrics::TenantCluster;
use strata_api::MetadataStore;

use crate::tenant::{TENANT_LABEL, Tenant};
use strata_api::WriteError;

thread_local! {
    static DECODER: RefCell<FastDecoder> = RefCell::new(FastDecoder::new());
}

/// How many problems a 400 response lists before summarising.
const MAX_LISTED_ERRORS: usize = 10;

/// Fewest decoded bytes per sample a request may average (checked in `decode_body`): the
/// write's records then take at most 4 times the decoded body.
pub(crate) const MIN_SAMPLE_BYTES: usize = 4;

fn reply(st: &AppState, code: StatusCode, msg: String) -> Response {
    st.metrics.write_requests.get_or_create(&crate::metrics::Code { code: code.as_u16().to_string() }).inc();
    if code.is_success() && msg.is_empty() {
        return code.into_response();
    }
    if code.is_server_error() {
        tracing::warn!(%code, %msg, "remote write failed");
    } else if code.is_success() {
        tracing::trace!(%code, %msg, "remote write dropped");
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

/// The answer to a write the writer could not do: 503 (retried), 400 or 500.
fn failed(st: &AppState, e: WriteError) -> Response {
    match e {
        WriteError::Unavailable(msg) => unavailable(st, msg),
        WriteError::Invalid(msg) => reply(st, StatusCode::BAD_REQUEST, msg),
        WriteError::Internal(msg) => reply(st, StatusCode::INTERNAL_SERVER_ERROR, msg),
    }
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
    /// The first problems found, for the 400 ([`MAX_LISTED_ERRORS`] at most).
    errors: Vec<String>,
    /// Problems found beyond the listed ones.
    more_errors: usize,
    /// Samples discarded while decoding, by reason (Mimir's names).
    discarded: Vec<(&'static str, u64)>,
    /// Samples (float and histogram) put in the batch.
    samples: u64,
    /// The HA cluster and replica of the request (its first series' labels), when the
    /// tenant deduplicates HA pairs and the first series has both; the replica label is
    /// then left out of every series.
    ha: Option<(String, String)>,
}

impl Decoded {
    /// Notes one series refused with all its `n` samples.
    fn refuse(&mut self, reason: &'static str, n: u64, msg: impl FnOnce() -> String) {
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(msg());
        } else {
            self.more_errors += 1;
        }
        match self.discarded.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => self.discarded.push((reason, n)),
        }
    }
}

/// What a request body is checked against.
struct Checks<'a> {
    max_decoded: usize,
    limits: &'a IngestLimits,
    meta: &'a MetadataStore,
    /// The writing tenant's value of [`TENANT_LABEL`] (None: series are stored without it).
    tenant: Option<&'a str>,
    /// The tenant's HA settings, when it deduplicates HA pairs.
    ha: Option<&'a HaLimits>,
}

/// A request-level limit: the whole request gets 400.
fn over(what: &str, n: usize, limit: usize, flag: &str) -> Result<(), (StatusCode, String)> {
    if limit > 0 && n > limit {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("the request has {n} {what}, more than the limit of {limit} (configure {flag})"),
        ));
    }
    Ok(())
}

fn decode_body(raw: &[u8], batch: SeriesBatch, c: &Checks<'_>) -> Result<Decoded, (StatusCode, String)> {
    let len =
        snap::raw::decompress_len(raw).map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))?;
    if len > c.max_decoded {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body of {len} bytes exceeds the limit of {} bytes", c.max_decoded),
        ));
    }
    let buf = snap::raw::Decoder::new()
        .decompress_vec(raw)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy: {e}")))?;
    // counted before anything is decoded: a request over the limits costs no memory
    let counts = fast::count(&buf).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let l = c.limits;
    over("series", counts.series, l.max_series_per_request, "--ingest.max-series-per-request")?;
    over(
        "metadata entries",
        counts.metadata,
        l.max_metadata_per_request,
        "--ingest.max-metadata-per-request",
    )?;
    // a sample takes 16 bytes in the write's record; on the wire, one stamped after the first
    // 16 s of 1970 takes at least 6 (tag, length, timestamp tag, 3-byte varint), an empty one
    // 2: a body of empty samples would make its write cost up to 16 times its decoded size
    if counts.samples > buf.len() / MIN_SAMPLE_BYTES {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "{} samples in {} decoded bytes: fewer than {MIN_SAMPLE_BYTES} bytes per sample (samples without a \
                 timestamp or value)",
                counts.samples,
                buf.len()
            ),
        ));
    }
    // the tenant's series limits are enforced where the batch is admitted (Db::admit)
    let mut batch = batch;
    batch.set_limits(SeriesLimits {
        max_per_tenant: l.max_active_series,
        max_per_metric: l.max_active_series_per_metric,
    });
    let mut out =
        Decoded { batch, errors: Vec::new(), more_errors: 0, discarded: Vec::new(), samples: 0, ha: None };
    let mut first = true;
    let text = |s: fast::Span| std::str::from_utf8(s.of(&buf)).unwrap_or("");
    DECODER.with(|d| {
        let mut d = d.borrow_mut();
        // labels beyond the limit are only counted
        d.max_labels = if l.labels.max_names > 0 { l.labels.max_names } else { usize::MAX };
        let (mut pairs, mut enc): (Vec<(&str, &str)>, Vec<u8>) = (Vec::new(), Vec::new());
        let on_series = |s: &fast::SeriesView<'_>| {
            let n = (s.sample_count + s.histograms.len()) as u64;
            pairs.clear();
            for lr in s.labels {
                match (std::str::from_utf8(lr.name.of(&buf)), std::str::from_utf8(lr.value.of(&buf))) {
                    (Ok(name), Ok(value)) => pairs.push((name, value)),
                    _ => {
                        return out.refuse("label_invalid", n, || {
                            "invalid label: label names and values must be valid UTF-8".into()
                        });
                    }
                }
            }
            // the first series whose labels decode names the request's HA cluster and replica
            let is_first = std::mem::take(&mut first);
            // the tenant is the writer's, whatever the series says
            pairs.retain(|(name, _)| *name != TENANT_LABEL);
            if let Some(ha) = c.ha {
                if is_first {
                    let value =
                        |label: &str| pairs.iter().find(|(n, _)| *n == label).map(|(_, v)| v.to_string());
                    out.ha = value(&ha.cluster_label)
                        .zip(value(&ha.replica_label))
                        .filter(|(c, r)| !c.is_empty() && !r.is_empty());
                }
                if out.ha.is_some() {
                    pairs.retain(|(name, _)| *name != ha.replica_label);
                }
            }
            if let Err(mut e) = labels::validate(&mut pairs, &l.labels) {
                if let LabelsError::TooManyLabels { actual, .. } = &mut e {
                    *actual = s.label_count;
                }
                return out.refuse(e.reason(), n, || e.to_string());
            }
            if let Some(t) = c.tenant {
                let at = pairs.partition_point(|(name, _)| *name < TENANT_LABEL);
                pairs.insert(at, (TENANT_LABEL, t));
            }
            if n == 0 {
                return;
            }
            enc.clear();
            labels::encode_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())), &mut enc);
            if s.sample_count > 0 {
                out.batch.add_encoded(&enc, s.samples());
                out.samples += s.sample_count as u64;
            }
            if s.histograms.is_empty() {
                return;
            }
            let mut hists = Vec::with_capacity(s.histograms.len());
            for span in s.histograms {
                let h = <pb::Histogram as prost::Message>::decode(span.of(&buf))
                    .map_err(|e| e.to_string())
                    .and_then(|h| crate::histogram::from_wire(&h));
                match h {
                    Ok(h) => hists.push(h),
                    Err(e) => {
                        let shown: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                        out.refuse("invalid_native_histogram", 1, || {
                            format!("{e}, series {{{}}}", shown.join(", "))
                        });
                    }
                }
            }
            out.batch.add_histograms_encoded(&enc, &hists);
            out.samples += hists.len() as u64;
        };
        let on_metadata = |m: &fast::MetadataRef| {
            c.meta.record(c.tenant.unwrap_or(""), text(m.family), m.kind, text(m.help), text(m.unit))
        };
        d.decode(&buf, on_series, on_metadata).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
    })?;
    Ok(out)
}

/// 429 with `Retry-After`: over the ingestion rate; the sender retries the request later.
fn rate_limited(st: &AppState, wait: std::time::Duration, msg: String) -> Response {
    let code = StatusCode::TOO_MANY_REQUESTS;
    st.metrics.write_requests.get_or_create(&crate::metrics::Code { code: code.as_u16().to_string() }).inc();
    tracing::debug!(%msg, "remote write rate limited");
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    (
        code,
        [
            (header::RETRY_AFTER, secs.max(1).to_string()),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".into()),
        ],
        msg + "\n",
    )
        .into_response()
}

/// Handles one remote-write request.
pub(crate) async fn remote_write(
    State(st): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err((code, msg)) = check_headers(&headers) {
        return reply(&st, code, msg);
    }
    let label = match tenant.write_label() {
        Ok(t) => t.map(str::to_owned),
        Err(msg) => return reply(&st, StatusCode::BAD_REQUEST, msg),
    };
    let key = tenant.key();
    let limits = st.overrides.limits(&key);
    let ingest = limits.ingest(&st.cfg.ingest, st.overrides.ingestors());
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
        let checks = Checks {
            max_decoded: st2.cfg.max_write_decoded_bytes,
            limits: &ingest,
            meta: &st2.metadata,
            tenant: label.as_deref(),
            ha: ingest.ha.accept.then_some(&ingest.ha),
        };
        decode_body(&raw, st2.writer.batch(), &checks)
    })
    .await;
    let decoded = match decoded {
        Ok(Ok(d)) => d,
        Ok(Err((code, msg))) => return reply(&st, code, msg),
        Err(e) => return reply(&st, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some((cluster, replica)) = &decoded.ha {
        let who = Claimant { tenant: &key, cluster, replica, now_ms: st.cfg.clock.now_ms() };
        match st.ha.check(st.writer.as_ref(), &who, &limits.ha()).await {
            Ok(changed) => {
                if changed {
                    let labels = TenantCluster { tenant: key.clone(), cluster: cluster.clone() };
                    st.metrics.elected_changes.get_or_create(&labels).inc();
                }
            }
            Err(HaRefusal::NotElected { elected }) => {
                let labels = TenantCluster { tenant: key.clone(), cluster: cluster.clone() };
                st.metrics.deduped.get_or_create(&labels).inc_by(decoded.samples);
                // Mimir's answer: a success, so that the replica does not retry
                let msg =
                    format!("replicas did not match, rejecting sample: replica={replica}, elected={elected}");
                return reply(&st, StatusCode::ACCEPTED, msg);
            }
            Err(HaRefusal::Claim(e)) => {
                if let WriteError::Invalid(msg) = &e
                    && msg.contains("err-mimir-too-many-ha-clusters")
                {
                    st.metrics.reject(&key, "too_many_ha_clusters", decoded.samples);
                }
                return failed(&st, e);
            }
        }
    }
    if let Some(limiter) = st.overrides.rate_limiter(&key, &limits, &st.cfg.ingest, &st.cfg.clock)
        && let Err(wait) = limiter.take(decoded.samples)
    {
        st.metrics.reject(&key, "rate_limited", decoded.samples);
        return rate_limited(&st, wait, limiter.message());
    }
    let outcome = match st.writer.commit(decoded.batch).await {
        Ok(o) => o,
        Err(e) => return failed(&st, e),
    };
    let (mut errors, mut more) = (decoded.errors, decoded.more_errors);
    st.metrics.ingested.inc_by(outcome.accepted);
    for (reason, n) in decoded.discarded {
        st.metrics.reject(&key, reason, n);
    }
    for (i, why) in RejectReason::ALL.iter().enumerate() {
        st.metrics.reject(&key, why.label(), outcome.rejected[i]);
    }
    let n = outcome.rejected_total();
    if let Some(e) = outcome.first_error {
        errors.push(if n > 1 { format!("{e} (and {} more rejected samples)", n - 1) } else { e });
    }
    if errors.is_empty() {
        return reply(&st, StatusCode::NO_CONTENT, String::new());
    }
    more += errors.len().saturating_sub(MAX_LISTED_ERRORS);
    errors.truncate(MAX_LISTED_ERRORS);
    if more > 0 {
        errors.push(format!("... and {more} more errors"));
    }
    reply(&st, StatusCode::BAD_REQUEST, errors.join("\n"))
}
