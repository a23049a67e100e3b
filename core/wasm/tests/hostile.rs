//! Hostile and broken modules: each gets a clear error at upload or at use, and the host and
//! every other plugin keep working.

mod common;

use std::time::{Duration, Instant};

use common::{example, host, params, push_batch, uniform_batches, wat};
use sluice_wasm::{CompileError, During, Limits, Plugin, PluginError, PluginHost};

fn compile(host: &PluginHost, name: &str, bytes: &[u8]) -> Result<Plugin, CompileError> {
    host.compile(name, bytes, Limits::default())
}

fn hostile(host: &PluginHost, file: &str) -> Result<Plugin, CompileError> {
    compile(host, file, &wat(&format!("hostile/{file}.wat")))
}

/// Runs `plugin` as a filter over `batches`.
fn run_filter(plugin: &Plugin, batches: &[u8]) -> Result<Vec<bool>, PluginError> {
    let mut keep = Vec::new();
    plugin
        .filter(&params(&[]))?
        .instance()?
        .run(batches, &mut keep)?;
    Ok(keep)
}

/// Checks a healthy plugin still works on this host.
fn assert_host_still_works(host: &PluginHost) {
    let plugin = compile(host, "healthy", &example("keep_all")).unwrap();
    assert_eq!(
        run_filter(&plugin, &uniform_batches(3, 100, 20))
            .unwrap()
            .len(),
        300
    );
}

#[test]
fn upload_refuses_what_is_not_a_core_module() {
    let host = host();
    let not_wasm = std::fs::read(common::repo().join("plugins/hostile/not_wasm.wasm")).unwrap();
    let err = compile(&host, "script", &not_wasm).unwrap_err();
    assert!(matches!(err, CompileError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("`script`"), "{err}");
    assert!(matches!(
        compile(&host, "empty", b"").unwrap_err(),
        CompileError::NotWasm { .. }
    ));

    let component = b"\0asm\x0d\x00\x01\x00";
    let err = compile(&host, "component", component).unwrap_err();
    assert!(matches!(err, CompileError::Component { .. }), "{err}");

    let mut garbage = b"\0asm\x01\x00\x00\x00".to_vec();
    garbage.extend_from_slice(&[0xFF; 64]);
    let err = compile(&host, "garbage", &garbage).unwrap_err();
    assert!(matches!(err, CompileError::Invalid { .. }), "{err}");

    let limits = Limits {
        max_module_bytes: 1000,
        ..Limits::default()
    };
    let err = host
        .compile("big", &example("keep_all"), limits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CompileError::TooLarge {
                limit_bytes: 1000,
                ..
            }
        ),
        "{err}"
    );
    // Over the default 10 MiB cap, without reading further than the size.
    let mut huge = b"\0asm\x01\x00\x00\x00".to_vec();
    huge.resize(10 * 1024 * 1024 + 1, 0);
    let err = compile(&host, "huge", &huge).unwrap_err();
    assert!(matches!(err, CompileError::TooLarge { .. }), "{err}");
    assert_host_still_works(&host);
}

