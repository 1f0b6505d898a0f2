//! The collector's hot path, per 1000-entry page: parse, identify (dedup ids), store, render in
//! each format, append to the file sink. `cargo bench`; results in docs/performance.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::value::RawValue;
use workday_collector::config::Format;
use workday_collector::normalize;
use workday_collector::sim::dataset::{Dataset, DatasetSpec};
use workday_collector::sink::FileSink;
use workday_collector::store::{NewEvent, Store, StoredEvent};
use workday_collector::workday::wire;

const PAGE: usize = 1000;
const T0: i64 = 1_796_000_000_000;

/// A realistic 1000-entry page body, as the simulator renders Workday's.
fn page_body() -> Vec<u8> {
    let spec = DatasetSpec {
        seed: 9,
        start_ms: T0,
        end_ms: T0 + 3_600_000,
        events: PAGE as u64,
        busy_hour: None,
        twins_per_mille: 0,
        late_per_mille: 0,
    };
    let d = Dataset::generate("acme", &spec);
    let entries: Vec<String> = d.events.iter().take(PAGE).map(|e| d.render(e)).collect();
    format!("{{\"total\":{PAGE},\"data\":[{}]}}", entries.join(",")).into_bytes()
}

fn entries(body: &[u8]) -> Vec<Box<RawValue>> {
    wire::parse_page(body).expect("page").entries
}

fn stored(entries: &[Box<RawValue>]) -> Vec<StoredEvent> {
    let ids = wire::identify("acme", entries);
    entries
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (raw, ident))| StoredEvent {
            seq: i as i64 + 1,
            id: ident.id,
            tenant: "acme".into(),
            collected_at_ms: T0 + 7_200_000,
            raw: raw.get().to_string(),
        })
        .collect()
}

fn hot_path(c: &mut Criterion) {
    let body = page_body();
    let raws = entries(&body);
    let events = stored(&raws);
    let mut g = c.benchmark_group("page_of_1000");
    g.throughput(Throughput::Elements(PAGE as u64));

    g.bench_function("parse_page", |b| b.iter(|| wire::parse_page(&body)));
    g.bench_function("identify", |b| b.iter(|| wire::identify("acme", &raws)));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    store.init_checkpoint("acme", T0, T0).expect("checkpoint");
    let ids = wire::identify("acme", &raws);
    let mut round = 0u64;
    g.bench_function("store_window", |b| {
        b.iter_batched(
            || {
                // New ids each round, so every insert is a real one (not a duplicate), an hour
                // later each round, as windows of a backfill are.
                round += 1;
                raws.iter()
                    .zip(&ids)
                    .map(|(raw, ident)| {
                        let mut id = ident.id;
                        id[..8].copy_from_slice(&round.to_le_bytes());
                        NewEvent {
                            id,
                            request_time_ms: ident
                                .request_time_ms
                                .map(|t| t + round as i64 * 3_600_000),
                            raw: raw.get().to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                store
                    .insert_window("acme", &batch, T0 + 7_200_000, Some(T0 + 3_600_000))
                    .expect("insert")
            },
            BatchSize::LargeInput,
        )
    });

    for (name, format) in [
        ("raw", Format::Raw),
        ("ocsf", Format::Ocsf),
        ("ecs", Format::Ecs),
    ] {
        g.bench_function(format!("render_{name}"), |b| {
            let mut out = Vec::with_capacity(2 << 20);
            b.iter(|| {
                out.clear();
                for e in &events {
                    normalize::render(format, e, &mut out);
                    out.push(b'\n');
                }
                out.len()
            })
        });
    }

    let mut lines = Vec::new();
    for e in &events {
        normalize::render(Format::Ocsf, e, &mut lines);
        lines.push(b'\n');
    }
    let sink_dir = tempfile::tempdir().expect("tempdir");
    let mut sink = FileSink::open("bench", &sink_dir.path().join("events.jsonl"), None)
        .expect("file sink")
        .with_rotation(Some(256 << 20), 1);
    g.bench_function("file_sink_append_ocsf", |b| {
        b.iter(|| {
            sink.append(&lines).expect("append");
            sink.rotate_if_due()
        })
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
