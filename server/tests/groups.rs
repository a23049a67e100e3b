//! Consumer groups against the real broker: rebalancing with the sticky assignor, single
//! ownership, session timeouts, fencing, committed offsets across restarts, lag, broadcast.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::TestBroker;
use common::net::{Http, Ws, guard};
use serde_json::json;
use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response as Answer, ServerBody};
use sluice_protocol::types::*;

type Owned = BTreeSet<(String, u32)>;

fn sets(a: &[TopicPartitions]) -> Owned {
    a.iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.clone(), *p)))
        .collect()
}

fn lists(s: &Owned) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (t, p) in s {
        match out.last_mut() {
            Some(l) if &l.topic == t => l.partitions.push(*p),
            _ => out.push(TopicPartitions {
                topic: t.clone(),
                partitions: vec![*p],
            }),
        }
    }
    out
}

/// A group member speaking the protocol over its own WebSocket, following the rules: it
/// reports what it owns, so revoked partitions are released.
struct Member {
    ws: Ws,
    next_id: u64,
    id: Option<String>,
    epoch: i32,
    owned: Owned,
}

impl Member {
    async fn join(
        broker: &TestBroker,
        group: &str,
        instance: Option<&str>,
        session_ms: u64,
    ) -> Member {
        let mut ws = Ws::connect(broker).await;
        ws.hello(false).await;
        let mut m = Member {
            ws,
            next_id: 1,
            id: None,
            epoch: 0,
            owned: Owned::new(),
        };
        let req = GroupHeartbeat {
            group: group.into(),
            member_epoch: 0,
            instance_id: instance.map(Into::into),
            topics: Some(vec!["t".into()]),
            session_timeout_ms: Some(session_ms),
            ..Default::default()
        };
        m.apply(req).await.expect("join");
        m
    }

