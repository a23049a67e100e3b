//! `sluice bench`: measures produce and consume throughput, and end-to-end latency, against a
//! running broker through the Rust SDK (`sluice-client`), as an application would see them.
//!
//! Every producer and consumer gets its own client (one WebSocket each). Unless `--topic` is
//! given, the run uses a fresh topic `bench-<random>` with `--partitions` partitions and
//! deletes it afterwards (`--keep` keeps it). Latency (`e2e`, `group`) is measured from the
//! moment `send` was called to the moment a consumer received the record: the send time
//! travels in a record header, `bench-ts`.
//!
//! With `--filter NAME` the consumers attach that uploaded filter plugin (parameters from
//! `--filter-param k=v`): the broker sends only the records it keeps, so the run counts the
//! records read through the filter by the consumers' positions (`scanned`) as well as the
//! records delivered. `--json-values` makes the values JSON objects with a `region` field (for
//! the JSON filter and partitioner examples) and `--keys N` gives records one of N keys.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use sluice_client::{
    Acks, Bytes, Client, ConsumerOptions, ErrorCode, NewTopic, OffsetReset, ProducerOptions,
    ProducerRecord, StartFrom,
};

use super::{CliError, ClientOpts, Stdout};

/// The header carrying a record's send time (nanoseconds since the run began, big-endian).
const TS_HEADER: &str = "bench-ts";
/// Records when neither --count nor --duration is given.
const DEFAULT_COUNT: u64 = 1_000_000;
/// How long consumers may see nothing once the producers are done before the run fails.
const STALL: Duration = Duration::from_secs(30);

/// Arguments of `sluice bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Scenarios:
  produce  send records as fast as possible (or at --rate) and wait for their acks
  consume  fill the topic first (not timed), then read it all back
  e2e      produce and consume at once; latency from send to receipt
  group    like e2e, the consumers being members of one consumer group

Examples:
  sluice bench produce --count 1000000 --record-bytes 100
  sluice bench consume --duration 10 --partitions 4 --consumers 2
  sluice bench e2e --rate 100000 --duration 30 --json
  sluice bench group --partitions 6 --consumers 3 --producers 2
  sluice bench consume --json-values --filter grep --filter-param keyword='\"eu\"'
  sluice bench produce --topic routed --keys 1000 --json-values")]
pub struct BenchArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Size of each record's value, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records to produce in all (default 1000000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Produce for this many seconds instead of a fixed count.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub producers: u32,
    /// Consumers, each with its own connection (consume, e2e, group). Outside a group each
    /// reads its share of the partitions, so at most --partitions of them read.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
    /// Partitions of the temporary topic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Replicas of each partition of the temporary topic (0: the broker's default — 1 on a
    /// single broker, 3 in a cluster of three or more).
    #[arg(long, default_value_t = 0)]
    pub replication_factor: u16,
    /// Use this topic (created with --partitions if missing) instead of a temporary one; it
    /// is never deleted.
    #[arg(long)]
    pub topic: Option<String>,
    /// Keep the temporary topic instead of deleting it at the end.
    #[arg(long)]
    pub keep: bool,
    /// Acknowledgements the producers ask for: 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: Acks,
    /// Largest record batch the producers build, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// How long a producer batch may wait for more records, in ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Most records per second in all producers together (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Consumers attach this uploaded filter plugin (consume, e2e, group).
    #[arg(long, value_name = "NAME")]
    pub filter: Option<String>,
    /// A parameter of the filter plugin, KEY=VALUE (repeatable).
    #[arg(long = "filter-param", value_name = "KEY=VALUE", requires = "filter", value_parser = parse_param)]
    pub filter_params: Vec<(String, String)>,
    /// Values are JSON objects `{"region":"eu|us|ap|sa","pad":"xx.."}` of --record-bytes
    /// (the region cycling per record) instead of --record-bytes of `x`.
    #[arg(long)]
    pub json_values: bool,
    /// Give records one of this many keys (`key-0` ...), cycling; 0 sends keyless records.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub keys: u64,
}

