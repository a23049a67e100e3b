//! The example plugins (Rust SDK and hand-written WAT) over real record batches.

mod common;

use common::{Rec, example, host, params, push_batch, uniform_batches, wat};
use sluice_record::{Batch, Batches};
use sluice_wasm::{
    ABI_VERSION, HostConfig, Limits, PluginError, PluginHost, PluginKind, RecordInput,
};

/// (offset, value) of a record.
type Stored = (i64, Option<Vec<u8>>);

/// (offset, value) of every record in `bytes`, plus each batch's (base offset, next offset).
fn contents(bytes: &[u8]) -> (Vec<Stored>, Vec<(i64, i64)>) {
    let mut records = Vec::new();
    let mut batches = Vec::new();
    for batch in Batches::new(bytes) {
        let batch = batch.unwrap();
        batch.validate().unwrap();
        let h = *batch.header();
        batches.push((h.base_offset, h.next_offset()));
        for r in batch.records().unwrap() {
            let r = r.unwrap();
            records.push((r.offset(h.base_offset), r.value.map(<[u8]>::to_vec)));
        }
    }
    (records, batches)
}

#[test]
fn keep_all_keeps_every_record_and_copies_batches_unchanged() {
    let host = host();
    let plugin = host
        .compile("keep-all", &example("keep_all"), Limits::default())
        .unwrap();
    assert_eq!(plugin.kind(), PluginKind::Filter);
    assert_eq!(plugin.info().abi_version, ABI_VERSION);
    assert_eq!(plugin.info().sha256_hex().len(), 64);
    let filter = plugin.filter(&params(&[])).unwrap();
    let input = uniform_batches(5, 200, 100);
    let mut keep = Vec::new();
    let summary = filter.instance().unwrap().run(&input, &mut keep).unwrap();
    assert_eq!(keep, vec![true; 1000]);
    assert_eq!(
        (summary.batches, summary.records, summary.kept),
        (5, 1000, 1000)
    );
    assert_eq!(summary.next_offset, Some(1000));
    let mut out = Vec::new();
    filter.filter_batches(&input, &mut out).unwrap();
    assert_eq!(out, input);
    // 1000 records of 133 bytes in the ABI layout: 3 calls of at most 64 KiB each time.
    assert_eq!(plugin.stats().calls, 6);
    assert_eq!(plugin.stats().records, 2000);
}

#[test]
fn wat_plugin_drops_tombstones_and_keeps_offsets() {
    let host = host();
    let plugin = host
        .compile(
            "drop-tombstones",
            &wat("examples/wat/drop_tombstones.wat"),
            Limits::default(),
        )
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();
    let headers: &[(&[u8], Option<&[u8]>)] = &[(b"trace", Some(b"1")), (b"null", None)];
    let mut input = Vec::new();
    let first: Vec<Rec<'_>> = vec![
        (Some(b"a"), Some(b"1"), headers),
        (Some(b"b"), None, &[]),
        (None, Some(b""), &[]),
    ];
    push_batch(&mut input, 10, &first);
    push_batch(&mut input, 13, &[(Some(b"c"), None, headers)]);
    push_batch(&mut input, 14, &[(None, Some(b"last"), &[])]);

    let mut keep = Vec::new();
    filter.instance().unwrap().run(&input, &mut keep).unwrap();
    assert_eq!(keep, [true, false, true, false, true]);

    let mut out = Vec::new();
    let summary = filter.filter_batches(&input, &mut out).unwrap();
    assert_eq!((summary.records, summary.kept), (5, 3));
    assert_eq!(summary.next_offset, Some(15));
    let (records, batches) = contents(&out);
    assert_eq!(
        records,
        [
            (10, Some(b"1".to_vec())),
            (12, Some(Vec::new())),
            (14, Some(b"last".to_vec()))
        ]
    );
    // The rewritten batch keeps its span, so a consumer resumes after offset 12; the
    // all-dropped batch at 13 is gone.
    assert_eq!(batches, [(10, 13), (14, 15)]);
}

