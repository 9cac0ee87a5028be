//! Tenants (`--auth.multitenancy-enabled`, Mimir's flag and header). With it, every write
//! and read names a tenant: `X-Scope-OrgID`, or the user the request authenticated as
//! (so a Grafana data source with basic auth needs no header). A tenant's series carry the
//! label `__tenant_id__`, set on every write whatever the sender wrote, and every read is
//! restricted to it: each selector of a query, each `match[]` of the series and label APIs
//! gets a matcher on it, and the label is removed from what is answered. The series hash
//! includes it, so a tenant's series spread over every shard.
//!
//! The tenant `anonymous` (Mimir's name for "no tenant") is the series without the label:
//! what was written before multitenancy was turned on. Without the flag nothing is
//! restricted (one default tenant: today's behaviour, no migration).
//!
//! `X-Scope-OrgID: a|b` reads several tenants at once (Mimir's query federation): their
//! series keep `__tenant_id__` (`anonymous` added where absent) so they do not collide.
//! An authenticated user may name in the header only itself, unless it is one of the
//! configured operators.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_api::ReadView;
use strata_promql::{EvalAt, Partials, QueryError, SelectHints, Source};
use strata_tsdb::{Labels, MatchOp, Matcher, SeriesData};

pub use strata_tsdb::TENANT_LABEL;

/// The tenant of series without [`TENANT_LABEL`].
pub const ANONYMOUS: &str = "anonymous";

/// The header naming the tenant (Mimir's).
const HEADER: &str = "X-Scope-OrgID";

/// Longest tenant id (Mimir's limit).
const MAX_TENANT_LEN: usize = 150;

/// Who owns the data of a request.
#[derive(Debug, Clone, Default)]
pub struct TenancyConfig {
    /// Every write and read names a tenant (`--auth.multitenancy-enabled`). Default false.
    pub enabled: bool,
    /// Authenticated users who may name any tenant, or several (`a|b`), in `X-Scope-OrgID`
    /// (`--auth.tenant-operators`). Default none.
    pub operators: Vec<String>,
}

/// The user a request authenticated as (basic auth or a bearer token).
#[derive(Debug, Clone)]
pub(crate) struct AuthenticatedUser(pub(crate) String);

/// The tenants a request reads or writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tenant {
    /// Tenancy is off: everything.
    All,
    /// One tenant.
    One(String),
    /// Several (federation, reads only), sorted.
    Many(Vec<String>),
}

/// Mimir's rules for a tenant id, with its messages.
fn valid_tenant_id(s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if let Some(c) = s.chars().find(|c| !ok(*c)) {
        return Err(format!("tenant ID '{s}' contains unsupported character '{c}'"));
    }
    if s.len() > MAX_TENANT_LEN {
        return Err(format!("tenant ID is too long: max {MAX_TENANT_LEN} characters"));
    }
    if s == "." || s == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if s.is_empty() {
        return Err("no org id".into());
    }
    Ok(())
}

/// The tenant of a request: `header` (X-Scope-OrgID) and the authenticated `user`.
fn resolve(
    cfg: &TenancyConfig,
    header: Option<&str>,
    user: Option<&str>,
) -> Result<Tenant, (StatusCode, String)> {
    let named = match (header, user) {
        (None, None) => return Err((StatusCode::UNAUTHORIZED, "no org id".into())),
        (None, Some(u)) => u,
        (Some(h), _) => h,
    };
    let mut ids: Vec<String> = named.split('|').map(str::to_owned).collect();
    for id in &ids {
        valid_tenant_id(id).map_err(|e| (StatusCode::UNAUTHORIZED, e))?;
    }
    if let Some(u) = user
        && !(ids.len() == 1 && ids[0] == u)
        && !cfg.operators.iter().any(|o| o == u)
    {
        return Err((StatusCode::FORBIDDEN, format!("user {u:?} may not use tenant {named:?}")));
    }
    ids.sort();
    ids.dedup();
    Ok(if ids.len() == 1 { Tenant::One(ids.remove(0)) } else { Tenant::Many(ids) })
}

/// The middleware of the routes that read or write data: resolves the tenant (401 "no org
/// id" without one, as Mimir) and hands it to the handlers.
pub(crate) async fn middleware(
    State(cfg): State<Arc<TenancyConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    let tenant = if cfg.enabled {
        let header = req.headers().get(HEADER).map(|v| v.to_str().unwrap_or("\u{0}"));
        let user = req.extensions().get::<AuthenticatedUser>().map(|u| u.0.as_str());
        match resolve(&cfg, header, user) {
            Ok(t) => t,
            Err((code, msg)) => {
                return crate::web_auth::refusal(crate::web_auth::is_grpc(req.headers()), code, &msg);
            }
        }
    } else {
        Tenant::All
    };
    req.extensions_mut().insert(tenant);
    next.run(req).await
}