    async fn apply(&mut self, req: GroupHeartbeat) -> Result<(), sluice_protocol::ErrorBody> {
        self.next_id += 1;
        let id = self.next_id;
        self.ws.send(id, Request::GroupHeartbeat(req), false).await;
        loop {
            let f = self.ws.recv().await;
            match (f.id, f.body) {
                // A pushed assignment between answers: the member acts on it like on an answer.
                (None, ServerBody::Ok(Answer::GroupAssignment(a))) => self.take(a),
                (Some(i), ServerBody::Ok(Answer::GroupAssignment(a))) if i == id => {
                    self.take(a);
                    return Ok(());
                }
                (Some(i), ServerBody::Error(e)) if i == id => return Err(e),
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    fn take(&mut self, a: GroupAssignment) {
        self.id = Some(a.member_id);
        self.epoch = a.member_epoch;
        self.owned = sets(&a.assignment);
    }

    /// Waits for a pushed assignment.
    async fn pushed(&mut self) -> GroupAssignment {
        loop {
            let f = self.ws.recv().await;
            if let (None, ServerBody::Ok(Answer::GroupAssignment(a))) = (f.id, f.body) {
                self.take(a.clone());
                return a;
            }
        }
    }

    async fn beat(&mut self, group: &str) -> Result<(), sluice_protocol::ErrorBody> {
        let req = GroupHeartbeat {
            group: group.into(),
            member_id: self.id.clone(),
            member_epoch: self.epoch,
            owned: Some(lists(&self.owned)),
            ..Default::default()
        };
        self.apply(req).await
    }

    async fn leave(&mut self, group: &str) {
        let req = GroupHeartbeat {
            group: group.into(),
            member_id: self.id.clone(),
            member_epoch: -1,
            ..Default::default()
        };
        self.apply(req).await.expect("leave");
        self.owned.clear();
    }

    async fn commit(
        &mut self,
        group: &str,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), sluice_protocol::ErrorBody> {
        self.next_id += 1;
        let req = CommitOffsets {
            group: group.into(),
            member_id: self.id.clone(),
            member_epoch: Some(self.epoch),
            offsets,
        };
        let mut pushes = Vec::new();
        let r = call_skipping_pushes(
            &mut self.ws,
            self.next_id,
            Request::CommitOffsets(req),
            &mut pushes,
        )
        .await;
        for a in pushes {
            self.take(a);
        }
        r.map(|_| ())
    }
}

/// Sends a request and returns its answer, collecting assignment pushes that arrive first.
async fn call_skipping_pushes(
    ws: &mut Ws,
    id: u64,
    req: Request,
    pushes: &mut Vec<GroupAssignment>,
) -> Result<Answer, sluice_protocol::ErrorBody> {
    ws.send(id, req, false).await;
    loop {
        let f = ws.recv().await;
        match (f.id, f.body) {
            (None, ServerBody::Ok(Answer::GroupAssignment(a))) => pushes.push(a),
            (Some(i), ServerBody::Ok(a)) if i == id => return Ok(a),
            (Some(i), ServerBody::Error(e)) if i == id => return Err(e),
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// At every instant (after every answer) no partition has two owners.
fn assert_single_owners(members: &[Member]) {
    let mut seen = Owned::new();
    for m in members {
        for tp in &m.owned {
            assert!(
                seen.insert(tp.clone()),
                "{tp:?} owned by two members at once"
            );
        }
    }
}

/// Heartbeats everyone until the assignment is complete and balanced; returns rounds taken.
async fn settle(members: &mut [Member], group: &str, partitions: usize) -> usize {
    for round in 1..=20 {
        for i in 0..members.len() {
            members[i].beat(group).await.expect("heartbeat");
            assert_single_owners(members);
        }
        let counts: Vec<usize> = members.iter().map(|m| m.owned.len()).collect();
        let total: usize = counts.iter().sum();
        if total == partitions && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1 {
            return round;
        }
    }
    panic!("the group did not settle");
}

fn owners(members: &[Member]) -> BTreeMap<(String, u32), String> {
    members
        .iter()
        .flat_map(|m| {
            m.owned
                .iter()
                .map(move |tp| (tp.clone(), m.id.clone().unwrap()))
        })
        .collect()
}

fn moves(
    before: &BTreeMap<(String, u32), String>,
    after: &BTreeMap<(String, u32), String>,
) -> usize {
    after
        .iter()
        .filter(|(tp, m)| before.get(*tp).is_some_and(|o| o != *m))
        .count()
}

#[tokio::test]
async fn sticky_rebalancing_one_to_four_to_one_moves_the_minimum_and_never_doubles_owners() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 12).await;
    let mut members = vec![Member::join(&broker, "g", None, 30_000).await];
    settle(&mut members, "g", 12).await;
    let mut before = owners(&members);
    let mut total = 0;
    for expected in [6usize, 4, 3] {
        members.push(Member::join(&broker, "g", None, 30_000).await);
        settle(&mut members, "g", 12).await;
        let after = owners(&members);
        assert_eq!(moves(&before, &after), expected);
        total += expected;
        before = after;
    }
    let described = http.get("/v1/groups/g").await.expect(200);
    assert_eq!(described["state"], "stable");
    assert_eq!(described["assignor"], "sticky");
    assert_eq!(described["members"].as_array().unwrap().len(), 4);
    for expected in [3usize, 4, 6] {
        let mut gone = members.pop().unwrap();
        gone.leave("g").await;
        settle(&mut members, "g", 12).await;
        let after = owners(&members);
        assert_eq!(
            moves(&before, &after),
            expected,
            "a clean leave moves only the leaver's partitions"
        );
        total += expected;
        before = after;
    }
    assert_eq!(total, 26);
    assert_eq!(members[0].owned.len(), 12);
}

#[tokio::test]
async fn a_dead_member_loses_its_partitions_after_the_session_timeout_and_a_zombie_commit_is_refused()
 {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 4).await;
    let mut a = Member::join(&broker, "g", None, 500).await;
    let mut b = Member::join(&broker, "g", None, 10_000).await;
    let mut both = vec![a, b];
    settle(&mut both, "g", 4).await;
    b = both.pop().unwrap();
    a = both.pop().unwrap();
    // a commits, then its connection dies (no leave, no more heartbeats).
    let commit = vec![OffsetCommit {
        topic: "t".into(),
        partition: *a.owned.iter().next().map(|(_, p)| p).unwrap(),
        offset: 7,
        metadata: String::new(),
    }];
    a.commit("g", commit.clone()).await.unwrap();
    let zombie_id = a.id.clone();
    let zombie_epoch = a.epoch;
    drop(a);
    // b keeps heartbeating: once a's session expires, b gets everything.
    guard("b takes over all partitions", async {
        loop {
            b.beat("g").await.unwrap();
            if b.owned.len() == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await; // b's heartbeat period
        }
    })
    .await;
    // The zombie's commit is refused with a clear code.
    let mut z = Ws::connect(&broker).await;
    z.hello(false).await;
    let req = CommitOffsets {
        group: "g".into(),
        member_id: zombie_id,
        member_epoch: Some(zombie_epoch),
        offsets: commit,
    };
    let err = z
        .call(9, Request::CommitOffsets(req), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownMember);
    // A stale epoch from a live member is fenced.
    let req = CommitOffsets {
        group: "g".into(),
        member_id: b.id.clone(),
        member_epoch: Some(b.epoch + 5),
        offsets: vec![],
    };
    assert_eq!(
        z.call(10, Request::CommitOffsets(req), false)
            .await
            .unwrap_err()
            .code,
        ErrorCode::FencedMemberEpoch
    );
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_and_lag_is_right() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 2).await;
    let records: Vec<_> = (0..10)
        .map(|i| json!({"value": format!("v{i}"), "partition": i % 2}))
        .collect();
    http.produce("t", json!(records)).await;
    // Commit as a standalone group (no members).
    http.post("/v1/groups/g/offsets", &json!({"offsets": [{"topic": "t", "partition": 0, "offset": 3}, {"topic": "t", "partition": 1, "offset": 5, "metadata": "m"}]}))
        .await
        .expect(200);
    let d = http.get("/v1/groups/g").await.expect(200);
    let lag: Vec<(u64, u64)> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["committed"].as_u64().unwrap(), p["lag"].as_u64().unwrap()))
        .collect();
    assert_eq!(lag, vec![(3, 2), (5, 0)]);
    let dir = broker.stop();
    let broker = TestBroker::start_in(dir, &[]);
    let http = Http::new(&broker);
    let o = http.get("/v1/groups/g/offsets").await.expect(200);
    let got: Vec<(u64, u64, String)> = o["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["partition"].as_u64().unwrap(),
                x["offset"].as_u64().unwrap(),
                x["metadata"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, vec![(0, 3, String::new()), (1, 5, "m".into())]);
    let groups = http.get("/v1/groups").await.expect(200);
    assert_eq!(groups["groups"][0]["group"], "g");
    // Reset to earliest (no active members), then delete.
    let r = http
        .post("/v1/groups/g/reset-offsets", &json!({"to": "earliest"}))
        .await
        .expect(200);
    assert!(
        r["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["offset"] == 0)
    );
    http.delete("/v1/groups/g").await.expect(200);
    http.get("/v1/groups/g")
        .await
        .expect_error(404, "unknown_group");
}

#[tokio::test]
async fn admin_operations_are_refused_while_the_group_has_members() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 2).await;
    let _m = Member::join(&broker, "g", None, 10_000).await;
    http.post(
        "/v1/groups/g/reset-offsets",
        &json!({"to": "latest", "topics": ["t"]}),
    )
    .await
    .expect_error(409, "group_not_empty");
    http.post(
        "/v1/groups/g/offsets",
        &json!({"offsets": [{"topic": "t", "partition": 0, "offset": 1}]}),
    )
    .await
    .expect_error(409, "unknown_member");
}

