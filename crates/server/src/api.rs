//! Series and label endpoints with Prometheus's JSON envelope.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use strata_promql::QueryError;
use strata_tsdb::{Labels, Matcher};

use strata_api::ReadView;

use crate::AppState;
use crate::params::Params;
use strata_promql::parse_selector;

/// An API error in Prometheus's envelope.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    msg: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, msg: impl Into<String>) -> Self {
        ApiError { status, kind, msg: msg.into() }
    }

    pub(crate) fn bad_data(msg: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, kind: "bad_data", msg: msg.into() }
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, kind: "internal", msg: msg.into() }
    }

    pub(crate) fn unavailable(msg: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, kind: "unavailable", msg: msg.into() }
    }

    /// The gRPC status of this error: the same text, a code for the `errorType`, and the
    /// `errorType` itself in the `strata-error-type` metadata.
    pub(crate) fn into_status(self) -> tonic::Status {
        use tonic::Code;
        let code = match self.kind {
            "bad_data" => Code::InvalidArgument,
            "execution" => Code::FailedPrecondition,
            "timeout" => Code::DeadlineExceeded,
            "unavailable" => Code::Unavailable,
            _ => Code::Internal,
        };
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("strata-error-type", tonic::metadata::MetadataValue::from_static(self.kind));
        tonic::Status::with_metadata(code, self.msg, md)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::gojson::response(
            self.status,
            &json!({"status": "error", "errorType": self.kind, "error": self.msg}),
        )
    }
}

pub(crate) fn success(data: Value, warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    crate::gojson::response(axum::http::StatusCode::OK, &body)
}

/// Common parameters of the metadata endpoints.
struct Query {
    sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    limit: usize,
}

fn query(p: &Params, require_match: bool) -> Result<Query, ApiError> {
    let start = p.time("start", i64::MIN).map_err(ApiError::bad_data)?;
    let end = p.time("end", i64::MAX).map_err(ApiError::bad_data)?;
    if end < start {
        return Err(ApiError::bad_data("end timestamp must not be before start time"));
    }
    let limit = match p.get("limit") {
        None | Some("") => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::bad_data(format!("cannot parse \"{s}\" to a valid limit")))?,
    };
    let matches = p.all("match[]");
    if require_match && matches.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let mut sets = Vec::new();
    for m in matches {
        let parsed = parse_selector(m).map_err(ApiError::bad_data)?;
        if parsed.iter().any(|set| set.iter().all(|m| m.matches(""))) {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"match[]\": {m}: vector selector must contain at least one non-empty matcher"
            )));
        }
        sets.extend(parsed);
    }
    Ok(Query { sets, start, end, limit })
}

fn truncate<T>(mut v: Vec<T>, limit: usize, warnings: &mut Vec<String>) -> Vec<T> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push("results truncated due to limit".into());
    }
    v
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(e.to_string()))
}

fn label_object(l: &Labels) -> Value {
    Value::Object(l.iter().map(|x| (x.name.clone(), Value::String(x.value.clone()))).collect::<Map<_, _>>())
}

/// What a metadata lookup returns.
pub(crate) type Found<T> = (Vec<T>, Vec<String>);

/// The shared shape of the metadata endpoints: parse parameters, evaluate `find` for
/// each `match[]` alternative (or once with no matchers), union, sort, limit; the values
/// found and the warnings. Lookups take a place among the concurrent queries and fail with
/// 503 past the query timeout.
pub(crate) async fn lookup<T>(
    st: &AppState,
    p: &Params,
    require_match: bool,
    find: impl Fn(&dyn ReadView, &[Matcher], i64, i64) -> Result<Vec<T>, QueryError> + Send + 'static,
) -> Result<Found<T>, ApiError>
where
    T: Ord + Send + 'static,
{
    let qy = query(p, require_match)?;
    let (view, _cancel) = st.view(p, &st.engine)?;
    let _permits = st.query_permits(p).await?;
    let timeout = st.engine.config().timeout;
    let job = blocking(move || {
        let found = if qy.sets.is_empty() {
            find(&*view, &[], qy.start, qy.end)
        } else {
            let mut v: Vec<T> = Vec::new();
            for set in &qy.sets {
                match find(&*view, set, qy.start, qy.end) {
                    Ok(x) => v.extend(x),
                    Err(e) => return (Err(e), view.warnings()),
                }
            }
            v.sort();
            v.dedup();
            Ok(v)
        };
        (found, view.warnings())
    });
    let (found, mut warnings) = tokio::time::timeout(timeout, job)
        .await
        .map_err(|_| crate::query::query_error(QueryError::Timeout("query execution")))??;
    let found = found.map_err(crate::query::query_error)?;
    Ok((truncate(found, qy.limit, &mut warnings), warnings))
}

/// Series lookup (`/api/v1/series`, gRPC `Series`).
pub(crate) async fn find_series(st: &AppState, p: &Params) -> Result<Found<Labels>, ApiError> {
    lookup(st, p, true, |v, m, s, e| v.series(m, s, e)).await
}

/// Label names lookup (`/api/v1/labels`, gRPC `LabelNames`).
pub(crate) async fn find_label_names(st: &AppState, p: &Params) -> Result<Found<String>, ApiError> {
    lookup(st, p, false, |v, m, s, e| v.label_names(m, s, e)).await
}

/// Label values lookup (`/api/v1/label/<name>/values`, gRPC `LabelValues`); `name` as in
/// the URL path (`U__` escaping allowed).
pub(crate) async fn find_label_values(
    st: &AppState,
    p: &Params,
    name: &str,
) -> Result<Found<String>, ApiError> {
    let name =
        decode_label_name(name).ok_or_else(|| ApiError::bad_data(format!("invalid label name: {name:?}")))?;
    lookup(st, p, false, move |v, m, s, e| v.label_values(&name, m, s, e)).await
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let (v, w) = find_series(&st, &p).await?;
    Ok(success(Value::Array(v.iter().map(label_object).collect()), w))
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let (v, w) = find_label_names(&st, &p).await?;
    Ok(success(json!(v), w))
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let (v, w) = find_label_values(&st, &p, &name).await?;
    Ok(success(json!(v), w))
}

/// Label names in the path: plain, or Prometheus 3's `U__` escaping for UTF-8 names
/// (`_` followed by a hex code point and `_`, `__` for an underscore).
fn decode_label_name(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix("U__") else {
        return (!s.is_empty()).then(|| s.to_owned());
    };
    let mut out = String::new();
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'_') {
            it.next();
            out.push('_');
            continue;
        }
        let hex: String = it.by_ref().take_while(|&c| c != '_').collect();
        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utf8_label_names_in_paths() {
        assert_eq!(super::decode_label_name("job").as_deref(), Some("job"));
        assert_eq!(super::decode_label_name("U__a_2e_b__c").as_deref(), Some("a.b_c"));
        assert_eq!(super::decode_label_name("U__a_zz_"), None);
    }
}