#[test]
fn upload_refuses_modules_that_do_not_follow_the_abi() {
    let host = host();
    let err = hostile(&host, "missing_exports").unwrap_err();
    match &err {
        CompileError::MissingExports { missing, .. } => {
            assert_eq!(missing, "sluice_alloc, sluice_init", "{err}");
        }
        other => panic!("expected MissingExports, got {other:?}"),
    }

    let err = hostile(&host, "wrong_signature").unwrap_err();
    assert!(
        matches!(
            err,
            CompileError::ExportType {
                export: "sluice_filter",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("(i32) -> (i32)"), "{err}");

    let err = hostile(&host, "wrong_abi_version").unwrap_err();
    assert!(
        matches!(
            err,
            CompileError::AbiVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );

    let err = hostile(&host, "unknown_kind").unwrap_err();
    assert!(
        matches!(err, CompileError::UnknownKind { found: 7, .. }),
        "{err}"
    );

    let err = hostile(&host, "imports_wasi").unwrap_err();
    assert!(matches!(err, CompileError::Imports { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("`wasi_snapshot_preview1::fd_write`"),
        "{err}"
    );

    let err = hostile(&host, "huge_memory").unwrap_err();
    assert!(
        matches!(err, CompileError::MemoryTooLarge { needed_bytes, .. } if needed_bytes == 1 << 30),
        "{err}"
    );
    assert_host_still_works(&host);
}

#[test]
fn a_start_function_that_loops_is_stopped_at_upload() {
    let host = host();
    let started = Instant::now();
    let err = hostile(&host, "start_loop").unwrap_err();
    match &err {
        CompileError::Start(inner) => assert!(
            matches!(
                **inner,
                PluginError::Timeout {
                    during: During::Start,
                    ..
                }
            ),
            "{err}"
        ),
        other => panic!("expected Start(Timeout), got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_host_still_works(&host);
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline_and_others_carry_on() {
    let host = host();
    let looping = hostile(&host, "infinite_loop").unwrap();
    let filter = looping.filter(&params(&[])).unwrap();
    let mut input = Vec::new();
    push_batch(
        &mut input,
        40,
        &[(None, Some(b"a"), &[]), (None, Some(b"b"), &[])],
    );

    // Another plugin keeps streaming on other threads while the loop runs.
    let healthy = compile(&host, "healthy", &example("keep_all")).unwrap();
    let healthy_filter = healthy.filter(&params(&[])).unwrap();
    let stream = uniform_batches(2, 500, 100);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let streamer = s.spawn(|| {
            let mut calls = 0u32;
            let mut keep = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || calls == 0 {
                healthy_filter
                    .instance()
                    .unwrap()
                    .run(&stream, &mut keep)
                    .unwrap();
                assert_eq!(keep.len(), 1000);
                calls += 1;
            }
            calls
        });
        for _ in 0..2 {
            let started = Instant::now();
            let mut keep = Vec::new();
            let err = filter
                .instance()
                .unwrap()
                .run(&input, &mut keep)
                .unwrap_err();
            let elapsed = started.elapsed();
            assert_eq!(
                err,
                PluginError::Timeout {
                    plugin: "infinite_loop".into(),
                    timeout_ms: 100,
                    during: During::Records {
                        first_offset: 40,
                        last_offset: 41
                    },
                },
            );
            assert!(err.to_string().contains("offsets 40..=41"), "{err}");
            // The deadline is 100 ms; allow for a slow, shared machine.
            assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(streamer.join().unwrap() > 0);
    });
    let stats = looping.stats();
    assert_eq!((stats.errors, stats.timeouts), (2, 2));
    assert!(stats.last_error.unwrap().contains("deadline"));
    // The timed-out instances were replaced, not reused.
    assert_eq!(filter.instance_counts(), (1, 1));
}

#[test]
fn memory_is_limited_per_instance() {
    let host = host();
    let hog = hostile(&host, "memory_hog").unwrap();
    let err = run_filter(&hog, &uniform_batches(1, 3, 3)).unwrap_err();
    match &err {
        PluginError::MemoryLimit {
            requested_bytes,
            limit_bytes,
            during: During::Records { .. },
            ..
        } => {
            assert!(*requested_bytes >= 1 << 30, "{err}");
            assert_eq!(*limit_bytes, 16 * 1024 * 1024);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }

    // A Rust plugin given a record larger than its memory limit fails cleanly too.
    let limits = Limits {
        max_memory_bytes: 4 * 1024 * 1024,
        max_call_bytes: 256 * 1024,
        ..Limits::default()
    };
    let plugin = host.compile("small", &example("keep_all"), limits).unwrap();
    let big = vec![0u8; 5 * 1024 * 1024];
    let mut input = Vec::new();
    push_batch(&mut input, 7, &[(None, Some(&big), &[])]);
    let err = run_filter(&plugin, &input).unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_bytes, .. } if limit_bytes == 4 * 1024 * 1024),
        "{err}"
    );
    // ... and keeps working on records that fit.
    assert_eq!(
        run_filter(&plugin, &uniform_batches(1, 5, 5))
            .unwrap()
            .len(),
        5
    );
    assert_host_still_works(&host);
}

#[test]
fn traps_fail_the_call_with_the_plugin_and_offsets() {
    let host = host();
    let trap = hostile(&host, "trap").unwrap();
    let mut input = Vec::new();
    push_batch(&mut input, 100, &[(None, Some(b"x"), &[])]);
    let err = run_filter(&trap, &input).unwrap_err();
    match &err {
        PluginError::Trap {
            plugin,
            during,
            trap,
            ..
        } => {
            assert_eq!(plugin, "trap");
            assert_eq!(
                *during,
                During::Records {
                    first_offset: 100,
                    last_offset: 100
                }
            );
            assert!(trap.contains("unreachable"), "{err}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    assert!(err.to_string().contains("offset 100"), "{err}");

    let overflow = hostile(&host, "stack_overflow").unwrap();
    let err = run_filter(&overflow, &input).unwrap_err();
    assert!(
        matches!(&err, PluginError::Trap { trap, .. } if trap.contains("stack exhausted")),
        "{err}"
    );
    assert_host_still_works(&host);
}

#[test]
fn bad_answers_are_refused_with_the_record_offset() {
    let host = host();
    let mut input = Vec::new();
    push_batch(
        &mut input,
        20,
        &[(None, Some(b"x"), &[]), (None, Some(b"y"), &[])],
    );

    let bad_answer = hostile(&host, "bad_answer").unwrap();
    let err = run_filter(&bad_answer, &input).unwrap_err();
    assert_eq!(
        err,
        PluginError::BadFilterAnswer {
            plugin: "bad_answer".into(),
            offset: 20,
            value: 7
        }
    );

    let bad_partitioner = hostile(&host, "bad_partitioner").unwrap();
    let partitioner = bad_partitioner.partitioner(&params(&[])).unwrap();
    let mut routes = Vec::new();
    let err = partitioner
        .route_batches(&input, 3, &mut routes)
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::PartitionOutOfRange {
            plugin: "bad_partitioner".into(),
            offset: 20,
            partition: 3,
            partitions: 3
        }
    );
    assert!(
        err.to_string().contains(
            "routed the record at offset 20 to partition 3, but the topic has 3 partitions"
        ),
        "{err}"
    );
    assert_eq!(bad_partitioner.stats().errors, 1);
    assert_host_still_works(&host);
}

#[test]
fn attach_fails_cleanly_when_init_or_alloc_misbehave() {
    let host = host();
    let failing = hostile(&host, "failing_init").unwrap();
    let err = failing.filter(&params(&[("x", "1")])).unwrap_err();
    assert_eq!(
        err,
        PluginError::Failed {
            plugin: "failing_init".into(),
            during: During::Init,
            code: 1,
            message: Some("param `threshold` is required".into()),
        }
    );

    let bad_alloc = hostile(&host, "bad_alloc").unwrap();
    let err = bad_alloc.filter(&params(&[])).unwrap_err();
    assert!(
        matches!(
            err,
            PluginError::BadBuffer {
                ptr: 0x7fff_fff0,
                ..
            }
        ),
        "{err}"
    );
    assert_host_still_works(&host);
}

#[test]
fn params_are_capped() {
    let host = host();
    let plugin = compile(&host, "keep-all", &example("keep_all")).unwrap();
    let big = "x".repeat(sluice_wasm::MAX_PARAMS_BYTES);
    let err = plugin.filter(&params(&[("big", &big)])).unwrap_err();
    assert!(matches!(err, PluginError::ParamsTooLarge { .. }), "{err}");
}