/// `KEY=VALUE`.
fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// The regions `--json-values` cycles through.
const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];

/// The value of records of region `i % 4`: `{"region":"..","pad":"xx.."}` padded to `bytes`
/// (or just the object when `bytes` is smaller).
fn json_value(i: usize, bytes: usize) -> Bytes {
    let head = format!(r#"{{"region":"{}","pad":""#, REGIONS[i % REGIONS.len()]);
    let pad = bytes.saturating_sub(head.len() + 2);
    let mut v = Vec::with_capacity(head.len() + pad + 2);
    v.extend_from_slice(head.as_bytes());
    v.resize(head.len() + pad, b'x');
    v.extend_from_slice(b"\"}");
    Bytes::from(v)
}

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Produce only.
    Produce,
    /// Fill the topic, then consume it.
    Consume,
    /// Produce and consume at once, measuring latency.
    E2e,
    /// Like e2e with group consumers.
    Group,
}

/// The result of a run, printed as one JSON object with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    topic: String,
    partitions: u32,
    producers: u32,
    consumers: u32,
    record_bytes: usize,
    acks: String,
    batch_bytes: usize,
    linger_ms: u64,
    rate: u64,
    /// The filter plugin the consumers attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    /// Records measured: produced (produce) or consumed (the others; with a filter, the
    /// records it kept).
    records: u64,
    /// Value bytes of those records.
    bytes: u64,
    seconds: f64,
    records_per_sec: f64,
    /// Value bytes per second, in units of 10^6 bytes.
    mb_per_sec: f64,
    produced: u64,
    consumed: Option<u64>,
    /// With a filter: records the consumers read through it (kept or dropped), and per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    scanned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scanned_per_sec: Option<f64>,
    /// Send-to-receipt latency (e2e and group).
    latency_ms: Option<Latency>,
}