async fn only_default_tenant(req: Request, next: Next) -> Response {
    // the default tenant's data are the series without the label
    match req.extensions().get::<Tenant>().map(Tenant::write_label) {
        Some(Ok(None)) => next.run(req).await,
        _ => {
            (StatusCode::FORBIDDEN, format!("only the tenant {ANONYMOUS} owns this node's scrape targets\n"))
                .into_response()
        }
    }
}

/// `routes` over data of the default tenant ([`ANONYMOUS`]: what the node scrapes), closed
/// to the other tenants (403).
pub fn default_tenant_only(routes: axum::Router, cfg: &TenancyConfig) -> axum::Router {
    routes
        .layer(axum::middleware::from_fn(only_default_tenant))
        .layer(axum::middleware::from_fn_with_state(Arc::new(cfg.clone()), middleware))
}

/// The value of [`TENANT_LABEL`] the series of tenant `id` carry ("": none, [`ANONYMOUS`]'s).
fn stored(id: &str) -> &str {
    if id == ANONYMOUS { "" } else { id }
}

impl Tenant {
    /// The matcher every read gets; None: no restriction.
    pub(crate) fn matcher(&self) -> Option<Matcher> {
        let m = match self {
            Tenant::All => return None,
            Tenant::One(t) => Matcher::new(MatchOp::Equal, TENANT_LABEL, stored(t)),
            Tenant::Many(ts) => {
                // ids hold no regex syntax but . * ( ): escaped
                let alts: Vec<String> = ts.iter().map(|t| regex_escape(stored(t))).collect();
                Matcher::new(MatchOp::Regex, TENANT_LABEL, alts.join("|"))
            }
        };
        m.ok()
    }

    /// The value of [`TENANT_LABEL`] a write by this tenant stores (None: no label).
    pub(crate) fn write_label(&self) -> Result<Option<&str>, String> {
        match self {
            Tenant::All => Ok(None),
            Tenant::One(t) => Ok(Some(stored(t)).filter(|v| !v.is_empty())),
            Tenant::Many(_) => Err("multiple org IDs present".into()),
        }
    }

    /// The tenant's name for limits and metrics ([`ANONYMOUS`] without tenants; `a|b` for
    /// several).
    pub(crate) fn key(&self) -> String {
        match self {
            Tenant::All => ANONYMOUS.to_owned(),
            Tenant::One(t) => t.clone(),
            Tenant::Many(ts) => ts.join("|"),
        }
    }

    /// The keys of this tenant's metadata in the [`strata_api::MetadataStore`] ("" the
    /// default tenant's); None: every tenant's.
    pub(crate) fn metadata_keys(&self) -> Option<Vec<&str>> {
        match self {
            Tenant::All => None,
            Tenant::One(t) => Some(vec![stored(t)]),
            Tenant::Many(ts) => Some(ts.iter().map(|t| stored(t)).collect()),
        }
    }

    /// `labels` as this tenant sees them.
    fn shown(&self, labels: Labels) -> Labels {
        match self {
            Tenant::All => labels,
            Tenant::One(_) => {
                if labels.get(TENANT_LABEL).is_none() {
                    return labels;
                }
                Labels::from_unchecked(
                    labels
                        .iter()
                        .filter(|l| l.name != TENANT_LABEL)
                        .map(|l| (l.name.as_str(), l.value.as_str())),
                )
            }
            Tenant::Many(_) => {
                if labels.get(TENANT_LABEL).is_some() {
                    return labels;
                }
                Labels::from_unchecked(
                    labels
                        .iter()
                        .map(|l| (l.name.as_str(), l.value.as_str()))
                        .chain(std::iter::once((TENANT_LABEL, ANONYMOUS))),
                )
            }
        }
    }

