//! Prometheus metrics, rendered at `GET /metrics` (OpenMetrics text).
//!
//! `prometheus-client` is the Prometheus project's own Rust client: typed label sets, no
//! global registry, text encoding only — what a server that renders on scrape needs.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sluice_broker::Broker;
use sluice_protocol::types::ProduceResponse;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    endpoint: String,
    status: String,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    records_in: Family<PartitionLabels, Counter>,
    bytes_in: Family<PartitionLabels, Counter>,
    records_out: Family<PartitionLabels, Counter>,
    bytes_out: Family<PartitionLabels, Counter>,
    log_size: Family<PartitionLabels, Gauge>,
    log_end_offset: Family<PartitionLabels, Gauge>,
    log_start_offset: Family<PartitionLabels, Gauge>,
    latency: HistogramFamily,
    connections: Gauge,
    /// Open WebSocket connections.
    pub ws_connections: Gauge,
    /// WebSocket frames received.
    pub ws_frames_in: Counter,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let records_in = Family::<PartitionLabels, Counter>::default();
        let bytes_in = Family::<PartitionLabels, Counter>::default();
        let records_out = Family::<PartitionLabels, Counter>::default();
        let bytes_out = Family::<PartitionLabels, Counter>::default();
        let log_size = Family::<PartitionLabels, Gauge>::default();
        let log_end_offset = Family::<PartitionLabels, Gauge>::default();
        let log_start_offset = Family::<PartitionLabels, Gauge>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let connections = Gauge::default();
        let ws_connections = Gauge::default();
        let ws_frames_in = Counter::default();
        registry.register(
            "records_in",
            "Records produced, per topic and partition",
            records_in.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes produced (request payload), per topic and partition",
            bytes_in.clone(),
        );
        registry.register(
            "records_out",
            "Records fetched, per topic and partition",
            records_out.clone(),
        );
        registry.register(
            "bytes_out",
            "Bytes of record batches fetched, per topic and partition",
            bytes_out.clone(),
        );
        registry.register(
            "log_size_bytes",
            "Bytes on disk of each partition's log",
            log_size.clone(),
        );
        registry.register(
            "log_end_offset",
            "Offset the next record of each partition gets",
            log_end_offset.clone(),
        );
        registry.register(
            "log_start_offset",
            "First offset still stored in each partition",
            log_start_offset.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency per endpoint",
            latency.clone(),
        );
        registry.register(
            "connections",
            "Client connections and HTTP requests in progress",
            connections.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        registry.register(
            "websocket_frames_in",
            "WebSocket frames received",
            ws_frames_in.clone(),
        );
        Metrics {
            registry,
            records_in,
            bytes_in,
            records_out,
            bytes_out,
            log_size,
            log_end_offset,
            log_start_offset,
            latency,
            connections,
            ws_connections,
            ws_frames_in,
        }
    }

    fn labels(topic: &str, partition: impl ToString) -> PartitionLabels {
        PartitionLabels {
            topic: topic.to_string(),
            partition: partition.to_string(),
        }
    }

    /// Counts a produce: records and request bytes are attributed to partitions by the share
    /// of records each received (exact for single-partition requests).
    pub fn produced(&self, topic: &str, resp: &ProduceResponse, records: u64, bytes: u64) {
        if resp.offsets.is_empty() {
            let l = Self::labels(topic, "unknown");
            self.records_in.get_or_create(&l).inc_by(records);
            self.bytes_in.get_or_create(&l).inc_by(bytes);
            return;
        }
        let per_entry = resp.offsets.len() as u64 == records;
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for o in &resp.offsets {
            *counts.entry(o.partition).or_default() += if per_entry { 1 } else { 0 };
        }
        if !per_entry {
            // One entry per batch group: all records went to the listed partition.
            counts.insert(resp.offsets[0].partition, records);
        }
        for (p, n) in counts {
            let l = Self::labels(topic, p);
            self.records_in.get_or_create(&l).inc_by(n);
            self.bytes_in
                .get_or_create(&l)
                .inc_by(bytes * n / records.max(1));
        }
    }

    /// Counts a fetch.
    pub fn fetched(&self, topic: &str, partition: u32, records: u64, bytes: u64) {
        let l = Self::labels(topic, partition);
        self.records_out.get_or_create(&l).inc_by(records);
        self.bytes_out.get_or_create(&l).inc_by(bytes);
    }

    /// Records an HTTP request's latency.
    pub fn observe_request(&self, method: &str, endpoint: &str, status: u16, elapsed: Duration) {
        let l = RequestLabels {
            method: method.to_string(),
            endpoint: endpoint.to_string(),
            status: status.to_string(),
        };
        self.latency
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition, with log gauges read from the broker now.
    pub fn render(&self, broker: &Broker, open_connections: usize) -> String {
        self.log_size.clear();
        self.log_end_offset.clear();
        self.log_start_offset.clear();
        for t in broker.topics() {
            for p in t.partitions() {
                let l = Self::labels(&t.name, p.id);
                self.log_size
                    .get_or_create(&l)
                    .set(p.log.size_bytes() as i64);
                self.log_end_offset
                    .get_or_create(&l)
                    .set(p.log.log_end_offset() as i64);
                self.log_start_offset
                    .get_or_create(&l)
                    .set(p.log.log_start_offset() as i64);
            }
        }
        self.connections.set(open_connections as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
