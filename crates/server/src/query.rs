//! The PromQL query endpoints: `/api/v1/query`, `/api/v1/query_range`, and the small
//! endpoints Grafana calls alongside them (`format_query`, `status/buildinfo`,
//! `query_exemplars`, `metadata`).

use std::io::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use strata_promql::{Annotations, Engine, QueryError, Value};
use strata_tsdb::Labels;

use crate::AppState;
use crate::api::{ApiError, success};
use crate::gojson;
use crate::params::{Params, parse_time};

pub(crate) fn query_error(e: QueryError) -> ApiError {
    let status = match &e {
        QueryError::Parse(_) => StatusCode::BAD_REQUEST,
        QueryError::Execution(_) | QueryError::TooManySamples => StatusCode::UNPROCESSABLE_ENTITY,
        QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        QueryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.error_type(), e.to_string())
}

/// The populated buckets of a native histogram, each with Prometheus's boundary rule
/// (0: (l,u], 1: [l,u), 2: (l,u), 3: [l,u]): what both renderings of a histogram list.
pub(crate) fn populated_buckets(
    h: &strata_tsdb::FloatHistogram,
) -> impl Iterator<Item = (u32, strata_tsdb::histogram::Bucket)> {
    h.all_buckets().into_iter().filter(|b| b.count != 0.0).map(|b| {
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        };
        (rule, b)
    })
}

/// A native histogram as Prometheus's API writes it (`marshalHistogram`): count, sum and
/// the populated buckets as `[boundary rule, lower, upper, count]`, each number quoted as
/// a sample value is.
fn write_histogram(out: &mut impl Write, h: &strata_tsdb::FloatHistogram) -> std::io::Result<()> {
    out.write_all(b"{\"count\":")?;
    gojson::value(out, h.count)?;
    out.write_all(b",\"sum\":")?;
    gojson::value(out, h.sum)?;
    let mut first = true;
    for (rule, b) in populated_buckets(h) {
        out.write_all(if first { b",\"buckets\":[" } else { b"," })?;
        first = false;
        write!(out, "[{rule},")?;
        gojson::value(out, b.lower)?;
        out.write_all(b",")?;
        gojson::value(out, b.upper)?;
        out.write_all(b",")?;
        gojson::value(out, b.count)?;
        out.write_all(b"]")?;
    }
    if !first {
        out.write_all(b"]")?;
    }
    out.write_all(b"}")
}

/// One series of a shaped result: its float points and its histogram points (a vector's
/// series has one point, at the evaluation time).
pub(crate) struct ShapedSeries {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<(i64, f64)>,
    pub(crate) hists: Vec<strata_promql::HPoint>,
}

