//! The gRPC query API (`proto/strata/query.proto`), served on the HTTP port next to the
//! JSON API, with server reflection. Every request is turned into the HTTP API's
//! parameters and answered by the same code, so semantics and error texts are the same;
//! only the rendering differs (protobuf messages, streamed in batches of series).

use std::pin::Pin;

use futures_util::Stream;
use strata_proto::query::query_service_server::{QueryService, QueryServiceServer};
use strata_proto::query::{
    Bucket, HistogramSample, Label, LabelNamesRequest, LabelValuesRequest, LabelsResponse, QueryRangeRequest,
    QueryRequest, QueryResponse, Sample, Series, SeriesRequest, SeriesResponse,
};
use strata_tsdb::{FloatHistogram, Labels};
use tonic::{Request, Response, Status};

use crate::AppState;
use crate::api::ApiError;
use crate::params::Params;
use crate::query::{Answer, Shaped, populated_buckets};

/// Series per streamed message.
const BATCH: usize = 256;

/// A response stream of prepared messages.
type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn stream<T: Send + 'static>(items: Vec<T>) -> Response<Replies<T>> {
    Response::new(Box::pin(futures_util::stream::iter(items.into_iter().map(Ok))))
}

/// The gRPC routes (query API and reflection), to merge with the HTTP ones.
pub(crate) fn routes(st: AppState) -> axum::Router {
    let mut routes = tonic::service::Routes::new(QueryServiceServer::new(Api(st)));
    // both reflection versions: grpcurl asks v1 first, older clients only know v1alpha
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(strata_proto::query::FILE_DESCRIPTOR_SET)
    };
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
    }
    routes.prepare().into_axum_router()
}

struct Api(AppState);

/// Parameters as the HTTP API names them; empty values are left out.
fn params<T>(req: &Request<T>, pairs: &[(&str, &str)], matches: &[String]) -> Params {
    let mut v: Vec<(String, String)> =
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.extend(matches.iter().map(|m| ("match[]".to_owned(), m.clone())));
    Params::from_pairs(v, req.extensions().get::<crate::tenant::Tenant>().cloned())
}

fn limit(n: u64) -> String {
    if n == 0 { String::new() } else { n.to_string() }
}

fn labels(l: &Labels) -> Vec<Label> {
    l.iter().map(|x| Label { name: x.name.clone(), value: x.value.clone() }).collect()
}

fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
    points.iter().map(|&(t, v)| Sample { timestamp_ms: t, value: v }).collect()
}

fn histogram(t: i64, h: &FloatHistogram) -> HistogramSample {
    let buckets = populated_buckets(h)
        .map(|(boundaries, b)| Bucket { boundaries, lower: b.lower, upper: b.upper, count: b.count })
        .collect();
    HistogramSample { timestamp_ms: t, count: h.count, sum: h.sum, buckets }
}

/// `items` in messages of at most `size` (at least one message, for an empty answer), the
/// last one also carrying what `finish` adds (the annotations).
fn batched<T, M>(
    items: Vec<T>,
    size: usize,
    message: impl Fn(Vec<T>) -> M,
    finish: impl FnOnce(&mut M),
) -> Vec<M> {
    let mut out: Vec<M> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() || out.is_empty() {
        out.push(message(it.by_ref().take(size).collect()));
    }
    if let Some(last) = out.last_mut() {
        finish(last);
    }
    out
}

/// A query's answer as messages: the result type in each, series in batches, the
/// annotations in the last (the shapes of the JSON API).
fn answer_messages(a: Answer) -> Vec<QueryResponse> {
    let (shaped, annotations) = a.shaped();
    let (kind, mut out) = match shaped {
        Shaped::Scalar(t, v) => {
            let scalar = Some(Sample { timestamp_ms: t, value: v });
            ("scalar", vec![QueryResponse { scalar, ..Default::default() }])
        }
        Shaped::Str(t, s) => {
            ("string", vec![QueryResponse { string_value: s, string_timestamp_ms: t, ..Default::default() }])
        }
        Shaped::Series(kind, series) => {
            let series = series
                .into_iter()
                .map(|s| Series {
                    labels: labels(&s.labels),
                    samples: samples(&s.points),
                    histograms: s.hists.iter().map(|(t, h)| histogram(*t, h)).collect(),
                })
                .collect();
            let messages =
                batched(series, BATCH, |series| QueryResponse { series, ..Default::default() }, |_| {});
            (kind, messages)
        }
    };
    for m in &mut out {
        m.result_type = kind.into();
    }
    if let Some(last) = out.last_mut() {
        last.warnings = annotations.warnings;
        last.infos = annotations.infos;
    }
    out
}

