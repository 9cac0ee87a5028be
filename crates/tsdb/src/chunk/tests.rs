use proptest::prelude::*;

use super::*;

fn check_round_trip(samples: &[Sample]) {
    let mut x = XorAppender::new();
    for &(t, v) in samples {
        x.append(t, v);
    }
    let mut direct = Vec::new();
    x.samples_into(&mut direct);
    assert_eq!(direct.len(), samples.len());
    assert!(direct.iter().zip(samples).all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits()));
    for bytes in [x.to_bytes(), encode_packed(samples)] {
        let got = decode(&bytes).expect("decodes");
        assert_eq!(got.len(), samples.len());
        for (a, b) in got.iter().zip(samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value {} vs {}", a.1, b.1);
        }
    }
}

fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::from_bits(0x7ff0_0000_0000_0002)), // Prometheus stale marker
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(1e300),
        Just(-1e-300),
        (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 100.0),
        (0u64..u64::MAX).prop_map(f64::from_bits),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_sequence_round_trips(
        start in any::<i64>(),
        steps in prop::collection::vec((0i64..1_000_000_000, any_float()), 0..300),
        negative in any::<bool>(),
    ) {
        let mut t = start / 4;
        let mut samples = Vec::new();
        for (step, v) in steps {
            samples.push((t, v));
            t = t.saturating_add(if negative { step / 7 } else { step });
        }
        check_round_trip(&samples);
    }

    #[test]
    fn decimal_counters_round_trip(
        incs in prop::collection::vec(0i64..100_000, 1..500),
        exp in 0i32..6,
    ) {
        let p = 10f64.powi(exp);
        let mut m = 0i64;
        let samples: Vec<Sample> = incs.iter().enumerate().map(|(i, inc)| {
            m += inc;
            (i as i64 * 15_000 + (inc % 3), m as f64 / p)
        }).collect();
        check_round_trip(&samples);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn regular_series_are_small() {
    let counter: Vec<Sample> =
        (0..480).map(|i| (1_700_000_000_000 + i * 15_000, i as f64 * 1234.0)).collect();
    let packed = encode_packed(&counter);
    assert!(packed.len() < 2 * 480 / 8 + 40, "regular counter took {} bytes", packed.len());
    let gauge: Vec<Sample> = (0..480).map(|i| (i * 15_000, 42.5)).collect();
    assert!(encode_packed(&gauge).len() < 480 / 8 + 30);
    check_round_trip(&counter);
    check_round_trip(&[]);
    check_round_trip(&[(-5, -0.0)]);
}

#[test]
fn sort_dedup_keeps_last_written() {
    let mut s = vec![(3, 1.0), (1, 1.0), (3, 2.0), (2, 0.0)];
    sort_dedup(&mut s);
    assert_eq!(s, vec![(1, 1.0), (2, 0.0), (3, 2.0)]);
}