#[tokio::test]
async fn a_static_member_restarting_within_its_session_keeps_its_partitions() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 6).await;
    let a = Member::join(&broker, "g", Some("host-a"), 10_000).await;
    let b = Member::join(&broker, "g", Some("host-b"), 10_000).await;
    let mut both = vec![a, b];
    settle(&mut both, "g", 6).await;
    let before: Vec<Owned> = both.iter().map(|m| m.owned.clone()).collect();
    let old_id = both[0].id.clone();
    let epoch = http.get("/v1/groups/g").await.expect(200)["group_epoch"].clone();
    let mut a = both.remove(0);
    let req = GroupHeartbeat {
        group: "g".into(),
        member_id: a.id.clone(),
        member_epoch: -2,
        ..Default::default()
    };
    a.apply(req).await.unwrap();
    drop(a);
    let mut again = Member::join(&broker, "g", Some("host-a"), 10_000).await;
    again.beat("g").await.unwrap();
    assert_ne!(again.id, old_id, "the new incarnation has a new member id");
    both.insert(0, again);
    let after: Vec<Owned> = both.iter().map(|m| m.owned.clone()).collect();
    assert_eq!(after, before, "same partitions, no moves");
    assert_eq!(
        http.get("/v1/groups/g").await.expect(200)["group_epoch"],
        epoch,
        "no rebalance"
    );
}

