//! Plugin throughput over 100-byte records (null key, 100-byte value), in batches of 1000.
//!
//! - `host_overhead`: a WAT filter that answers "keep" for every record with one
//!   `memory.fill` and never reads them: what the host costs per record (writing the ABI
//!   layout into guest memory, the call, checking and copying the answers).
//! - `trivial/wat`: the hand-written WAT example, which walks every record.
//! - `trivial/rust`: `keep_all`, the trivial Rust SDK filter (the SDK parses every record).
//! - `keyword/*`: the keyword filter, SIMD substring search and regex, against 10% matches.
//! - `filter_batches/*`: the whole fetch-side operation, rewriting the kept batches.
//! - `baseline/walk_records`: the host alone walking the same batches with sluice-record, no
//!   plugin, for comparison.
//! - `partition/json_region/*`: the JSON partitioner routing 100-byte JSON values by
//!   `region`, from batches and from records pushed one at a time (the HTTP produce path).
//!
//! Run: `cargo bench -p sluice-wasm --bench plugins` (builds the example plugins first, like
//! the tests).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_record::Batches;
use sluice_wasm::Limits;

const RECORDS_PER_BATCH: usize = 1000;
const BATCHES: usize = 4;
const VALUE_BYTES: usize = 100;

/// 4 batches of 1000 records; every tenth value contains "ERROR".
fn input() -> Vec<u8> {
    let mut values = Vec::new();
    for i in 0..RECORDS_PER_BATCH {
        let mut v = vec![b'.'; VALUE_BYTES];
        if i % 10 == 0 {
            v[60..65].copy_from_slice(b"ERROR");
        }
        values.push(v);
    }
    let records: Vec<common::Rec<'_>> = values
        .iter()
        .map(|v| (None, Some(&v[..]), &[][..]))
        .collect();
    let mut out = Vec::new();
    for b in 0..BATCHES {
        common::push_batch(&mut out, (b * RECORDS_PER_BATCH) as i64, &records);
    }
    out
}

const FILL_WAT: &str = r#"
(module
  (memory (export "memory") 2)
  (func (export "sluice_abi_version") (result i32) (i32.const 1))
  (func (export "sluice_kind") (result i32) (i32.const 1))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.shr_u (i32.add (i32.add (i32.const 1024) (local.get $size)) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 1024))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_filter") (param $in i32) (param $len i32) (param $count i32) (param $out i32) (result i32)
    (memory.fill (local.get $out) (i32.const 1) (local.get $count))
    (i32.const 0))
)
"#;

fn benches(c: &mut Criterion) {
    let host = common::host();
    let input = input();
    let records = (BATCHES * RECORDS_PER_BATCH) as u64;
    let compile = |name: &str, wasm: &[u8]| host.compile(name, wasm, Limits::default()).unwrap();
    let fill = compile("fill", &wat::parse_str(FILL_WAT).unwrap());
    let wat_walk = compile(
        "drop-tombstones",
        &common::wat("examples/wat/drop_tombstones.wat"),
    );
    let keep_all = compile("keep-all", &common::example("keep_all"));
    let keyword = compile("keyword", &common::example("keyword_filter"));

    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(records));
    let mut keep = Vec::new();
    let cases = [
        ("host_overhead", &fill, common::params(&[])),
        ("trivial/wat", &wat_walk, common::params(&[])),
        ("trivial/rust", &keep_all, common::params(&[])),
        (
            "keyword/memmem",
            &keyword,
            common::params(&[("keyword", "ERROR")]),
        ),
        (
            "keyword/regex",
            &keyword,
            common::params(&[("pattern", "ERR(OR|ROR)")]),
        ),
    ];
    for (name, plugin, params) in &cases {
        let filter = plugin.filter(params).unwrap();
        let mut instance = filter.instance().unwrap();
        group.bench_function(*name, |b| {
            b.iter(|| instance.run(&input, &mut keep).unwrap());
        });
    }
    let mut out = Vec::with_capacity(input.len());
    for (name, plugin, params) in [
        (
            "filter_batches/trivial_rust",
            &keep_all,
            common::params(&[]),
        ),
        (
            "filter_batches/keyword",
            &keyword,
            common::params(&[("keyword", "ERROR")]),
        ),
    ] {
        let filter = plugin.filter(&params).unwrap();
        let mut instance = filter.instance().unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                instance.filter_batches(&input, &mut out).unwrap()
            });
        });
    }
    group.bench_function("baseline/walk_records", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for batch in Batches::new(&input) {
                for r in batch.unwrap().records().unwrap() {
                    n += r.unwrap().value.map_or(0, <[u8]>::len);
                }
            }
            n
        });
    });
    group.finish();

    // Partitioner: JSON values of about 100 bytes, routed by "region".
    let regions = ["eu", "us", "ap", "sa"];
    let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
        .map(|i| {
            let mut v = format!(
                r#"{{"id":{i},"region":"{}","amount":{}.5,"customer":"c-{:06}","items":[1,2,3]}}"#,
                regions[i % 4],
                i % 500,
                i * 7
            )
            .into_bytes();
            v.resize(100, b' ');
            v
        })
        .collect();
    let records: Vec<common::Rec<'_>> = values
        .iter()
        .map(|v| (None, Some(&v[..]), &[][..]))
        .collect();
    let mut json_input = Vec::new();
    for b in 0..BATCHES {
        common::push_batch(&mut json_input, (b * RECORDS_PER_BATCH) as i64, &records);
    }
    let json = compile("by-region", &common::example("json_partitioner"));
    let partitioner = json
        .partitioner(&common::params(&[
            ("route.eu", "0"),
            ("route.us", "1"),
            ("route.ap", "2"),
            ("route.sa", "3"),
        ]))
        .unwrap();
    let mut instance = partitioner.instance().unwrap();
    let mut routes = Vec::new();
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(records.len() as u64 * BATCHES as u64));
    group.bench_function("json_region/batches", |b| {
        b.iter(|| instance.route_batches(&json_input, 8, &mut routes).unwrap());
    });
    group.bench_function("json_region/record_inputs", |b| {
        b.iter(|| {
            let mut routing = instance.routing(8).unwrap();
            for _ in 0..BATCHES {
                for (i, v) in values.iter().enumerate() {
                    routing
                        .push(&sluice_wasm::RecordInput {
                            offset: i as i64,
                            timestamp: 0,
                            key: None,
                            value: Some(v),
                            headers: &[],
                        })
                        .unwrap();
                }
            }
            routing.finish(&mut routes).unwrap();
        });
    });
    group.finish();
}

criterion_group!(plugins, benches);
criterion_main!(plugins);