#[derive(Debug, Serialize)]
struct Latency {
    samples: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Runs `sluice bench ...`.
pub async fn run(args: BenchArgs) -> ExitCode {
    let json = args.client.json;
    let mut out = Stdout::new();
    let result = match bench(&args).await {
        Ok(report) => print(&report, json, &mut out).and_then(|()| out.flush()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}

fn sdk(e: sluice_client::Error) -> CliError {
    CliError::Other(e.to_string())
}

async fn bench(args: &BenchArgs) -> Result<Report, CliError> {
    if args.filter.is_some() && args.scenario == Scenario::Produce {
        return Err(CliError::Other(
            "--filter applies to the consume, e2e and group scenarios".into(),
        ));
    }
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        return Err(CliError::Other(
            "--duration must be a positive number".into(),
        ));
    }
    let url = args.client.url.as_str();
    let admin_client = Client::connect(url).await.map_err(|e| {
        CliError::Other(format!(
            "cannot reach a broker at {url}: {e}; start one with `sluice serve` or pass --url"
        ))
    })?;
    let admin = admin_client.admin();
    let temporary = args.topic.is_none();
    let topic = args.topic.clone().unwrap_or_else(random_topic);
    match admin
        .create_topic(
            NewTopic::new(&topic)
                .partitions(args.partitions)
                .replication_factor(args.replication_factor),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if !temporary && e.code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(sdk(e)),
    }
    let result = measure(args, &admin_client, &topic).await;
    if temporary && !args.keep {
        let deleted = admin.delete_topic(&topic).await;
        if result.is_ok() {
            deleted.map_err(sdk)?;
        }
    }
    admin_client.close();
    result
}

/// Shared counters of a run.
struct Shared {
    url: String,
    topic: String,
    /// The clock the send timestamps count from.
    epoch: Instant,
    produced: AtomicU64,
    consumed: AtomicU64,
    /// Records the consumers are to read: unknown (u64::MAX) until the producers are done.
    target: AtomicU64,
    /// Partitions the consumers have been given so far.
    assigned: AtomicU64,
    /// First offset of the run in each partition: older records are not counted.
    start_offsets: HashMap<u32, u64>,
    /// With a filter: the furthest position any consumer reached in each partition.
    positions: std::sync::Mutex<HashMap<u32, u64>>,
    /// With a filter: records read through it, by the positions.
    scanned: AtomicU64,
    filter: Option<(String, Vec<(String, String)>)>,
}

impl Shared {
    /// Whether the consumers are done: every record produced was read (through the filter,
    /// by position) or received.
    fn done(&self) -> bool {
        let target = self.target.load(Ordering::Relaxed);
        let got = match self.filter {
            Some(_) => self.scanned.load(Ordering::Relaxed),
            None => self.consumed.load(Ordering::Relaxed),
        };
        got >= target
    }

    /// Takes in a consumer's positions; returns whether any moved forward.
    fn advance(&self, positions: impl Iterator<Item = (u32, u64)>) -> bool {
        let mut known = self.positions.lock().expect("positions lock");
        let mut moved = 0;
        for (p, pos) in positions {
            let start = self.start_offsets.get(&p).copied().unwrap_or(0);
            let at = known.entry(p).or_insert(start);
            if pos > *at {
                moved += pos - *at;
                *at = pos;
            }
        }
        self.scanned.fetch_add(moved, Ordering::Relaxed);
        moved > 0
    }
}

async fn measure(args: &BenchArgs, client: &Client, topic: &str) -> Result<Report, CliError> {
    let offsets = client
        .admin()
        .list_offsets(topic, None)
        .await
        .map_err(sdk)?;
    let partitions = offsets.len() as u32;
    let shared = Arc::new(Shared {
        url: args.client.url.clone(),
        topic: topic.to_string(),
        epoch: Instant::now(),
        produced: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        assigned: AtomicU64::new(0),
        start_offsets: offsets.iter().map(|o| (o.partition, o.latest)).collect(),
        positions: std::sync::Mutex::new(HashMap::new()),
        scanned: AtomicU64::new(0),
        filter: args
            .filter
            .clone()
            .map(|name| (name, args.filter_params.clone())),
    });
    let latency = matches!(args.scenario, Scenario::E2e | Scenario::Group);
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(shared.clone())));

    let mut consumers = Vec::new();
    let start_consumers = |shared: &Arc<Shared>, consumers: &mut Vec<_>| {
        let group = (args.scenario == Scenario::Group).then(random_topic);
        let members = match group {
            Some(_) => args.consumers,
            None => args.consumers.min(partitions),
        };
        for i in 0..members {
            let mine = match group {
                Some(_) => None,
                None => Some(
                    (0..partitions)
                        .filter(|p| p % members == i)
                        .collect::<Vec<_>>(),
                ),
            };
            consumers.push(tokio::spawn(consume(
                shared.clone(),
                group.clone(),
                mine,
                latency,
            )));
        }
    };

    let mut produce_start = Instant::now();
    if latency {
        start_consumers(&shared, &mut consumers);
        // Produce once every partition has a reader.
        let deadline = Instant::now() + STALL;
        while shared.assigned.load(Ordering::Relaxed) < u64::from(partitions) {
            if Instant::now() > deadline {
                return Err(CliError::Other(
                    "the consumers were not given every partition within 30 s".into(),
                ));
            }
            if consumers.iter().any(|c| c.is_finished()) {
                break; // with an error, reported below
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        produce_start = Instant::now();
    }

    let mut producers = Vec::new();
    let count = match args.duration {
        Some(_) => None,
        None => Some(args.count.unwrap_or(DEFAULT_COUNT)),
    };
    let until = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    for i in 0..args.producers {
        let quota = count.map(|c| {
            c / u64::from(args.producers) + u64::from(u64::from(i) < c % u64::from(args.producers))
        });
        let options = ProducerOptions::new()
            .acks(args.acks)
            .batch_bytes(args.batch_bytes)
            .linger_ms(args.linger_ms);
        let rate = args.rate as f64 / f64::from(args.producers);
        producers.push(tokio::spawn(produce(
            shared.clone(),
            options,
            Load {
                quota,
                until,
                rate,
                record_bytes: args.record_bytes,
                stamp: latency,
                json_values: args.json_values,
                keys: args.keys,
                first_key: u64::from(i),
            },
        )));
    }
    let mut produced = 0;
    let mut first_error = None;
    for p in producers {
        match p.await {
            Ok(Ok(n)) => produced += n,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(CliError::Other(format!("producer task: {e}")));
            }
        }
    }
    let produce_seconds = produce_start.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        for c in &consumers {
            c.abort();
        }
        return Err(e);
    }
    shared.target.store(produced, Ordering::Relaxed);

