//! Admin operations and error reporting against the real broker.

mod common;

use std::collections::BTreeMap;

use common::{TestBroker, free_port, test_options};
use sluice_client::{
    AlterTopic, Client, ConsumerOptions, Error, ErrorCode, NewTopic, ProducerOptions,
    ProducerRecord,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_topics() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    let info = client.server_info().expect("connected");
    assert_eq!(info.version, 1);
    assert!(info.server.starts_with("sluice/"), "{}", info.server);

    let admin = client.admin();
    let created = admin
        .create_topic(
            NewTopic::new("orders")
                .partitions(2)
                .config("retention.ms", "3600000"),
        )
        .await
        .unwrap();
    assert_eq!(created.partitions.len(), 2);
    assert_eq!(created.configs["retention.ms"], "3600000");

    let again = admin
        .create_topic(NewTopic::new("orders"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::TopicExists));
    assert!(!again.is_retriable());

    let topics = admin.list_topics().await.unwrap();
    assert!(
        topics
            .iter()
            .any(|t| t.name == "orders" && t.partitions == 2)
    );

    let altered = admin
        .alter_topic(
            "orders",
            AlterTopic {
                configs: BTreeMap::from([("retention.ms".to_string(), None)]),
                partitions: Some(3),
            },
        )
        .await
        .unwrap();
    assert_eq!(altered.partitions.len(), 3);
    assert_ne!(altered.configs["retention.ms"], "3600000");
    assert_eq!(
        admin
            .describe_topic("orders")
            .await
            .unwrap()
            .partitions
            .len(),
        3
    );

    let offsets = admin.list_offsets("orders", Some(0)).await.unwrap();
    assert_eq!(offsets.len(), 3);
    assert!(
        offsets
            .iter()
            .all(|o| o.earliest == 0 && o.latest == 0 && o.offset_for_timestamp == Some(None))
    );

    admin.delete_topic("orders").await.unwrap();
    let gone = admin.describe_topic("orders").await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::UnknownTopic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_broker_errors_that_are_not_retriable() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;

    let e = client
        .consumer(ConsumerOptions::new(["nope"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Broker {
                code: ErrorCode::UnknownTopic,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retriable());

    let producer = client.producer(ProducerOptions::new());
    let e = producer
        .send(ProducerRecord::new("nope", "v"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    assert!(!e.is_retriable());

    let e = client.admin().delete_topic("nope").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_records_are_refused_before_sending() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic(
            NewTopic::new("small")
                .partitions(2)
                .config("max.message.bytes", "2048"),
        )
        .await
        .unwrap();
    let producer = client.producer(ProducerOptions::new());
    let e = producer
        .send(ProducerRecord::new("small", vec![0u8; 4096]))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    let e = producer
        .send(ProducerRecord::new("small", "v").with_partition(7))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    // A record that fits still goes through.
    let m = producer
        .send(ProducerRecord::new("small", vec![1u8; 1000]))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(m.offset, Some(0));
    producer.close().await.unwrap();
    let e = producer
        .send(ProducerRecord::new("small", "late"))
        .await
        .unwrap_err();
    assert_eq!(e, Error::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_down_is_a_connection_error() {
    let port = free_port();
    let e = Client::connect_with(&format!("http://127.0.0.1:{port}"), test_options())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connection(_)), "{e:?}");
    assert!(e.is_retriable());

    let e = Client::connect("https://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_refuses_requests() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    let clone = client.clone();
    client.close();
    let e = clone.admin().list_topics().await.unwrap_err();
    assert_eq!(e, Error::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_ends_its_consumers_with_an_error() {
    use futures_util::StreamExt;
    use sluice_client::StartFrom;
    use std::time::Duration;

    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    common::create_topic(&client, "doomed", 1).await;
    let producer = client.producer(ProducerOptions::new());
    producer
        .send(ProducerRecord::new("doomed", "v"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut consumer = client
        .consumer(ConsumerOptions::new(["doomed"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.offset, 0);
    client.admin().delete_topic("doomed").await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the consumer hears of the deletion")
        .unwrap()
        .unwrap_err();
    assert_eq!(end.code(), Some(ErrorCode::UnknownTopic), "{end:?}");
    assert!(consumer.assignment().is_empty());
    assert_eq!(consumer.position("doomed", 0), None);
    producer.close().await.unwrap();
}