/// A query's result in the shapes of Prometheus's API, shared by the JSON and the gRPC
/// renderings.
pub(crate) enum Shaped {
    /// `scalar`: timestamp and value.
    Scalar(i64, f64),
    /// `string`: timestamp and value.
    Str(i64, String),
    /// `vector` or `matrix`, and its series.
    Series(&'static str, Vec<ShapedSeries>),
}

impl Answer {
    /// The result as the API shapes it: a range query's scalar is a matrix of one series
    /// without labels; an instant vector keeps each series' value at the evaluation time.
    pub(crate) fn shaped(self) -> (Shaped, Annotations) {
        let Answer { value, t, range, annotations } = self;
        let one = |labels, points, hists| ShapedSeries { labels, points, hists };
        let shaped = match value {
            Value::Scalar(s) if !range => {
                let (ts, x) = s.last().copied().unwrap_or((t, f64::NAN));
                Shaped::Scalar(ts, x)
            }
            Value::Scalar(s) => Shaped::Series("matrix", vec![one(Labels::default(), s, Vec::new())]),
            Value::String(s) => Shaped::Str(t, s),
            Value::Vector(v) if !range => Shaped::Series(
                "vector",
                v.into_iter()
                    .filter_map(|s| {
                        if let Some((_, h)) = s.hists.last() {
                            return Some(one(s.labels, Vec::new(), vec![(t, h.clone())]));
                        }
                        let &(_, x) = s.points.last()?;
                        Some(one(s.labels, vec![(t, x)], Vec::new()))
                    })
                    .collect(),
            ),
            Value::Vector(v) => {
                Shaped::Series("matrix", v.into_iter().map(|s| one(s.labels, s.points, s.hists)).collect())
            }
            Value::Matrix(m) => {
                Shaped::Series("matrix", m.into_iter().map(|s| one(s.labels, s.samples, s.hists)).collect())
            }
        };
        (shaped, annotations)
    }
}

/// A series' labels as Prometheus writes them (`labels.Labels.MarshalJSON`: an object in
/// label name order, strings escaped as Go escapes them).
fn write_metric(out: &mut impl Write, l: &Labels) -> std::io::Result<()> {
    let mut pairs: Vec<_> = l.iter().map(|x| (x.name.as_str(), x.value.as_str())).collect();
    pairs.sort_unstable();
    out.write_all(b"{")?;
    for (i, (n, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        gojson::string(out, n)?;
        out.write_all(b":")?;
        gojson::string(out, v)?;
    }
    out.write_all(b"}")
}

/// A float point as Prometheus's `marshalPointJSON` writes it: `[1700000000.500,"1e-07"]`.
fn write_point(out: &mut impl Write, (t, v): (i64, f64)) -> std::io::Result<()> {
    out.write_all(b"[")?;
    gojson::point_time(out, t)?;
    out.write_all(b",")?;
    gojson::value(out, v)?;
    out.write_all(b"]")
}

/// A histogram point: `[1700000000.500,{"count":…}]`.
fn write_hist_point(out: &mut impl Write, (t, h): &strata_promql::HPoint) -> std::io::Result<()> {
    out.write_all(b"[")?;
    gojson::point_time(out, *t)?;
    out.write_all(b",")?;
    write_histogram(out, h)?;
    out.write_all(b"]")
}

/// A shaped result as the JSON API's `data`, byte for byte as Prometheus 2.42 writes it:
/// a scalar as `promql.Scalar.MarshalJSON` (its value in full, without an exponent:
/// `"0.0000001"`; its time as a Go float), a string likewise, and a vector's samples and a
/// matrix's points as the API's jsoniter encoders (`"1e-07"`, `1700000000.500`).
fn render(out: &mut impl Write, shaped: &Shaped) -> std::io::Result<()> {
    match shaped {
        Shaped::Scalar(ts, x) => {
            out.write_all(b"{\"resultType\":\"scalar\",\"result\":[")?;
            gojson::float_time(out, *ts)?;
            write!(out, ",\"{}\"]}}", strata_promql::format_float(*x))
        }
        Shaped::Str(ts, s) => {
            out.write_all(b"{\"resultType\":\"string\",\"result\":[")?;
            gojson::float_time(out, *ts)?;
            out.write_all(b",")?;
            gojson::string(out, s)?;
            out.write_all(b"]}")
        }
        Shaped::Series(kind, series) => {
            write!(out, "{{\"resultType\":\"{kind}\",\"result\":[")?;
            for (i, s) in series.iter().enumerate() {
                out.write_all(if i == 0 { b"{\"metric\":" } else { b",{\"metric\":" })?;
                write_metric(out, &s.labels)?;
                if *kind == "vector" {
                    match (s.hists.first(), s.points.first()) {
                        (Some(h), _) => {
                            out.write_all(b",\"histogram\":")?;
                            write_hist_point(out, h)?;
                        }
                        (None, Some(&p)) => {
                            out.write_all(b",\"value\":")?;
                            write_point(out, p)?;
                        }
                        (None, None) => {}
                    }
                    out.write_all(b"}")?;
                    continue;
                }
                // a matrix series: `values` when it has floats, `histograms` when it has
                // histograms
                if !s.points.is_empty() || s.hists.is_empty() {
                    out.write_all(b",\"values\":[")?;
                    for (j, &p) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.write_all(b",")?;
                        }
                        write_point(out, p)?;
                    }
                    out.write_all(b"]")?;
                }
                if !s.hists.is_empty() {
                    out.write_all(b",\"histograms\":[")?;
                    for (j, h) in s.hists.iter().enumerate() {
                        if j > 0 {
                            out.write_all(b",")?;
                        }
                        write_hist_point(out, h)?;
                    }
                    out.write_all(b"]")?;
                }
                out.write_all(b"}")?;
            }
            out.write_all(b"]}")
        }
    }
}

/// The error of a response over `max` bytes.
fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "execution",
        format!("the response would be larger than {max} bytes (--query.max-response-bytes)"),
    )
}

