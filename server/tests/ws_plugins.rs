//! The plugin registry over WebSocket (`upload_plugin`, `list_plugins`, `describe_plugin`,
//! `delete_plugin`) in both encodings, with the same refusals as HTTP; and filtered
//! subscriptions that tell the client its new position when a filter dropped everything.

mod common;

use base64::Engine;
use common::TestBroker;
use common::net::{Http, Ws};
use serde_json::json;
use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response as Answer, ServerBody};
use sluice_protocol::types::{FilterSpec, StartFrom};

fn wat(path: &str) -> Vec<u8> {
    let file = format!("{}/../plugins/{path}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn upload(name: &str, module: Vec<u8>) -> Request {
    Request::UploadPlugin {
        name: name.into(),
        module,
    }
}

#[tokio::test]
async fn plugins_are_uploaded_listed_described_and_deleted_over_websocket() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    let module = wat("examples/wat/drop_tombstones.wat");
    for binary in [false, true] {
        let mut ws = Ws::connect(&broker).await;
        ws.hello(binary).await;
        let name = if binary { "bin" } else { "json" };
        let Answer::Plugin(p) = ws
            .call(1, upload(name, module.clone()), binary)
            .await
            .unwrap()
        else {
            panic!("upload answered with something else")
        };
        assert_eq!(p.name, name);
        assert_eq!(p.kind, "filter");
        assert_eq!(p.abi_version, 1);
        assert_eq!(p.size_bytes, module.len());
        assert_eq!(p.sha256.len(), 64);
        // The HTTP registry sees the same plugin, byte for byte.
        let h = http.get(&format!("/v1/plugins/{name}")).await.expect(200);
        assert_eq!(h["sha256"], p.sha256.as_str());

        let Answer::Plugins(list) = ws.call(2, Request::ListPlugins, binary).await.unwrap() else {
            panic!("list answered with something else")
        };
        assert!(list.plugins.iter().any(|q| q == &p), "{list:?}");
        let Answer::Plugin(d) = ws
            .call(3, Request::DescribePlugin { name: name.into() }, binary)
            .await
            .unwrap()
        else {
            panic!("describe answered with something else")
        };
        assert_eq!(d.sha256, p.sha256);

        assert_eq!(
            ws.call(4, Request::DeletePlugin { name: name.into() }, binary)
                .await
                .unwrap(),
            Answer::Done
        );
        for (id, request) in [
            (5, Request::DescribePlugin { name: name.into() }),
            (6, Request::DeletePlugin { name: name.into() }),
        ] {
            let e = ws.call(id, request, binary).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::UnknownPlugin, "{e:?}");
            assert!(e.message.contains(name), "{e:?}");
        }
        http.get(&format!("/v1/plugins/{name}"))
            .await
            .expect_error(404, "unknown_plugin");
    }
}

#[tokio::test]
async fn junk_oversized_and_misnamed_modules_are_refused_and_the_connection_carries_on() {
    let broker = TestBroker::start(&[]);
    // Over the plugin host's 10 MiB module cap, under the 16 MiB frame limit (in JSON too:
    // base64 makes it 13.4 MiB).
    let mut oversized = wat("examples/wat/drop_tombstones.wat");
    oversized.resize(10 * 1024 * 1024 + 1, 0);
    for binary in [false, true] {
        let mut ws = Ws::connect(&broker).await;
        ws.hello(binary).await;
        let cases = [
            ("junk", b"definitely not wasm".to_vec(), "not a webassembly"),
            ("big", oversized.clone(), "module size limit"),
            ("v2", wat("hostile/wrong_abi_version.wat"), "version"),
            ("missing", wat("hostile/missing_exports.wat"), "export"),
            (
                "a/b",
                wat("examples/wat/drop_tombstones.wat"),
                "plugin name",
            ),
        ];
        for (id, (name, module, what)) in (1..).zip(cases) {
            let e = ws.call(id, upload(name, module), binary).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPlugin, "{name}: {e:?}");
            assert!(e.message.to_lowercase().contains(what), "{name}: {e:?}");
        }
        let Answer::Plugins(list) = ws.call(10, Request::ListPlugins, binary).await.unwrap() else {
            panic!("list answered with something else")
        };
        assert!(list.plugins.is_empty(), "{list:?}");
    }

    // JSON: the module is base64; anything else is a bad request naming the frame's id.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.send_json(&json!({"id": 7, "op": "upload_plugin", "name": "p", "module": "not base64!"}))
        .await;
    let f = ws.recv().await;
    assert_eq!(f.id, Some(7));
    let ServerBody::Error(e) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(wat("examples/wat/drop_tombstones.wat"));
    ws.send_json(&json!({"id": 8, "op": "upload_plugin", "name": "p", "module": b64}))
        .await;
    let v = ws.recv_json().await;
    assert_eq!(v["id"], 8);
    assert_eq!(v["ok"]["type"], "plugin", "{v}");
    assert_eq!(v["ok"]["kind"], "filter", "{v}");
}