    /// A read view of `inner` restricted to this tenant, and to `max_series` series selected
    /// per query (0: any number).
    pub(crate) fn scope(&self, inner: Box<dyn ReadView>, max_series: usize) -> Box<dyn ReadView> {
        let matcher = self.matcher();
        if matcher.is_none() && max_series == 0 {
            return inner;
        }
        Box::new(Scoped { inner, tenant: self.clone(), matcher, max_series, selected: AtomicUsize::new(0) })
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if ".*()".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A view that sees one tenant's series (or several, labelled), at most `max_series` of
/// them per query.
struct Scoped {
    inner: Box<dyn ReadView>,
    tenant: Tenant,
    matcher: Option<Matcher>,
    max_series: usize,
    selected: AtomicUsize,
}

impl Scoped {
    fn with(&self, matchers: &[Matcher]) -> Vec<Matcher> {
        matchers.iter().cloned().chain(self.matcher.clone()).collect()
    }
}

impl Source for Scoped {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> strata_promql::Result<Vec<SeriesData>> {
        let mut v = self.inner.select(&self.with(matchers), hints)?;
        let selected = self.selected.fetch_add(v.len(), Ordering::Relaxed) + v.len();
        if self.max_series > 0 && selected > self.max_series {
            return Err(QueryError::Execution(format!(
                "the query exceeded the maximum number of series (limit: {} series) (err-mimir-max-series-per-query)",
                self.max_series
            )));
        }
        for s in &mut v {
            s.labels = self.tenant.shown(std::mem::take(&mut s.labels));
        }
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(v)
    }

    fn pushdown(
        &self,
        exprs: &[promql_parser::parser::Expr],
        at: &EvalAt,
    ) -> Option<strata_promql::Result<Partials>> {
        let Some(matcher) = &self.matcher else { return self.inner.pushdown(exprs, at) };
        let mut scoped = exprs.to_vec();
        for e in &mut scoped {
            if let Err(e) = strata_promql::restrict(e, matcher) {
                return Some(Err(QueryError::Execution(e)));
            }
        }
        let mut parts = match self.inner.pushdown(&scoped, at)? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        for results in &mut parts.results {
            for s in results.iter_mut() {
                s.labels = self.tenant.shown(std::mem::take(&mut s.labels));
            }
        }
        Some(Ok(parts))
    }
}

impl ReadView for Scoped {
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, QueryError> {
        let mut v: Vec<Labels> = self
            .inner
            .series(&self.with(matchers), start, end)?
            .into_iter()
            .map(|l| self.tenant.shown(l))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, QueryError> {
        let mut v = self.inner.label_names(&self.with(matchers), start, end)?;
        match &self.tenant {
            Tenant::Many(ts) if ts.iter().any(|t| t == ANONYMOUS) && !v.iter().any(|n| n == TENANT_LABEL) => {
                v.push(TENANT_LABEL.into());
                v.sort();
            }
            Tenant::Many(_) => {}
            _ => v.retain(|n| n != TENANT_LABEL),
        }
        Ok(v)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, QueryError> {
        if name == TENANT_LABEL {
            let Tenant::Many(ts) = &self.tenant else { return Ok(Vec::new()) };
            // the tenants asked for that hold series
            let mut v = Vec::new();
            for t in ts {
                let one = Tenant::One(t.clone()).matcher().into_iter();
                let m: Vec<Matcher> = matchers.iter().cloned().chain(one).collect();
                if !self.inner.label_names(&m, start, end)?.is_empty() {
                    v.push(t.clone());
                }
            }
            return Ok(v);
        }
        self.inner.label_values(name, &self.with(matchers), start, end)
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(operators: &[&str]) -> TenancyConfig {
        TenancyConfig { enabled: true, operators: operators.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn tenants_come_from_the_header_or_the_user() {
        let c = cfg(&["ops"]);
        assert_eq!(resolve(&c, None, None), Err((StatusCode::UNAUTHORIZED, "no org id".into())));
        assert_eq!(resolve(&c, Some("team-a"), None), Ok(Tenant::One("team-a".into())));
        assert_eq!(resolve(&c, None, Some("team-b")), Ok(Tenant::One("team-b".into())));
        assert_eq!(resolve(&c, Some("team-b"), Some("team-b")), Ok(Tenant::One("team-b".into())));
        assert_eq!(resolve(&c, Some("team-a"), Some("team-b")).unwrap_err().0, StatusCode::FORBIDDEN);
        assert_eq!(resolve(&c, Some("b|a|b"), Some("ops")), Ok(Tenant::Many(vec!["a".into(), "b".into()])));
        assert_eq!(
            resolve(&c, Some("a/b"), None),
            Err((StatusCode::UNAUTHORIZED, "tenant ID 'a/b' contains unsupported character '/'".into()))
        );
        assert!(resolve(&c, Some(".."), None).is_err());
        assert!(resolve(&c, Some(&"x".repeat(151)), None).is_err());
    }

    #[test]
    fn matchers_and_labels_of_tenants() {
        let m = |t: Tenant| t.matcher().map(|m| (m.op, m.value));
        assert_eq!(m(Tenant::All), None);
        assert_eq!(m(Tenant::One(ANONYMOUS.into())), Some((MatchOp::Equal, String::new())));
        assert_eq!(
            m(Tenant::Many(vec!["a.b".into(), ANONYMOUS.into()])),
            Some((MatchOp::Regex, r"a\.b|".into()))
        );
        let l = Labels::from_pairs([("__name__", "up"), (TENANT_LABEL, "a")]).unwrap();
        assert_eq!(Tenant::One("a".into()).shown(l.clone()).get(TENANT_LABEL), None);
        assert_eq!(Tenant::Many(vec!["a".into()]).shown(l).get(TENANT_LABEL), Some("a"));
        let anon = Labels::from_pairs([("__name__", "up")]).unwrap();
        assert_eq!(Tenant::Many(vec![ANONYMOUS.into()]).shown(anon).get(TENANT_LABEL), Some(ANONYMOUS));
    }
}