/// The fewest bytes a shaped result takes in JSON (each point at least `[1,"1"]`, each series
/// its labels), to refuse one over the response limit before it is rendered.
fn min_json_bytes(shaped: &Shaped) -> usize {
    match shaped {
        Shaped::Scalar(..) => 0,
        Shaped::Str(_, s) => s.len(),
        Shaped::Series(_, series) => series
            .iter()
            .map(|s| {
                let labels: usize = s.labels.iter().map(|l| l.name.len() + l.value.len() + 6).sum();
                labels + 14 + 8 * (s.points.len() + s.hists.len())
            })
            .sum(),
    }
}

/// A `Write` that fails past a limit, so that rendering stops there.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.max {
            return Err(std::io::Error::other("response limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A success envelope with the query's annotations (`warnings`, `infos`) when there are any,
/// refused with 422 when its JSON would pass `max` bytes.
fn respond(shaped: Shaped, a: strata_promql::Annotations, max: usize) -> Result<Response, ApiError> {
    if min_json_bytes(&shaped) > max {
        return Err(too_large(max));
    }
    let mut out = Capped { buf: Vec::new(), max };
    let strings = |out: &mut Capped, key: &str, list: &[String]| -> std::io::Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        write!(out, ",\"{key}\":[")?;
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            gojson::string(out, w)?;
        }
        out.write_all(b"]")
    };
    let written = (|| {
        out.write_all(b"{\"status\":\"success\",\"data\":")?;
        render(&mut out, &shaped)?;
        strings(&mut out, "warnings", &a.warnings)?;
        strings(&mut out, "infos", &a.infos)?;
        out.write_all(b"}")
    })();
    written.map_err(|_| too_large(max))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], out.buf).into_response())
}

/// A duration parameter: float seconds or a Prometheus duration, in ms (none when it
/// overflows, as Prometheus refuses durations past int64 nanoseconds).
fn parse_duration_param(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        return (f.is_finite() && (f * 1000.0).abs() < i64::MAX as f64).then(|| (f * 1000.0).round() as i64);
    }
    let e = strata_promql::parse(&format!("x[{s}]")).ok()?;
    match e {
        promql_parser::parser::Expr::MatrixSelector(m) => i64::try_from(m.range.as_millis()).ok(),
        _ => None,
    }
}

/// Runs `f` (parsing, formatting: CPU work bounded by the nesting limit) on the blocking
/// pool, failing with 503 past the query timeout so that the runtime stays free.
async fn off_runtime<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let timeout = st.engine.config().timeout;
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(joined) => joined.map_err(|e| ApiError::internal(e.to_string()))?,
        Err(_) => Err(query_error(QueryError::Timeout("query preparation"))),
    }
}

/// A query parameter parsed within the engine's nesting limit (bad input: 400 with
/// Prometheus's `invalid parameter "query"` prefix).
fn parse_query_param(engine: &Engine, q: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    engine.parse(q).map_err(|e| QueryError::Parse(format!("invalid parameter \"query\": {e}")))
}

fn engine_for(st: &AppState, p: &Params) -> Result<Engine, ApiError> {
    let mut cfg = st.engine.config().clone();
    if let Some(t) = p.get("timeout").filter(|s| !s.is_empty()) {
        let ms = parse_duration_param(t).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"timeout\": cannot parse \"{t}\" to a valid duration"
            ))
        })?;
        cfg.timeout = cfg.timeout.min(Duration::from_millis(ms.max(0) as u64));
    }
    // the tenant's limits, where lower than the node's
    let limits = st.tenant_limits(p)?;
    let lower = |node: usize, tenant: usize| if tenant > 0 { node.min(tenant) } else { node };
    cfg.max_samples = lower(cfg.max_samples, limits.max_samples_per_query);
    cfg.max_bytes = lower(cfg.max_bytes, limits.max_fetched_chunk_bytes_per_query);
    Ok(Engine::new(cfg))
}

/// An evaluated query: its value, the time it was evaluated at (the end of a range), whether
/// it was a range query, and its annotations (with the reads' warnings).
pub(crate) struct Answer {
    pub(crate) value: Value,
    pub(crate) t: i64,
    pub(crate) range: bool,
    pub(crate) annotations: Annotations,
}

