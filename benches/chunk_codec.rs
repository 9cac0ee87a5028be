//! Chunk encode/decode throughput on node_exporter-shaped value streams.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_bench::workload::{Values, host_series};
use strata_tsdb::chunk::{XorAppender, decode, encode_packed};

fn streams() -> Vec<Vec<(i64, f64)>> {
    let specs = host_series(200);
    let mut vals = Values::new(&specs, 3);
    let mut out = vec![Vec::with_capacity(480); specs.len()];
    for step in 0..480i64 {
        for (i, &v) in vals.step(&specs, 15.0).iter().enumerate() {
            out[i].push((1_700_000_000_000 + step * 15_000 + (step % 3), v));
        }
    }
    out
}

fn codec(c: &mut Criterion) {
    let s = streams();
    let n: usize = s.iter().map(Vec::len).sum();
    let packed: Vec<Vec<u8>> = s.iter().map(|x| encode_packed(x)).collect();
    let bytes: usize = packed.iter().map(Vec::len).sum();
    println!("packed: {:.3} bytes/sample over {n} samples", bytes as f64 / n as f64);
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("xor_append", |b| {
        b.iter(|| {
            s.iter()
                .map(|x| {
                    let mut a = XorAppender::new();
                    x.iter().for_each(|&(t, v)| a.append(t, v));
                    a.size_bytes()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("packed_encode", |b| b.iter(|| s.iter().map(|x| encode_packed(x).len()).sum::<usize>()));
    g.bench_function("packed_decode", |b| {
        b.iter(|| packed.iter().map(|p| decode(p).map_or(0, |v| v.len())).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