#[tokio::test]
async fn three_broadcast_consumers_each_get_every_record() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 3).await;
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let mut ws = Ws::connect(&broker).await;
        ws.hello(false).await;
        let a = ws
            .call(
                1,
                Request::Subscribe {
                    topic: "t".into(),
                    partitions: None,
                    from: StartFrom::Earliest,
                    credit_bytes: 1 << 20,
                    positions: None,
                    filter: None,
                    map: None,
                },
                false,
            )
            .await
            .unwrap();
        assert!(matches!(a, Answer::Subscribed { .. }));
        consumers.push(ws);
    }
    let records: Vec<_> = (0..30)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("v{i}")}))
        .collect();
    http.produce("t", json!(records)).await;
    for ws in consumers.iter_mut() {
        let mut got = BTreeSet::new();
        while got.len() < 30 {
            let f = ws.recv().await;
            let ServerBody::Records(d) = f.body else {
                panic!("expected records, got {f:?}")
            };
            for r in d.fetch.records {
                got.insert(String::from_utf8(r.value.unwrap().0).unwrap());
            }
        }
        assert_eq!(got.len(), 30);
    }
}

#[tokio::test]
async fn http_consumer_instances_split_partitions_poll_commit_and_resume() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 4).await;
    let records: Vec<_> = (0..40)
        .map(|i| json!({"value": format!("v{i}"), "partition": i % 4}))
        .collect();
    http.produce("t", json!(records)).await;
    let create =
        json!({"topics": ["t"], "auto_offset_reset": "earliest", "session_timeout_ms": 10000});
    let a = http.post("/v1/consumers/g", &create).await.expect(201);
    let b = http.post("/v1/consumers/g", &create).await.expect(201);
    let (a_uri, b_uri) = (
        a["base_uri"].as_str().unwrap().to_string(),
        b["base_uri"].as_str().unwrap().to_string(),
    );
    // Poll both until every record has been seen exactly once (the split settles on the way).
    let mut seen: BTreeMap<(u64, u64), String> = BTreeMap::new();
    guard("two instances consume everything", async {
        while seen.len() < 40 {
            for uri in [&a_uri, &b_uri] {
                let got = http
                    .get(&format!("{uri}/records?wait_ms=200"))
                    .await
                    .expect(200);
                for r in got["records"].as_array().unwrap() {
                    let key = (
                        r["partition"].as_u64().unwrap(),
                        r["offset"].as_u64().unwrap(),
                    );
                    let prev = seen.insert(key, uri.clone());
                    assert!(prev.is_none(), "record {key:?} delivered twice");
                }
            }
        }
    })
    .await;
    let a_assign = http.get(&format!("{a_uri}/assignment")).await.expect(200);
    let b_assign = http.get(&format!("{b_uri}/assignment")).await.expect(200);
    let count = |v: &serde_json::Value| {
        v["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["partitions"].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(count(&a_assign) + count(&b_assign), 4);
    // Commit positions, leave; a new instance resumes after the committed offsets.
    http.post(&format!("{a_uri}/offsets"), &json!({}))
        .await
        .expect(200);
    http.post(&format!("{b_uri}/offsets"), &json!({}))
        .await
        .expect(200);
    let d = http.get("/v1/groups/g").await.expect(200);
    assert!(
        d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0),
        "{d}"
    );
    http.delete(&a_uri).await.expect(200);
    http.delete(&b_uri).await.expect(200);
    http.get(&format!("{a_uri}/records"))
        .await
        .expect_error(409, "unknown_member");
    http.produce("t", json!([{"value": "late", "partition": 2}]))
        .await;
    let c = http.post("/v1/consumers/g", &create).await.expect(201);
    let c_uri = c["base_uri"].as_str().unwrap().to_string();
    let mut late = Vec::new();
    guard("the new instance gets only the new record", async {
        while late.is_empty() {
            let got = http
                .get(&format!("{c_uri}/records?wait_ms=200"))
                .await
                .expect(200);
            late.extend(
                got["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["value"].as_str().unwrap().to_string()),
            );
        }
    })
    .await;
    assert_eq!(late, vec!["late".to_string()]);
}

#[tokio::test]
async fn the_group_cli_lists_describes_resets_and_deletes() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 2).await;
    http.produce(
        "t",
        json!([{"value": "a", "partition": 0}, {"value": "b", "partition": 0}]),
    )
    .await;
    http.post(
        "/v1/groups/g/offsets",
        &json!({"offsets": [{"topic": "t", "partition": 0, "offset": 1}]}),
    )
    .await
    .expect(200);
    let url = format!("http://{}", broker.addr);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, _) = run(&["group", "list"]);
    assert!(
        ok && stdout.contains('g') && stdout.contains("empty"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&["group", "describe", "g", "--json"]);
    assert!(ok);
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["partitions"][0]["lag"], 1);
    let (ok, stdout, _) = run(&["group", "describe", "g"]);
    assert!(ok && stdout.contains("LAG"), "{stdout}");
    let (ok, stdout, _) = run(&["group", "reset-offsets", "g", "--to", "latest", "--json"]);
    assert!(ok, "{stdout}");
    let o: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(o["offsets"][0]["offset"], 2);
    let (ok, _, stderr) = run(&["group", "reset-offsets", "g", "--to", "sideways"]);
    assert!(!ok && stderr.contains("earliest"), "{stderr}");
    let (ok, _, _) = run(&["group", "delete", "g"]);
    assert!(ok);
    let (ok, _, stderr) = run(&["group", "describe", "g"]);
    assert!(!ok && stderr.contains("unknown_group"), "{stderr}");
}