/// Evaluates `expr` with `engine` on the blocking pool over a view of the data.
async fn evaluate(
    st: &AppState,
    p: &Params,
    engine: Engine,
    run: impl FnOnce(&Engine, &dyn strata_promql::Source) -> Result<strata_promql::Output, QueryError>
    + Send
    + 'static,
) -> Result<(Value, Annotations), ApiError> {
    let (view, _cancel) = st.view(p, &engine)?;
    let _permits = st.query_permits(p).await?;
    // the evaluator checks its deadline; this one also covers parsing and a read that hangs
    // (dropping `_cancel` then stops the reads)
    let timeout = engine.config().timeout;
    let job = tokio::task::spawn_blocking(move || {
        let res = run(&engine, &*view);
        (res, view.warnings())
    });
    let (res, warnings) = tokio::time::timeout(timeout + Duration::from_millis(100), job)
        .await
        .map_err(|_| query_error(QueryError::Timeout("query execution")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = res.map_err(query_error)?;
    out.annotations.merge(Annotations { warnings, infos: Vec::new() });
    Ok((out.value, out.annotations))
}

/// An instant query's parameters evaluated (`/api/v1/query`, gRPC `Query`).
pub(crate) async fn eval_instant(st: &AppState, p: &Params) -> Result<Answer, ApiError> {
    let q = p.get("query").unwrap_or("").to_owned();
    let t = match p.get("time").filter(|s| !s.is_empty()) {
        Some(s) => parse_time(s).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"time\": cannot parse \"{s}\" to a valid timestamp"
            ))
        })?,
        None => st.cfg.clock.now_ms(),
    };
    let engine = engine_for(st, p)?;
    let (value, annotations) =
        evaluate(st, p, engine, move |e, src| e.instant(src, &parse_query_param(e, &q)?, t)).await?;
    Ok(Answer { value, t, range: false, annotations })
}

/// A range query's parameters evaluated (`/api/v1/query_range`, gRPC `QueryRange`).
pub(crate) async fn eval_range(st: &AppState, p: &Params) -> Result<Answer, ApiError> {
    let q = p.get("query").unwrap_or("").to_owned();
    let need = |k: &str| -> Result<i64, ApiError> {
        let s = p.get(k).unwrap_or("");
        parse_time(s).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"{k}\": cannot parse \"{s}\" to a valid timestamp"
            ))
        })
    };
    let mut start = need("start")?;
    let end = need("end")?;
    let limits = st.tenant_limits(p)?;
    let longest = limits.max_total_query_length;
    if !longest.0.is_zero() && (end.saturating_sub(start)) as u128 > longest.0.as_millis() {
        let asked = strata_discovery::PromDuration(Duration::from_millis(end.saturating_sub(start) as u64));
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            format!(
                "the total query time range exceeds the limit (query length: {asked}, limit: {longest}) \
                 (err-mimir-max-total-query-length)"
            ),
        ));
    }
    let lookback = limits.max_query_lookback;
    if !lookback.0.is_zero() {
        start = start.max(st.cfg.clock.now_ms().saturating_sub(lookback.0.as_millis() as i64));
    }
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step_s = p.get("step").unwrap_or("");
    let step = parse_duration_param(step_s).ok_or_else(|| {
        ApiError::bad_data(format!(
            "invalid parameter \"step\": cannot parse \"{step_s}\" to a valid duration"
        ))
    })?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // (end − start) / step over the limit, computed without overflow
    let max = st.engine.config().max_points_per_series;
    if strata_promql::steps_within(start, end, step, max.saturating_add(1)).is_none() {
        return Err(query_error(strata_promql::resolution_error(max)));
    }
    let engine = engine_for(st, p)?;
    let (value, annotations) =
        evaluate(st, p, engine, move |e, src| e.range(src, &parse_query_param(e, &q)?, start, end, step))
            .await?;
    Ok(Answer { value, t: end, range: true, annotations })
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn instant(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let (shaped, annotations) = eval_instant(&st, &p).await?.shaped();
    respond(shaped, annotations, st.cfg.max_response_bytes)
}

/// `GET|POST /api/v1/query_range`.
pub(crate) async fn range(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let (shaped, annotations) = eval_range(&st, &p).await?.shaped();
    respond(shaped, annotations, st.cfg.max_response_bytes)
}

/// `GET|POST /api/v1/format_query` (parsed and formatted on the blocking pool).
pub(crate) async fn format_query(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let q = p.get("query").unwrap_or("").to_owned();
    let engine = st.engine.clone();
    let pretty =
        off_runtime(&st, move || Ok(parse_query_param(&engine, &q).map_err(query_error)?.prettify())).await?;
    Ok(success(Json::String(pretty), Vec::new()))
}