/// Names or values in batches, the warnings in the last message.
fn values_messages(values: Vec<String>, warnings: Vec<String>) -> Vec<LabelsResponse> {
    batched(
        values,
        BATCH * 16,
        |values| LabelsResponse { values, warnings: Vec::new() },
        |last| last.warnings = warnings,
    )
}

#[tonic::async_trait]
impl QueryService for Api {
    type QueryStream = Replies<QueryResponse>;
    type QueryRangeStream = Replies<QueryResponse>;
    type SeriesStream = Replies<SeriesResponse>;
    type LabelNamesStream = Replies<LabelsResponse>;
    type LabelValuesStream = Replies<LabelsResponse>;

    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<Self::QueryStream>, Status> {
        let r = req.get_ref();
        let partial = if r.partial_response { "true" } else { "" };
        let p = params(
            &req,
            &[("query", &r.query), ("time", &r.time), ("timeout", &r.timeout), ("partial_response", partial)],
            &[],
        );
        let a = crate::query::eval_instant(&self.0, &p).await.map_err(ApiError::into_status)?;
        Ok(stream(answer_messages(a)))
    }

    async fn query_range(
        &self,
        req: Request<QueryRangeRequest>,
    ) -> Result<Response<Self::QueryRangeStream>, Status> {
        let r = req.get_ref();
        let partial = if r.partial_response { "true" } else { "" };
        let p = params(
            &req,
            &[
                ("query", &r.query),
                ("start", &r.start),
                ("end", &r.end),
                ("step", &r.step),
                ("timeout", &r.timeout),
                ("partial_response", partial),
            ],
            &[],
        );
        let a = crate::query::eval_range(&self.0, &p).await.map_err(ApiError::into_status)?;
        Ok(stream(answer_messages(a)))
    }

    async fn series(&self, req: Request<SeriesRequest>) -> Result<Response<Self::SeriesStream>, Status> {
        let r = req.get_ref();
        let l = limit(r.limit);
        let p = params(&req, &[("start", &r.start), ("end", &r.end), ("limit", &l)], &r.r#match);
        let (found, warnings) = crate::api::find_series(&self.0, &p).await.map_err(ApiError::into_status)?;
        let series = found.iter().map(|l| Series { labels: labels(l), ..Default::default() }).collect();
        let out = batched(
            series,
            BATCH,
            |series| SeriesResponse { series, warnings: Vec::new() },
            |last| last.warnings = warnings,
        );
        Ok(stream(out))
    }

    async fn label_names(
        &self,
        req: Request<LabelNamesRequest>,
    ) -> Result<Response<Self::LabelNamesStream>, Status> {
        let r = req.get_ref();
        let l = limit(r.limit);
        let p = params(&req, &[("start", &r.start), ("end", &r.end), ("limit", &l)], &r.r#match);
        let (v, w) = crate::api::find_label_names(&self.0, &p).await.map_err(ApiError::into_status)?;
        Ok(stream(values_messages(v, w)))
    }

    async fn label_values(
        &self,
        req: Request<LabelValuesRequest>,
    ) -> Result<Response<Self::LabelValuesStream>, Status> {
        let r = req.get_ref();
        let l = limit(r.limit);
        let p = params(&req, &[("start", &r.start), ("end", &r.end), ("limit", &l)], &r.r#match);
        let (v, w) =
            crate::api::find_label_values(&self.0, &p, &r.name).await.map_err(ApiError::into_status)?;
        Ok(stream(values_messages(v, w)))
    }
}
