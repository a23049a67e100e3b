//! `sluice produce`: one record per input line, sent in batches through
//! `POST /v1/topics/{topic}/records`.
//!
//! A reader thread splits the input into records and hands them over a bounded channel; the
//! sender gathers up to `--batch` of them (or [`BATCH_BYTES`], or whatever arrived within
//! [`LINGER_MS`]) per request, so a file goes out in full batches while lines typed at a
//! terminal go out as soon as they are entered. Requests are sent one at a time, so records of
//! one key keep their order.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use sluice_protocol::Payload;
use sluice_protocol::types::{Acks, Headers, ProduceRecord, ProduceRequest, ProduceResponse};
use tokio::sync::mpsc;

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, parse_key_value};

/// Longest input line (one record), in bytes: the broker's default request limit.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Most key and value bytes in one request. JSON escaping can grow them (base64 by 4/3,
/// control characters up to 6 times), which still fits the broker's default 16 MiB body.
pub const BATCH_BYTES: usize = 2 << 20;
/// Most records per request (`--batch`).
pub const MAX_BATCH: u32 = 100_000;
/// How long a partly filled batch waits for more lines before it is sent, in ms.
pub const LINGER_MS: u64 = 10;

/// Arguments of `sluice produce` (its help text comes from `after_help`: the subcommand's doc
/// line in main.rs replaces a struct doc).
#[derive(Debug, Args)]
#[command(after_help = "\
Each line is one record. Records are routed like a Kafka producer's: --partition wins, else
the key's murmur2 hash picks the partition (the same key always lands on the same one), else
each request goes to one partition, round robin. Prints a summary, or with --json one line
{\"partition\":P,\"offset\":O} per record, in input order.

Examples:
  echo hello | sluice produce orders
  printf 'user-1:signed up\\nuser-2:paid\\n' | sluice produce orders --key-separator :
  sluice produce orders --file events.txt --acks 1 --header source=import
  sluice produce orders --key user-1 --partition 0 --json < lines.txt")]
pub struct ProduceArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// The topic.
    pub topic: String,
    /// Read lines from this file instead of standard input.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Give every record this key.
    #[arg(long, conflicts_with = "key_separator")]
    pub key: Option<String>,
    /// Split each line at the first SEP into key and value (`user-1:hello` with `:`); a line
    /// without SEP is an error.
    #[arg(long, value_name = "SEP", value_parser = non_empty)]
    pub key_separator: Option<String>,
    /// Send every record to this partition instead of routing by key.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Wait for 0 (no answer: offsets unknown, errors after validation not reported), 1 (the
    /// leader wrote it) or all (every in-sync replica has it).
    #[arg(long, default_value = "all", value_name = "0|1|all")]
    pub acks: Acks,
    /// Add a header to every record, KEY=VALUE (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Most lines per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64))]
    pub batch: u32,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the separator cannot be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// How input lines become records.
struct Shape {
    key: Option<Payload>,
    key_separator: Option<Vec<u8>>,
    partition: Option<u32>,
    headers: Headers,
}

impl Shape {
    /// The record of input line `number` (1-based), without its line ending.
    fn record(&self, number: u64, line: &[u8]) -> Result<ProduceRecord, CliError> {
        let (key, value) = match &self.key_separator {
            Some(sep) => match find(line, sep) {
                Some(at) => (Some(Payload::from(&line[..at])), &line[at + sep.len()..]),
                None => {
                    return Err(CliError::Other(format!(
                        "line {number} has no key separator {:?}; with --key-separator every line must be KEY{}VALUE",
                        String::from_utf8_lossy(sep),
                        String::from_utf8_lossy(sep),
                    )));
                }
            },
            None => (self.key.clone(), line),
        };
        Ok(ProduceRecord {
            key,
            value: Some(Payload::from(value)),
            headers: self.headers.clone(),
            partition: self.partition,
            timestamp: None,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `sluice produce`.
pub async fn run(args: ProduceArgs) -> ExitCode {
    let json = args.client.json;
    let mut out = Stdout::new();
    match produce(args, &mut out).await.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            e.report(json)
        }
    }
}

async fn produce(args: ProduceArgs, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(&args.client);
    let mut url = client.endpoint(&["v1", "topics", &args.topic, "records"])?;
    url.query_pairs_mut()
        .append_pair("acks", &args.acks.to_string());
    let shape = Shape {
        key: args.key.as_deref().map(Payload::from),
        key_separator: args.key_separator.map(String::into_bytes),
        partition: args.partition,
        headers: Headers(
            args.headers
                .into_iter()
                .map(|(k, v)| (k, Some(Payload::from(v.as_str()))))
                .collect(),
        ),
    };
    let (input, input_bytes): (Box<dyn Read + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::Other(format!("cannot open {}: {e}", path.display())))?;
            let len = file.metadata().map(|m| m.len()).ok();
            (Box::new(file), len)
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("type one record per line; Ctrl-D sends the rest and ends");
            }
            (Box::new(std::io::stdin()), None)
        }
    };
    let read_bytes = Arc::new(AtomicU64::new(0));
    let capacity = args.batch as usize;
    let (tx, mut rx) = mpsc::channel(capacity);
    let counter = read_bytes.clone();
    // The reader ends when the input does, on the first bad line, or when the sender hangs up.
    std::thread::spawn(move || read_records(input, &shape, &counter, &tx));

    let mut progress = match input_bytes {
        Some(total) if std::io::stderr().is_terminal() => Some(Progress::new(total, read_bytes)),
        _ => None,
    };
    let mut produced = 0u64;
    let mut partitions = BTreeSet::new();
    let mut batch = Vec::with_capacity(capacity);
    let mut failure = None;
    loop {
        let mut batch_bytes = 0usize;
        let first = match rx.recv().await {
            Some(r) => r,
            None => break,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(LINGER_MS);
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Ok(record) => {
                    batch_bytes += payload_len(&record);
                    batch.push(record);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if batch.len() >= capacity || batch_bytes >= BATCH_BYTES {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten();
        }
        if !batch.is_empty() {
            let body = ProduceRequest {
                records: std::mem::take(&mut batch),
            };
            let count = body.records.len() as u64;
            let req = client
                .http()
                .post(url.clone())
                .json(&body)
                .timeout(REQUEST_TIMEOUT);
            batch = body.records;
            batch.clear();
            let answer: ProduceResponse = match client.send(req).await {
                Ok(a) => a,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if args.acks != Acks::None && answer.offsets.len() as u64 != count {
                failure = Some(CliError::Other(format!(
                    "the broker answered {} offsets for {count} records",
                    answer.offsets.len()
                )));
                break;
            }
            produced += count;
            for o in &answer.offsets {
                partitions.insert(o.partition);
                if args.client.json {
                    out.json(o)?;
                }
            }
            out.flush()?;
            if let Some(p) = progress.as_mut() {
                p.show(produced);
            }
        }
        if failure.is_some() {
            break;
        }
    }
    if let Some(p) = progress {
        p.clear();
    }
    if let Some(e) = failure {
        return Err(with_progress_note(e, produced));
    }
    if args.client.json {
        return Ok(());
    }
    let s = if produced == 1 { "" } else { "s" };
    if produced == 0 {
        out.line("no records produced: the input was empty")
    } else if args.acks == Acks::None {
        out.line(format_args!(
            "sent {produced} record{s} to {} (acks=0: not confirmed)",
            args.topic
        ))
    } else {
        out.line(format_args!(
            "produced {produced} record{s} to {} ({})",
            args.topic,
            describe_partitions(&partitions)
        ))
    }
}

fn payload_len(r: &ProduceRecord) -> usize {
    r.key.as_ref().map_or(0, |k| k.0.len()) + r.value.as_ref().map_or(0, |v| v.0.len()) + 16
}

/// Adds how far the command got to an error that stopped it midway.
fn with_progress_note(e: CliError, produced: u64) -> CliError {
    if produced == 0 {
        return e;
    }
    let note = format!("{produced} record(s) before it were produced");
    match e {
        CliError::Broker(mut body) => {
            body.message = format!("{}; {note}", body.message);
            CliError::Broker(body)
        }
        CliError::Other(m) => CliError::Other(format!("{m}; {note}")),
        other => other,
    }
}

type Item = Result<ProduceRecord, CliError>;

/// Reads `input` line by line (a line ends at `\n`; a `\r` before it is dropped) into records.
fn read_records(
    input: Box<dyn Read + Send>,
    shape: &Shape,
    read_bytes: &AtomicU64,
    tx: &mpsc::Sender<Item>,
) {
    let mut reader = std::io::BufReader::with_capacity(64 << 10, input);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = match reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ =
                    tx.blocking_send(Err(CliError::Other(format!("cannot read the input: {e}"))));
                return;
            }
        };
        number += 1;
        read_bytes.fetch_add(n as u64, Ordering::Relaxed);
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else if line.len() > MAX_LINE_BYTES {
            let _ = tx.blocking_send(Err(CliError::Other(format!(
                "line {number} is longer than {} MiB, the most one record may be",
                MAX_LINE_BYTES >> 20
            ))));
            return;
        }
        let item = shape.record(number, &line);
        let stop = item.is_err();
        if tx.blocking_send(item).is_err() || stop {
            return;
        }
    }
}

