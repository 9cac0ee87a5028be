//! Series and label endpoints with Prometheus's JSON envelope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use strata_tsdb::{Db, Labels, Matcher};

use crate::AppState;
use crate::params::Params;
use crate::selector::parse_selector;

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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"status": "error", "errorType": self.kind, "error": self.msg})))
            .into_response()
    }
}

pub(crate) fn success(data: Value, warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Json(body).into_response()
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

/// The shared shape of the metadata endpoints: parse parameters, evaluate `find` for
/// each `match[]` alternative (or once with no matchers), union, sort, limit.
async fn metadata<T>(
    st: AppState,
    p: Params,
    require_match: bool,
    find: impl Fn(&Db, &[Matcher], i64, i64) -> Vec<T> + Send + 'static,
    render: impl Fn(Vec<T>) -> Value,
) -> Result<Response, ApiError>
where
    T: Ord + Send + 'static,
{
    let qy = query(&p, require_match)?;
    let db = st.db()?;
    let found = blocking(move || {
        if qy.sets.is_empty() {
            return find(&db, &[], qy.start, qy.end);
        }
        let mut v: Vec<T> = qy.sets.iter().flat_map(|set| find(&db, set, qy.start, qy.end)).collect();
        v.sort();
        v.dedup();
        v
    })
    .await?;
    let mut warnings = Vec::new();
    let found = truncate(found, qy.limit, &mut warnings);
    Ok(success(render(found), warnings))
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    metadata(
        st,
        p,
        true,
        |db, m, s, e| db.series(m, s, e),
        |v: Vec<Labels>| Value::Array(v.iter().map(label_object).collect()),
    )
    .await
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    metadata(st, p, false, |db, m, s, e| db.label_names(m, s, e), |v: Vec<String>| json!(v)).await
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(st): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let name = decode_label_name(&name)
        .ok_or_else(|| ApiError::bad_data(format!("invalid label name: {name:?}")))?;
    metadata(st, p, false, move |db, m, s, e| db.label_values(&name, m, s, e), |v: Vec<String>| json!(v))
        .await
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
