//! Map plugins (ABI version 2): the Rust example and a hand-written WAT map over real record
//! batches, and hostile maps whose answers the host refuses.

mod common;

use common::{Rec, example, host, params, push_batch, uniform_batches, wat};
use sluice_record::{BatchBuilder, Batches};
use sluice_wasm::{ABI_VERSION_MAP, CompileError, Limits, Map, PluginError, PluginKind};

/// (offset, timestamp, key, value, headers) of every record of `bytes`, checking every CRC.
type Seen = (
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn contents(bytes: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    for batch in Batches::new(bytes) {
        let batch = batch.unwrap();
        batch.validate().unwrap();
        let h = *batch.header();
        for r in batch.records().unwrap() {
            let r = r.unwrap();
            out.push((
                r.offset(h.base_offset),
                r.timestamp(h.base_timestamp),
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                r.headers()
                    .map(|h| h.unwrap())
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect(),
            ));
        }
    }
    out
}

fn attach(module: &[u8], pairs: &[(&str, &str)]) -> Map {
    let plugin = host()
        .compile("m", module, Limits::default())
        .expect("compiles");
    assert_eq!(plugin.kind(), PluginKind::Map);
    assert_eq!(plugin.info().abi_version, ABI_VERSION_MAP);
    plugin.map(&params(pairs)).expect("attaches")
}

fn sample() -> Vec<u8> {
    let h: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"t1")), (b"gone", None)];
    let first: [Rec<'_>; 3] = [
        (Some(b"k1"), Some(b"hello"), &h),
        (None, None, &[]),
        (Some(b"k3"), Some(b"World"), &[]),
    ];
    let mut out = Vec::new();
    push_batch(&mut out, 10, &first);
    push_batch(&mut out, 20, &[(None, Some(b"x"), &[])]);
    out
}

#[test]
fn the_rust_example_rewrites_values_and_headers_keeping_offsets_and_timestamps() {
    let map = attach(
        &example("tag_map"),
        &[("value", "upper"), ("tag", "v2"), ("drop_header", "gone")],
    );
    let input = sample();
    let mut out = Vec::new();
    let summary = map.map_batches(&input, &mut out).unwrap();
    assert_eq!((summary.batches, summary.records), (2, 4));
    assert_eq!(summary.next_offset, Some(21));
    let before = contents(&input);
    let after = contents(&out);
    assert_eq!(after.len(), 4);
    let tag = (b"mapped-by".to_vec(), Some(b"v2".to_vec()));
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (a.0, a.1, &a.2),
            (b.0, b.1, &b.2),
            "offset, timestamp, key kept"
        );
        assert_eq!(
            a.3,
            b.3.as_ref().map(|v| v.to_ascii_uppercase()),
            "value upper-cased"
        );
        assert_eq!(a.4.last(), Some(&tag));
        assert!(!a.4.iter().any(|(k, _)| k == b"gone"));
    }
    assert_eq!(after[0].4[0], (b"trace".to_vec(), Some(b"t1".to_vec())));
    // Bad params are refused at attach, with the guest's message.
    let plugin = host()
        .compile("m", &example("tag_map"), Limits::default())
        .unwrap();
    let e = plugin.map(&params(&[("value", "reverse")])).unwrap_err();
    assert!(e.to_string().contains("keep, upper or mask"), "{e}");
    // A map is not a filter, nor the other way round.
    assert!(matches!(
        plugin.filter(&params(&[])),
        Err(PluginError::WrongKind { .. })
    ));
}

#[test]
fn a_wat_map_answering_its_input_is_the_identity_across_many_calls() {
    let map = attach(&wat("examples/wat/identity_map.wat"), &[]);
    // 20 000 records of 100 bytes: many calls of at most 64 KiB each.
    let input = uniform_batches(20, 1000, 100);
    let mut out = Vec::new();
    let summary = map.map_batches(&input, &mut out).unwrap();
    assert_eq!(summary.records, 20_000);
    assert_eq!(contents(&out), contents(&input));
    assert!(map.plugin().stats().calls > 1);
    // Offsets with gaps (as after compaction) and a large record keep their places.
    let mut gappy = Vec::new();
    let mut b = BatchBuilder::new(&mut gappy, 100, 5);
    b.push_with_delta(0, 5, None, Some(b"a"), &[]);
    b.push_with_delta(7, 6, Some(b"k"), Some(&vec![b'z'; 200_000]), &[]);
    let _ = b.finish();
    let mut out = Vec::new();
    map.map_batches(&gappy, &mut out).unwrap();
    assert_eq!(contents(&out), contents(&gappy));
}

#[test]
fn hostile_maps_fail_their_call_with_a_clear_error_and_write_nothing() {
    let input = sample();
    for (file, what) in [
        ("hostile/map_outside.wat", "outside its"),
        ("hostile/map_short.wat", "entry 0"),
        ("hostile/map_moves_offsets.wat", "offset 11"),
        ("hostile/map_garbage.wat", "runs past"),
    ] {
        let map = attach(&wat(file), &[]);
        let mut out = b"kept".to_vec();
        let e = map.map_batches(&input, &mut out).unwrap_err();
        assert!(
            matches!(e, PluginError::BadMapAnswer { .. }),
            "{file}: {e:?}"
        );
        assert!(e.is_plugin_fault());
        assert!(e.to_string().contains(what), "{file}: {e}");
        assert_eq!(out, b"kept", "{file}: nothing appended");
        assert_eq!(map.plugin().stats().errors, 1, "{file}");
        // The pool carries on: the next call fails the same way, without a panic.
        assert!(map.map_batches(&input, &mut Vec::new()).is_err());
    }
}

#[test]
fn a_map_must_declare_abi_version_2() {
    let e = host()
        .compile("old", &wat("hostile/map_abi_v1.wat"), Limits::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            CompileError::KindNeedsVersion {
                found: 1,
                needed: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("map"), "{e}");
}