    let mut consume_start = produce_start;
    if args.scenario == Scenario::Consume {
        consume_start = Instant::now();
        start_consumers(&shared, &mut consumers);
    }
    let mut histogram = Histogram::default();
    let mut consumed = 0;
    for c in consumers {
        match c.await {
            Ok(Ok((n, h))) => {
                consumed += n;
                histogram.merge(&h);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(CliError::Other(format!("consumer task: {e}")));
            }
        }
    }
    let consume_seconds = consume_start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
        eprint!("\r{:79}\r", "");
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let (records, seconds) = match args.scenario {
        Scenario::Produce => (produced, produce_seconds),
        _ => (consumed, consume_seconds),
    };
    let bytes = records * args.record_bytes as u64;
    let seconds = seconds.max(1e-9);
    let scanned = shared
        .filter
        .as_ref()
        .map(|_| shared.scanned.load(Ordering::Relaxed));
    Ok(Report {
        scenario: args.scenario,
        topic: topic.to_string(),
        partitions,
        producers: args.producers,
        consumers: match args.scenario {
            Scenario::Produce => 0,
            Scenario::Group => args.consumers,
            _ => args.consumers.min(partitions),
        },
        record_bytes: args.record_bytes,
        acks: args.acks.to_string(),
        filter: args.filter.clone(),
        batch_bytes: args.batch_bytes,
        linger_ms: args.linger_ms,
        rate: args.rate,
        records,
        bytes,
        seconds,
        records_per_sec: records as f64 / seconds,
        mb_per_sec: bytes as f64 / 1e6 / seconds,
        produced,
        consumed: (args.scenario != Scenario::Produce).then_some(consumed),
        scanned,
        scanned_per_sec: scanned.map(|n| n as f64 / seconds),
        latency_ms: latency.then(|| histogram.latency()),
    })
}

/// What one producer sends.
struct Load {
    quota: Option<u64>,
    until: Option<Instant>,
    rate: f64,
    record_bytes: usize,
    stamp: bool,
    json_values: bool,
    keys: u64,
    /// Where this producer starts in the key cycle.
    first_key: u64,
}

/// One producer: sends its quota (or until the deadline), then flushes.
async fn produce(
    shared: Arc<Shared>,
    options: ProducerOptions,
    load: Load,
) -> Result<u64, CliError> {
    let Load {
        quota,
        until,
        rate,
        record_bytes,
        stamp,
        json_values,
        keys,
        first_key,
    } = load;
    let client = Client::connect(&shared.url).await.map_err(sdk)?;
    let producer = client.producer(options);
    // Values shared by the records: the producer copies them into its batches.
    let values: Vec<Bytes> = if json_values {
        (0..REGIONS.len())
            .map(|i| json_value(i, record_bytes))
            .collect()
    } else {
        vec![Bytes::from(vec![b'x'; record_bytes])]
    };
    let keys: Vec<Bytes> = (0..keys).map(|k| Bytes::from(format!("key-{k}"))).collect();
    let topic = shared.topic.as_str();
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        if quota.is_some_and(|q| sent >= q) {
            break;
        }
        if sent.is_multiple_of(1024) && until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            let elapsed = start.elapsed();
            if due > elapsed + Duration::from_millis(1) {
                tokio::time::sleep(due - elapsed).await;
            }
            if until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
        }
        let mut record = ProducerRecord::new(topic, values[sent as usize % values.len()].clone());
        if !keys.is_empty() {
            record =
                record.with_key(keys[((first_key + sent) % keys.len() as u64) as usize].clone());
        }
        if stamp {
            let now = shared.epoch.elapsed().as_nanos() as u64;
            record = record.with_header(TS_HEADER, Bytes::copy_from_slice(&now.to_be_bytes()));
        }
        producer.send(record).await.map_err(sdk)?.detach();
        sent += 1;
        shared.produced.fetch_add(1, Ordering::Relaxed);
    }
    producer.flush().await.map_err(sdk)?;
    producer.close().await.map_err(sdk)?;
    client.close();
    Ok(sent)
}