#[test]
fn keyword_filter_finds_keywords_patterns_and_headers() {
    let host = host();
    let plugin = host
        .compile("grep", &example("keyword_filter"), Limits::default())
        .unwrap();
    let level: &[(&[u8], Option<&[u8]>)] = &[(b"level", Some(b"ERROR"))];
    let mut input = Vec::new();
    push_batch(
        &mut input,
        0,
        &[
            (None, Some(b"disk full: ERROR"), &[]),
            (None, Some(b"all good"), level),
            (None, None, &[]),
            (None, Some(b"WARN: slow"), &[]),
        ],
    );
    let run = |pairs: &[(&str, &str)]| {
        let mut keep = Vec::new();
        plugin
            .filter(&params(pairs))
            .unwrap()
            .instance()
            .unwrap()
            .run(&input, &mut keep)
            .unwrap();
        keep
    };
    assert_eq!(run(&[("keyword", "ERROR")]), [true, false, false, false]);
    assert_eq!(
        run(&[("pattern", "^(WARN|disk)")]),
        [true, false, false, true]
    );
    assert_eq!(
        run(&[("keyword", "ERROR"), ("invert", "true")]),
        [false, true, true, true]
    );
    assert_eq!(
        run(&[("keyword", "ERR"), ("in", "header:level")]),
        [false, true, false, false]
    );

    // Params the plugin refuses fail the attach, with its message.
    let err = plugin.filter(&params(&[("pattern", "(")])).unwrap_err();
    match &err {
        PluginError::Failed { message, .. } => {
            assert!(
                message.as_deref().unwrap_or("").contains("pattern"),
                "{err}"
            )
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(err.to_string().contains("`grep`"), "{err}");
}

#[test]
fn json_filter_compares_a_field() {
    let host = host();
    let plugin = host
        .compile("big-orders", &example("json_filter"), Limits::default())
        .unwrap();
    let filter = plugin
        .filter(&params(&[
            ("field", "amount"),
            ("op", ">"),
            ("value", "100"),
        ]))
        .unwrap();
    let mut input = Vec::new();
    push_batch(
        &mut input,
        0,
        &[
            (None, Some(br#"{"id":1,"amount":250}"#), &[]),
            (None, Some(br#"{"id":2,"amount":99.5}"#), &[]),
            (None, Some(br#"{"id":3,"nested":{"amount":500}}"#), &[]),
            (None, Some(b"not json"), &[]),
            (None, Some(br#"{"id":5,"amount":100.01}"#), &[]),
        ],
    );
    let mut out = Vec::new();
    let summary = filter.filter_batches(&input, &mut out).unwrap();
    assert_eq!(summary.kept, 2);
    let (records, _) = contents(&out);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, [0, 4]);
}

#[test]
fn json_partitioner_routes_batches_and_request_records() {
    let host = host();
    let plugin = host
        .compile("by-region", &example("json_partitioner"), Limits::default())
        .unwrap();
    assert_eq!(plugin.kind(), PluginKind::Partitioner);
    let partitioner = plugin
        .partitioner(&params(&[
            ("route.eu", "0"),
            ("route.us", "1"),
            ("route.ap", "6"),
            ("default", "3"),
        ]))
        .unwrap();
    let values: [&[u8]; 5] = [
        br#"{"region":"us"}"#,
        br#"{"region":"eu","x":[1,2]}"#,
        br#"{"region":"ap"}"#,
        br#"{"region":"mars"}"#,
        b"garbage",
    ];
    let mut input = Vec::new();
    let records: Vec<Rec<'_>> = values.iter().map(|v| (None, Some(*v), &[][..])).collect();
    push_batch(&mut input, 0, &records);
    let mut routes = Vec::new();
    partitioner.route_batches(&input, 4, &mut routes).unwrap();
    assert_eq!(routes, [1, 0, 2, 3, 3]);

    // The same through RecordInput, one at a time, with a reused headers buffer.
    let mut instance = partitioner.instance().unwrap();
    let mut routing = instance.routing(4).unwrap();
    let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        headers.clear();
        headers.push((b"n", Some(b"1")));
        routing
            .push(&RecordInput {
                offset: i as i64,
                timestamp: 0,
                key: None,
                value: Some(v),
                headers: &headers,
            })
            .unwrap();
    }
    let mut again = Vec::new();
    routing.finish(&mut again).unwrap();
    assert_eq!(again, routes);

    // A filter is not a partitioner.
    let err = plugin.filter(&params(&[])).unwrap_err();
    assert!(matches!(err, PluginError::WrongKind { .. }), "{err}");
    // Zero partitions is the caller's mistake.
    let err = partitioner
        .route_batches(&input, 0, &mut routes)
        .unwrap_err();
    assert!(matches!(err, PluginError::InvalidInput { .. }), "{err}");
}

#[test]
fn large_inputs_are_split_into_calls_and_large_records_grow_the_buffer() {
    let host = host();
    let limits = Limits {
        max_call_bytes: 64 * 1024,
        ..Limits::default()
    };
    let plugin = host
        .compile(
            "drop-tombstones",
            &wat("examples/wat/drop_tombstones.wat"),
            limits,
        )
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();
    // 4000 records of ~130 bytes: about 8 calls of 64 KiB.
    let input = uniform_batches(4, 1000, 100);
    let mut keep = Vec::new();
    filter.instance().unwrap().run(&input, &mut keep).unwrap();
    assert_eq!(keep.len(), 4000);
    assert!(keep.iter().all(|&k| k));
    let calls = plugin.stats().calls;
    assert!((8..=10).contains(&calls), "{calls} calls");

    // A 3 MiB record, alone larger than a call, between small ones.
    let big = vec![b'b'; 3 * 1024 * 1024];
    let mut input = Vec::new();
    push_batch(&mut input, 0, &[(None, Some(b"small"), &[])]);
    push_batch(&mut input, 1, &[(None, Some(&big), &[]), (None, None, &[])]);
    push_batch(&mut input, 3, &[(None, Some(b"after"), &[])]);
    filter.instance().unwrap().run(&input, &mut keep).unwrap();
    assert_eq!(keep, [true, true, false, true]);
}

#[test]
fn control_batches_pass_through_and_compressed_batches_are_refused() {
    let host = host();
    let plugin = host
        .compile(
            "drop-tombstones",
            &wat("examples/wat/drop_tombstones.wat"),
            Limits::default(),
        )
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();

    let mut control = Vec::new();
    push_batch(&mut control, 5, &[(Some(b"\0\0\0\0"), None, &[])]);
    set_attributes(&mut control, 1 << 5);
    let mut input = Vec::new();
    push_batch(&mut input, 4, &[(None, None, &[])]);
    input.extend_from_slice(&control);
    let mut out = Vec::new();
    let summary = filter.filter_batches(&input, &mut out).unwrap();
    assert_eq!((summary.batches, summary.records, summary.kept), (2, 1, 0));
    assert_eq!(out, control);
    assert_eq!(summary.next_offset, Some(6));

    let mut gzip = Vec::new();
    push_batch(&mut gzip, 0, &[(None, Some(b"x"), &[])]);
    set_attributes(&mut gzip, 1);
    let err = filter.filter_batches(&gzip, &mut out).unwrap_err();
    assert!(
        matches!(err, PluginError::InvalidBatch { position: 0, .. }),
        "{err}"
    );
    // Not batches at all.
    let err = filter.filter_batches(&[0xFF; 80], &mut out).unwrap_err();
    assert!(matches!(err, PluginError::InvalidBatch { .. }), "{err}");
    // The instance is still good.
    filter.filter_batches(&input, &mut out).unwrap();
}

/// Sets a batch's attributes and fixes its CRC.
fn set_attributes(batch: &mut [u8], attributes: i16) {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    sluice_record::update_crc(batch);
    Batch::new(batch).unwrap().validate().unwrap();
}

#[test]
fn compiled_artifacts_are_cached_by_hash_and_damaged_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let wasm = example("keep_all");
    let first = PluginHost::new(config.clone())
        .unwrap()
        .compile("a", &wasm, Limits::default())
        .unwrap();
    assert!(!first.info().from_cache);
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cached, [format!("{}.cwasm", first.info().sha256_hex())]);

    // A restarted host loads it instead of compiling, and it works.
    let host = PluginHost::new(config.clone()).unwrap();
    let second = host.compile("a", &wasm, Limits::default()).unwrap();
    assert!(second.info().from_cache);
    let input = uniform_batches(1, 10, 10);
    let mut keep = Vec::new();
    second
        .filter(&params(&[]))
        .unwrap()
        .instance()
        .unwrap()
        .run(&input, &mut keep)
        .unwrap();
    assert_eq!(keep, [true; 10]);

    // A damaged artifact is ignored and rewritten.
    let path = dir.path().join(&cached[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let third = host.compile("a", &wasm, Limits::default()).unwrap();
    assert!(!third.info().from_cache);
    assert!(
        host.compile("a", &wasm, Limits::default())
            .unwrap()
            .info()
            .from_cache
    );
    // So is a truncated one.
    std::fs::write(&path, &bytes[..10]).unwrap();
    assert!(
        !host
            .compile("a", &wasm, Limits::default())
            .unwrap()
            .info()
            .from_cache
    );
}

#[test]
fn instances_are_pooled_and_shared_across_threads() {
    let host = host();
    let plugin = host
        .compile("keep-all", &example("keep_all"), Limits::default())
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();
    assert_eq!(filter.instance_counts(), (1, 1));
    let input = uniform_batches(2, 100, 50);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut keep = Vec::new();
                for _ in 0..50 {
                    filter.instance().unwrap().run(&input, &mut keep).unwrap();
                    assert_eq!(keep.len(), 200);
                }
            });
        }
    });
    let (idle, live) = filter.instance_counts();
    assert_eq!(idle, live);
    assert!((1..=4).contains(&live), "{live} instances");
    assert_eq!(plugin.stats().records, 4 * 50 * 200);
    assert_eq!(plugin.stats().errors, 0);
}

#[test]
fn callers_beyond_max_instances_wait_then_get_busy() {
    let host = host();
    let limits = Limits {
        max_instances: 1,
        checkout_timeout_ms: 50,
        ..Limits::default()
    };
    let plugin = host
        .compile(
            "drop-tombstones",
            &wat("examples/wat/drop_tombstones.wat"),
            limits,
        )
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();
    let held = filter.instance().unwrap();
    let err = filter.instance().err().unwrap();
    assert!(
        matches!(err, PluginError::Busy { max_instances: 1, waited_ms, .. } if waited_ms >= 50),
        "{err}"
    );
    // A waiter gets the instance as soon as it comes back.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| filter.instance().map(|_| ()));
        std::thread::sleep(std::time::Duration::from_millis(10));
        drop(held);
        waiter.join().unwrap().unwrap();
    });
    assert_eq!(plugin.stats().errors, 0, "busy is not the plugin's fault");
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<PluginHost>();
    send_sync::<sluice_wasm::Plugin>();
    send_sync::<sluice_wasm::Filter>();
    send_sync::<sluice_wasm::Partitioner>();
    send::<sluice_wasm::FilterInstance>();
    send::<sluice_wasm::PartitionerInstance>();
}