#[tokio::test]
async fn a_pattern_subscription_picks_up_matching_topics_as_they_appear() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("orders-eu", 2).await;
    http.create_topic("audit", 2).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let join = GroupHeartbeat {
        group: "g".into(),
        member_epoch: 0,
        topic_pattern: Some("orders-.*".into()),
        ..Default::default()
    };
    let mut pushes = Vec::new();
    let Answer::GroupAssignment(a) =
        call_skipping_pushes(&mut ws, 1, Request::GroupHeartbeat(join), &mut pushes)
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        sets(&a.assignment),
        [("orders-eu".to_string(), 0), ("orders-eu".to_string(), 1)].into()
    );
    http.create_topic("orders-us", 1).await;
    let beat = GroupHeartbeat {
        group: "g".into(),
        member_id: Some(a.member_id.clone()),
        member_epoch: a.member_epoch,
        owned: Some(a.assignment.clone()),
        ..Default::default()
    };
    let Answer::GroupAssignment(b) =
        call_skipping_pushes(&mut ws, 2, Request::GroupHeartbeat(beat), &mut pushes)
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(sets(&b.assignment).len(), 3, "{b:?}");
    assert!(
        b.member_epoch > a.member_epoch,
        "a new topic is a new group epoch"
    );
    let bad = GroupHeartbeat {
        group: "h".into(),
        member_epoch: 0,
        topic_pattern: Some("(".into()),
        ..Default::default()
    };
    assert_eq!(
        call_skipping_pushes(&mut ws, 3, Request::GroupHeartbeat(bad), &mut pushes)
            .await
            .unwrap_err()
            .code,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn offsets_of_an_empty_group_expire_after_the_retention() {
    let broker = TestBroker::start(&["--offsets-retention-ms", "300"]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    http.post(
        "/v1/groups/old/offsets",
        &json!({"offsets": [{"topic": "t", "partition": 0, "offset": 0}]}),
    )
    .await
    .expect(200);
    guard("offsets expire", async {
        loop {
            if http.get("/v1/groups/old").await.status == 404 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling the expiry, not a readiness wait
        }
    })
    .await;
    let dir = broker.stop();
    let broker = TestBroker::start_in(dir, &[]);
    Http::new(&broker)
        .get("/v1/groups/old")
        .await
        .expect_error(404, "unknown_group");
}

#[tokio::test]
async fn assignment_changes_are_pushed_without_waiting_for_a_heartbeat() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 4).await;
    let mut a = Member::join(&broker, "g", None, 30_000).await;
    assert_eq!(a.owned.len(), 4);
    let mut b = Member::join(&broker, "g", None, 30_000).await;
    assert!(b.owned.is_empty(), "b waits for a to give partitions up");
    // a learns it must give up two partitions by a push, not by its next heartbeat.
    let pushed = guard("revocation pushed to a", a.pushed()).await;
    assert_eq!(
        pushed
            .assignment
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>(),
        2
    );
    // a confirms; b is pushed the freed partitions.
    a.beat("g").await.unwrap();
    let got = guard("freed partitions pushed to b", b.pushed()).await;
    assert_eq!(sets(&got.assignment).len(), 2);
    assert!(sets(&got.assignment).is_disjoint(&a.owned));
}