/// One consumer: reads until all consumers together have the records produced.
async fn consume(
    shared: Arc<Shared>,
    group: Option<String>,
    partitions: Option<Vec<u32>>,
    latency: bool,
) -> Result<(u64, Histogram), CliError> {
    let client = Client::connect(&shared.url).await.map_err(sdk)?;
    let topic = shared.topic.as_str();
    let mut options = ConsumerOptions::new([topic]).credit_bytes(32 << 20);
    if let Some((name, params)) = &shared.filter {
        options = options.filter(name.clone(), params.iter().cloned());
    }
    let mut ready = false;
    options = match (&group, &partitions) {
        (Some(g), _) => options
            .group(g)
            .auto_offset_reset(OffsetReset::Earliest)
            .auto_commit_interval_ms(Some(1000)),
        (None, Some(p)) => options.partitions(p.clone()).start(StartFrom::Earliest),
        (None, None) => options.start(StartFrom::Earliest),
    };
    let mut consumer = client.consumer(options).await.map_err(sdk)?;
    if let Some(p) = &partitions {
        for &partition in p {
            let from = shared.start_offsets.get(&partition).copied().unwrap_or(0);
            if from > 0 {
                consumer.seek(topic, partition, from).map_err(sdk)?;
            }
        }
        shared.assigned.fetch_add(p.len() as u64, Ordering::Relaxed);
        ready = true;
    }
    let mut histogram = Histogram::default();
    let mut seen = 0u64;
    let mut idle_since = Instant::now();
    loop {
        if shared.done() {
            break;
        }
        let batch = consumer
            .poll_batch(4096, Duration::from_millis(100))
            .await
            .map_err(sdk)?;
        if shared.filter.is_some() {
            let positions = consumer
                .assignment()
                .into_iter()
                .filter_map(|(t, p)| Some((p, consumer.position(&t, p)?)));
            if shared.advance(positions) {
                idle_since = Instant::now();
            }
        }
        if !ready && !consumer.assignment().is_empty() {
            shared
                .assigned
                .fetch_add(consumer.assignment().len() as u64, Ordering::Relaxed);
            ready = true;
        }
        if batch.is_empty() {
            if shared.target.load(Ordering::Relaxed) != u64::MAX && idle_since.elapsed() > STALL {
                return Err(CliError::Other(format!(
                    "consumers stalled: {} of {} records received ({} read through the filter)",
                    shared.consumed.load(Ordering::Relaxed),
                    shared.target.load(Ordering::Relaxed),
                    shared.scanned.load(Ordering::Relaxed),
                )));
            }
            continue;
        }
        idle_since = Instant::now();
        let now = shared.epoch.elapsed().as_nanos() as u64;
        let mut counted = 0;
        for record in &batch {
            let from = shared
                .start_offsets
                .get(&record.partition)
                .copied()
                .unwrap_or(0);
            if record.offset < from {
                continue;
            }
            counted += 1;
            if latency
                && let Some(sent) = record
                    .headers
                    .iter()
                    .find(|h| h.key == TS_HEADER)
                    .and_then(|h| h.value.as_deref())
                    .and_then(|v| <[u8; 8]>::try_from(v).ok())
            {
                histogram.record(now.saturating_sub(u64::from_be_bytes(sent)));
            }
        }
        seen += counted;
        shared.consumed.fetch_add(counted, Ordering::Relaxed);
    }
    let _ = consumer.close().await;
    client.close();
    Ok((seen, histogram))
}

