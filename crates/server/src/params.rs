//! Request parameters as Prometheus reads them: URL query and, for POST, the urlencoded
//! form body; timestamps as float seconds or RFC 3339.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};

use crate::tenant::Tenant;

/// Parameters of one request, in order (repeated keys such as `match[]` kept), and the
/// tenant the request reads (set by [`crate::tenant::middleware`]; none: the route has no
/// tenant, and reading data through it fails).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>, Option<Tenant>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = crate::api::ApiError;

    /// A body that cannot be read (over the request size limit) is refused, not taken as
    /// empty: a query cut off would be answered as another query.
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let tenant = req.extensions().get::<Tenant>().cloned();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            crate::api::ApiError::new(
                e.status(),
                "bad_data",
                format!("cannot read the request body: {}", e.body_text()),
            )
        })?;
        Ok(Params(Params::from_parts(query.as_deref(), &headers, &body), tenant))
    }
}

impl Params {
    /// Parameters given as pairs (the gRPC API's fields) of a request by `tenant`.
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>, tenant: Option<Tenant>) -> Self {
        Params(pairs, tenant)
    }

    /// The tenant of the request (None: its route resolves none).
    pub(crate) fn tenant(&self) -> Option<&Tenant> {
        self.1.as_ref()
    }

    fn from_parts(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            v.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            v.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        v
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect()
    }

    /// A timestamp parameter in milliseconds, `default` when absent or empty.
    pub(crate) fn time(&self, k: &str, default: i64) -> Result<i64, String> {
        match self.get(k) {
            None | Some("") => Ok(default),
            Some(s) => parse_time(s).ok_or_else(|| {
                format!("invalid parameter \"{k}\": cannot parse \"{s}\" to a valid timestamp")
            }),
        }
    }
}

/// Prometheus's timestamp forms: float seconds or RFC 3339; result in milliseconds. A
/// time outside the milliseconds an `i64` holds (Prometheus's min and max time) does not
/// parse.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        // `secs as i64` saturates, so anything past the bounds stays past them in i128
        let ms = i128::from(secs as i64) * 1000 + frac as i128;
        return i64::try_from(ms).ok();
    }
    // the extremes Prometheus itself formats for "no bound"
    if s.starts_with("-292273086-") {
        return Some(i64::MIN);
    }
    if s.starts_with("292277026") || s.starts_with("292277025") {
        return Some(i64::MAX);
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000.123"), Some(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time("-1.5"), Some(-1500));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("NaN"), None);
        assert_eq!(parse_time("-9e15"), Some(-9_000_000_000_000_000_000));
        assert_eq!(parse_time("9e15"), Some(9_000_000_000_000_000_000));
        assert_eq!(parse_time("9.3e15"), None);
        assert_eq!(parse_time("-1e300"), None);
    }
}