/// `partition 0`, `partitions 0-2`, `partitions 0, 3-5`.
fn describe_partitions(partitions: &BTreeSet<u32>) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &p in partitions {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == p => *end = p,
            _ => ranges.push((p, p)),
        }
    }
    let text: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let noun = if partitions.len() == 1 {
        "partition"
    } else {
        "partitions"
    };
    format!("{noun} {}", text.join(", "))
}

/// A one-line progress report on stderr while a file is sent.
struct Progress {
    total_bytes: u64,
    read_bytes: Arc<AtomicU64>,
    started: Instant,
    shown: Option<Instant>,
}

impl Progress {
    const EVERY: Duration = Duration::from_millis(200);

    fn new(total_bytes: u64, read_bytes: Arc<AtomicU64>) -> Progress {
        Progress {
            total_bytes,
            read_bytes,
            started: Instant::now(),
            shown: None,
        }
    }

    fn show(&mut self, produced: u64) {
        if self.shown.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        self.shown = Some(Instant::now());
        let read = self.read_bytes.load(Ordering::Relaxed);
        let percent = (read * 100)
            .checked_div(self.total_bytes)
            .unwrap_or(100)
            .min(100);
        let rate = produced as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{percent:>3}%  {produced} records  {rate:.0} records/s"
        );
        let _ = err.flush();
    }

    fn clear(self) {
        if self.shown.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ranges() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(describe_partitions(&set(&[0])), "partition 0");
        assert_eq!(describe_partitions(&set(&[0, 1, 2])), "partitions 0-2");
        assert_eq!(
            describe_partitions(&set(&[0, 3, 4, 5, 9])),
            "partitions 0, 3-5, 9"
        );
    }

    #[test]
    fn key_separator_splits_at_the_first() {
        let shape = Shape {
            key: None,
            key_separator: Some(b"::".to_vec()),
            partition: None,
            headers: Headers::default(),
        };
        let r = shape.record(1, b"k::v::w").unwrap();
        assert_eq!(r.key.unwrap().0, b"k");
        assert_eq!(r.value.unwrap().0, b"v::w");
        assert!(shape.record(2, b"no separator").is_err());
        let r = shape.record(3, b"::").unwrap();
        assert_eq!((r.key.unwrap().0, r.value.unwrap().0), (vec![], vec![]));
    }
}