/// Prints a progress line on stderr every second (only when stderr is a terminal).
async fn progress(shared: Arc<Shared>) {
    let start = Instant::now();
    let mut last = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let produced = shared.produced.load(Ordering::Relaxed);
        let consumed = shared.consumed.load(Ordering::Relaxed);
        eprint!(
            "\r{:>5.0} s  produced {produced:>11} ({:>9}/s)  consumed {consumed:>11} ({:>9}/s)   ",
            start.elapsed().as_secs_f64(),
            produced - last.0,
            consumed - last.1,
        );
        last = (produced, consumed);
    }
}

fn print(report: &Report, json: bool, out: &mut Stdout) -> Result<(), CliError> {
    if json {
        return out.json(report);
    }
    out.line(format_args!(
        "{}: {} records of {} B in {:.3} s: {:.0} records/s, {:.1} MB/s (topic {}, {} partition(s), {} producer(s), {} consumer(s), acks={})",
        serde_json::to_value(report.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        report.records,
        report.record_bytes,
        report.seconds,
        report.records_per_sec,
        report.mb_per_sec,
        report.topic,
        report.partitions,
        report.producers,
        report.consumers,
        report.acks,
    ))?;
    if let (Some(filter), Some(scanned), Some(rate)) =
        (&report.filter, report.scanned, report.scanned_per_sec)
    {
        out.line(format_args!(
            "filter {filter}: {scanned} records read through it ({rate:.0} records/s), {} kept",
            report.records
        ))?;
    }
    if let Some(l) = &report.latency_ms {
        out.line(format_args!(
            "latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.samples
        ))?;
    }
    Ok(())
}

/// A name no other run picks: `bench-` and 16 hex digits of the clock and process id.
fn random_topic() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("bench-{mixed:016x}")
}

/// Log-linear histogram of nanosecond values: exact below 64, then 32 buckets per power of
/// two (about 3 % precision), with the exact maximum kept aside.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros() as usize; // >= 6
        let shift = exp - 5;
        let mantissa = (v >> shift) as usize; // 32..64
        64 + (shift - 1) * 32 + (mantissa - 32)
    }

    /// The largest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        if i < 64 {
            return i as u64;
        }
        let shift = (i - 64) / 32 + 1;
        let mantissa = ((i - 64) % 32 + 32) as u128;
        u64::try_from(((mantissa + 1) << shift) - 1).unwrap_or(u64::MAX)
    }

    fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1): the upper bound of its bucket, at most the maximum.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    fn latency(&self) -> Latency {
        let ms = |ns: u64| ns as f64 / 1e6;
        Latency {
            samples: self.count,
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in (0..10_000u64).chain([1 << 20, (1 << 20) + 1, u64::MAX / 2, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= last, "index of {v} went down");
            last = i;
            assert!(Histogram::upper(i) >= v, "{v} above its bucket");
            if v >= 64 {
                assert!(Histogram::upper(i) - v <= v / 32 + 1, "{v} bucket too wide");
            }
        }
    }

    #[test]
    fn histogram_quantiles_are_monotone_and_capped_by_max() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let q: Vec<u64> = [0.5, 0.9, 0.99, 0.999, 1.0]
            .iter()
            .map(|&q| h.quantile(q))
            .collect();
        assert!(q.windows(2).all(|w| w[0] <= w[1]), "{q:?}");
        assert!(q[4] <= h.max);
        let p50 = q[0] as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "{p50}");
    }
}
