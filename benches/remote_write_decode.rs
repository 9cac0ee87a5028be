//! Remote-write decode: stock prost vs Strata's zero-copy decoder, on a 10k-series request.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use strata_bench::fleet::{Fleet, FleetConfig};
use strata_proto::fast::FastDecoder;
use strata_proto::prometheus as pb;

fn request() -> Vec<u8> {
    let mut fleet = Fleet::new(FleetConfig { hosts: 10, series_per_host: 1000, ..FleetConfig::default() });
    pb::WriteRequest { timeseries: fleet.scrape(1_700_000_000_000), metadata: vec![] }.encode_to_vec()
}

fn decode(c: &mut Criterion) {
    let buf = request();
    let mut g = c.benchmark_group("remote_write_decode_10k_series");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("prost", |b| {
        b.iter(|| pb::WriteRequest::decode(buf.as_slice()).map(|r| r.timeseries.len()))
    });
    let mut d = FastDecoder::new();
    // what prost yields: every series with its samples
    g.bench_function("fast", |b| {
        b.iter(|| {
            let mut n = 0;
            d.decode(&buf, |s| n += s.samples().count(), |_| {}).map(|()| n)
        })
    });
    // what the write handler does on top: every label name and value checked as UTF-8
    // (prost checks strings while decoding)
    g.bench_function("fast+utf8", |b| {
        b.iter(|| {
            let mut n = 0;
            d.decode(
                &buf,
                |s| {
                    n += s.samples().count();
                    n += s
                        .labels
                        .iter()
                        .filter(|l| {
                            std::str::from_utf8(l.name.of(&buf)).is_ok()
                                && std::str::from_utf8(l.value.of(&buf)).is_ok()
                        })
                        .count();
                },
                |_| {},
            )
            .map(|()| n)
        })
    });
    g.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