#[tokio::test]
async fn a_frame_over_the_frame_limit_closes_the_connection_before_any_upload() {
    let broker = TestBroker::start(&["--max-frame-bytes", "65536"]);
    let mut ws = Ws::connect(&broker).await;
    ws.hello(true).await;
    let mut module = wat("examples/wat/drop_tombstones.wat");
    module.resize(100_000, 0);
    ws.send(1, upload("big", module), true).await;
    assert_eq!(ws.closed().await, Some(1009));
    let http = Http::new(&broker);
    assert!(
        http.get("/v1/plugins").await.expect(200)["plugins"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_subscription_whose_filter_drops_everything_still_reports_its_position() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.call(
        1,
        upload("no-tombstones", wat("examples/wat/drop_tombstones.wat")),
        false,
    )
    .await
    .unwrap();
    http.produce(
        "t",
        json!([{"key": "a", "value": null}, {"key": "b", "value": null}, {"key": "c", "value": null}]),
    )
    .await;
    let sub = Request::Subscribe {
        topic: "t".into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: Some(FilterSpec {
            plugin: "no-tombstones".into(),
            params: Default::default(),
        }),
        map: None,
    };
    assert!(matches!(
        ws.call(2, sub, false).await.unwrap(),
        Answer::Subscribed { .. }
    ));
    // No records, but the position past the three dropped ones, costing the bytes read.
    let f = ws.recv().await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert!(d.fetch.records.is_empty(), "{d:?}");
    assert_eq!(d.fetch.next_offset, 3);
    let stored = http.fetch_raw("t", 0, 0).await.len() as u64;
    assert_eq!(d.bytes, stored);
    // Then the next kept record, as usual.
    http.produce(
        "t",
        json!([{"key": "d", "value": null}, {"key": "e", "value": "5"}]),
    )
    .await;
    let f = ws.recv().await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(
        d.fetch.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(d.fetch.next_offset, 5);
}

#[tokio::test]
async fn a_map_plugin_uploads_as_kind_map_and_is_refused_as_a_filter() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(true).await;
    let Answer::Plugin(p) = ws
        .call(
            1,
            upload("same", wat("examples/wat/identity_map.wat")),
            true,
        )
        .await
        .unwrap()
    else {
        panic!("upload answered with something else")
    };
    assert_eq!((p.kind.as_str(), p.abi_version), ("map", 2));
    let e = ws
        .call(2, upload("old", wat("hostile/map_abi_v1.wat")), true)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPlugin, "{e:?}");
    assert!(e.message.contains("needs version 2"), "{e:?}");
    let sub = Request::Subscribe {
        topic: "t".into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: Some(FilterSpec {
            plugin: "same".into(),
            params: Default::default(),
        }),
        map: None,
    };
    let e = ws.call(3, sub, true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPlugin, "{e:?}");
    assert!(e.message.contains("is a map, not a filter"), "{e:?}");
}