#[tokio::test]
async fn a_member_connection_that_closes_frees_its_slot() {
    let broker = TestBroker::start(&["--max-connections", "1"]);
    let http_guard = {
        // Create the topic before the only slot is taken.
        let http = Http::new(&broker);
        http.create_topic("t", 2).await;
        http
    };
    let mut m = Member::join(&broker, "g", None, 60_000).await;
    m.ws.stream.close(None).await.unwrap();
    drop(m);
    // The member's session outlives its connection, but its connection slot does not.
    guard("a new connection is accepted", async {
        loop {
            match Ws::try_connect(&broker).await {
                common::net::Connect::Open(_) => break,
                common::net::Connect::Refused(429, _) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                common::net::Connect::Refused(s, b) => panic!("{s} {b}"),
            }
        }
    })
    .await;
    drop(http_guard);
}

#[tokio::test]
async fn a_subscription_learns_at_once_that_its_topic_was_deleted() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("gone", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let a = ws
        .call(
            1,
            Request::Subscribe {
                topic: "gone".into(),
                partitions: None,
                from: StartFrom::Latest,
                credit_bytes: 1 << 20,
                positions: None,
                filter: None,
                map: None,
            },
            false,
        )
        .await
        .unwrap();
    let Answer::Subscribed { subscription, .. } = a else {
        panic!("{a:?}")
    };
    http.delete("/v1/topics/gone").await.expect(200);
    let f = ws.recv().await;
    assert_eq!(f.subscription, Some(subscription));
    let ServerBody::Error(e) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(e.code, ErrorCode::UnknownTopic);
}