/// `GET|POST /api/v1/parse_query`: the syntax tree as JSON, in Prometheus's shape (on the
/// blocking pool).
pub(crate) async fn parse_query(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let q = p.get("query").unwrap_or("").to_owned();
    let engine = st.engine.clone();
    let tree = off_runtime(&st, move || {
        let expr = parse_query_param(&engine, &q).map_err(query_error)?;
        serde_json::to_value(&expr).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(success(tree, Vec::new()))
}

/// `GET /api/v1/status/buildinfo`: Prometheus-like, with no `features` map, so Grafana
/// treats the data source as Prometheus.
pub(crate) async fn buildinfo() -> Response {
    success(
        json!({
            "version": "3.0.0",
            "revision": env!("CARGO_PKG_VERSION"),
            "branch": "strata",
            "buildUser": "strata",
            "buildDate": "",
            "goVersion": "strata",
        }),
        Vec::new(),
    )
}

/// `GET|POST /api/v1/query_exemplars`: no exemplars are stored yet, so always empty.
pub(crate) async fn exemplars(p: Params) -> Result<Response, ApiError> {
    for k in ["start", "end"] {
        if let Some(s) = p.get(k).filter(|s| !s.is_empty())
            && parse_time(s).is_none()
        {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{k}\": cannot parse \"{s}\" to a valid timestamp"
            )));
        }
    }
    Ok(success(json!([]), Vec::new()))
}

/// `GET /api/v1/metadata`: the metadata received with remote write (`metric`, `limit`,
/// `limit_per_metric`).
pub(crate) async fn metadata(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let num = |k: &str| -> Result<Option<usize>, ApiError> {
        match p.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n <= 0 => Ok(None),
                Ok(n) => Ok(Some(n as usize)),
                Err(_) => Err(ApiError::bad_data(format!("{k} must be a number"))),
            },
        }
    };
    let tenants = AppState::tenant(&p)?.metadata_keys();
    let data = st.metadata.query(
        tenants.as_deref(),
        p.get("metric").filter(|s| !s.is_empty()),
        num("limit")?,
        num("limit_per_metric")?,
    );
    Ok(success(data, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_as_prometheus_writes_them() {
        let h = strata_tsdb::FloatHistogram {
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 4.0,
            sum: 3.5,
            positive: vec![(0, 2.0), (1, 0.0), (2, 1.0)],
            ..strata_tsdb::FloatHistogram::default()
        };
        let text = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
            let mut out = Vec::new();
            f(&mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let got: Json = serde_json::from_str(&text(&|o| write_histogram(o, &h))).unwrap();
        let want = json!({
            "count": "4",
            "sum": "3.5",
            "buckets": [[3, "-0.001", "0.001", "1"], [0, "0.5", "1", "2"], [0, "2", "4", "1"]],
        });
        assert_eq!(got, want);
        let l = Labels::from_unchecked([("__name__", "h")].into_iter());
        let v = Value::Vector(vec![strata_promql::Series {
            labels: l,
            drop_name: false,
            points: Vec::new(),
            hists: vec![(1000, std::sync::Arc::new(h))],
        }]);
        let shape =
            |value, range| Answer { value, t: 1000, range, annotations: Annotations::default() }.shaped().0;
        let rendered = |s: Shaped| -> Json { serde_json::from_str(&text(&|o| render(o, &s))).unwrap() };
        let out = rendered(shape(v.clone(), false));
        assert!(respond(shape(v.clone(), false), Annotations::default(), 20).is_err());
        assert!(respond(shape(v.clone(), false), Annotations::default(), 1 << 20).is_ok());
        assert_eq!(out["result"][0]["histogram"][1], want);
        let out = rendered(shape(v, true));
        assert!(out["result"][0].get("values").is_none());
        assert_eq!(out["result"][0]["histograms"][0][1], want);
        // count, sum and bounds are written as sample values are (marshalValue)
        let tiny = strata_tsdb::FloatHistogram {
            schema: 0,
            zero_threshold: 1e-7,
            zero_count: 1e-7,
            count: 1e21,
            sum: 1.5e-7,
            positive: vec![(70, 3.0)],
            ..strata_tsdb::FloatHistogram::default()
        };
        assert_eq!(
            text(&|o| write_histogram(o, &tiny)),
            r#"{"count":"1e+21","sum":"1.5e-07","buckets":[[3,"-1e-07","1e-07","1e-07"],[0,"590295810358705700000","1.1805916207174113e+21","3"]]}"#
        );
    }
}
