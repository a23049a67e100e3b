//! `sluice consume`: prints a topic's records, fetched partition by partition through
//! `GET /v1/topics/{topic}/partitions/{p}/records`.
//!
//! Start offsets come from `GET /v1/topics/{topic}/offsets`. Without `--follow` the end of each
//! partition is its high watermark at start, so the command always ends. With `--follow`,
//! partitions are read round robin while they have records; once every one is caught up they
//! are long-polled together and the first to answer with records is printed.

use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use sluice_protocol::types::{ConsumedRecord, FetchResponse, Headers, OffsetsResponse, StartFrom};
use sluice_protocol::{ErrorBody, ErrorCode, Payload};

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout};

/// How long one long-poll waits for new records with `--follow`, in ms.
pub const FOLLOW_WAIT_MS: u64 = 1000;
/// Most partitions long-polled at once with `--follow`; the others are read in the rounds
/// between long-polls.
pub const MAX_PARKED_POLLS: usize = 64;
/// Largest `--max-bytes`, in bytes.
pub const MAX_FETCH_BYTES: u64 = 64 << 20;

/// Arguments of `sluice consume` (its help text comes from `after_help`: the subcommand's doc
/// line in main.rs replaces a struct doc).
#[derive(Debug, Args)]
#[command(after_help = "\
Reads every partition (or the --partition one) from --from up to the end it had when the
command started, then exits; with --follow it waits for new records until Ctrl-C. Records of
one partition come in offset order; partitions interleave. Keys and values that are not
UTF-8 text print as base64.

Examples:
  sluice consume orders                          all values, then exit
  sluice consume orders --from latest --follow   only new records, until Ctrl-C
  sluice consume orders --from 42 --partition 0 --max 10
  sluice consume orders --from @1718000000000 --format kv
  sluice consume orders --json | jq -r .key")]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// The topic.
    pub topic: String,
    /// Where to start in each partition: earliest (the first stored record), latest (only
    /// records produced from now on), an offset (records at or after it), or @TIMESTAMP_MS (the
    /// first record at or after that time, in ms since the epoch).
    #[arg(long, default_value = "earliest", value_name = "earliest|latest|OFFSET|@TIMESTAMP_MS", value_parser = parse_start)]
    pub from: StartFrom,
    /// Read only this partition (default: all of them).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Keep waiting for new records after the end instead of exiting (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// How to print each record (--json implies json).
    #[arg(long, value_enum, default_value_t = Format::Value)]
    pub format: Format,
    /// Byte budget of one fetch (at least one record batch is always returned).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=MAX_FETCH_BYTES))]
    pub max_bytes: u64,
}

/// Output formats of `sluice consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value as text (`null` for a tombstone).
    Value,
    /// The key, a tab, the value (`null` for a missing one).
    Kv,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        _ => {
            if let Some(ts) = s.strip_prefix('@') {
                ts.parse().map(StartFrom::Timestamp).map_err(|_| {
                    format!(
                        "`{s}`: after @ comes a time in ms since the epoch, like @1718000000000"
                    )
                })
            } else {
                s.parse().map(StartFrom::Offset).map_err(|_| {
                    format!("`{s}` is not earliest, latest, an offset or @TIMESTAMP_MS")
                })
            }
        }
    }
}

/// One record as `--format json` prints it.
#[derive(Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: &'a Option<Payload>,
    value: &'a Option<Payload>,
    headers: &'a Headers,
}

/// Reading position in one partition.
#[derive(Debug)]
struct Cursor {
    partition: u32,
    /// The next offset to fetch.
    position: u64,
    /// Records below this are not printed (`--from OFFSET` beyond the current end).
    skip_below: u64,
    /// Stop here (exclusive); `None` with `--follow`.
    end: Option<u64>,
}

impl Cursor {
    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.position >= end)
    }
}

struct Consumer<'a> {
    client: Client,
    args: &'a ConsumeArgs,
    format: Format,
    /// Records left to print under `--max`.
    left: Option<u64>,
    out: &'a mut Stdout,
}

/// Runs `sluice consume`.
pub async fn run(args: ConsumeArgs) -> ExitCode {
    let json = args.client.json;
    let mut out = Stdout::new();
    let result = if args.follow {
        tokio::select! {
            r = consume(&args, &mut out) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    } else {
        consume(&args, &mut out).await
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            e.report(json)
        }
    }
}

async fn consume(args: &ConsumeArgs, out: &mut Stdout) -> Result<(), CliError> {
    let format = if args.client.json {
        Format::Json
    } else {
        args.format
    };
    let mut consumer = Consumer {
        client: Client::new(&args.client),
        args,
        format,
        left: args.max,
        out,
    };
    if consumer.left == Some(0) {
        return Ok(());
    }
    let mut cursors = consumer.start_positions().await?;
    cursors.retain(|c| !c.done());
    consumer.read(cursors).await
}

impl Consumer<'_> {
    /// Where each partition starts and (without `--follow`) ends.
    async fn start_positions(&self) -> Result<Vec<Cursor>, CliError> {
        let mut url = self
            .client
            .endpoint(&["v1", "topics", &self.args.topic, "offsets"])?;
        if let StartFrom::Timestamp(ts) = self.args.from {
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string());
        }
        let offsets: OffsetsResponse = self
            .client
            .send(self.client.http().get(url).timeout(REQUEST_TIMEOUT))
            .await?;
        let count = offsets.partitions.len();
        let mut cursors = Vec::with_capacity(count);
        for p in offsets.partitions {
            if self.args.partition.is_some_and(|want| want != p.partition) {
                continue;
            }
            let latest = p.latest.max(p.earliest);
            let position = match self.args.from {
                StartFrom::Earliest => p.earliest,
                StartFrom::Latest => latest,
                StartFrom::Offset(o) => o.clamp(p.earliest, latest),
                // No record at or after the time (JSON null, which reads back as `None`, not
                // `Some(None)`): start at the end.
                StartFrom::Timestamp(_) => p.offset_for_timestamp.flatten().unwrap_or(latest),
            };
            let end = if self.args.follow {
                None
            } else {
                Some(p.latest)
            };
            let skip_below = match self.args.from {
                StartFrom::Offset(o) => o,
                _ => 0,
            };
            cursors.push(Cursor {
                partition: p.partition,
                position,
                skip_below,
                end,
            });
        }
        if let (Some(want), true) = (self.args.partition, cursors.is_empty()) {
            return Err(CliError::Broker(ErrorBody::new(
                ErrorCode::UnknownPartition,
                format!(
                    "topic {} has no partition {want}; it has {count} (0 to {})",
                    self.args.topic,
                    count.saturating_sub(1)
                ),
            )));
        }
        Ok(cursors)
    }

    /// Reads the cursors round robin until every one is done or `--max` is reached.
    async fn read(&mut self, mut cursors: Vec<Cursor>) -> Result<(), CliError> {
        let mut next = 0usize;
        // Fetches in a row that found nothing: once every cursor had one, all are caught up.
        let mut empty_streak = 0usize;
        let mut parked_from = 0usize;
        while !cursors.is_empty() {
            if empty_streak >= cursors.len() {
                // Only with --follow: finished cursors are removed otherwise.
                let window = cursors.len().min(MAX_PARKED_POLLS);
                let start = parked_from % cursors.len();
                parked_from = parked_from.wrapping_add(window);
                let mut polls: FuturesUnordered<_> = (0..window)
                    .map(|k| {
                        let i = (start + k) % cursors.len();
                        let c = &cursors[i];
                        let fetch = self.fetch(c.partition, c.position, FOLLOW_WAIT_MS);
                        async move { (i, fetch.await) }
                    })
                    .collect();
                let mut got = None;
                while let Some((i, answer)) = polls.next().await {
                    let idle = matches!(&answer, Ok(resp) if resp.records.is_empty() && resp.next_offset <= cursors[i].position);
                    if !idle {
                        got = Some((i, answer));
                        break;
                    }
                }
                drop(polls);
                match got {
                    Some((i, answer)) => {
                        self.handle(&mut cursors[i], answer)?;
                        empty_streak = 0;
                    }
                    // Every parked partition timed out: the ones outside the window get a
                    // round before the next long-poll.
                    None if cursors.len() > window => empty_streak = 0,
                    None => {}
                }
                if self.left == Some(0) {
                    return Ok(());
                }
                continue;
            }
            let i = next % cursors.len();
            let c = &cursors[i];
            let answer = self.fetch(c.partition, c.position, 0).await;
            let printed = self.handle(&mut cursors[i], answer)?;
            if self.left == Some(0) {
                return Ok(());
            }
            if cursors[i].done() {
                cursors.remove(i);
                empty_streak = 0;
                // `next` now names the cursor after the removed one.
                next = i;
            } else {
                empty_streak = if printed == 0 { empty_streak + 1 } else { 0 };
                next = i + 1;
            }
        }
        Ok(())
    }

    fn fetch(
        &self,
        partition: u32,
        offset: u64,
        wait_ms: u64,
    ) -> impl Future<Output = Result<FetchResponse, CliError>> + use<> {
        let url = self.client.endpoint(&[
            "v1",
            "topics",
            &self.args.topic,
            "partitions",
            &partition.to_string(),
            "records",
        ]);
        let request = url.map(|mut url| {
            url.query_pairs_mut()
                .append_pair("offset", &offset.to_string())
                .append_pair("max_bytes", &self.args.max_bytes.to_string())
                .append_pair("wait_ms", &wait_ms.to_string());
            self.client
                .http()
                .get(url)
                .timeout(REQUEST_TIMEOUT + Duration::from_millis(wait_ms))
        });
        let client = self.client.clone();
        async move { client.send(request?).await }
    }

    /// Prints what a fetch brought and moves the cursor; answers how many records it printed.
    fn handle(
        &mut self,
        cursor: &mut Cursor,
        answer: Result<FetchResponse, CliError>,
    ) -> Result<u64, CliError> {
        let resp = match answer {
            Ok(r) => r,
            Err(CliError::Broker(e)) if e.code == ErrorCode::OffsetOutOfRange => {
                self.out_of_range(cursor, &e)?;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let mut printed = 0;
        let mut last = None;
        let from = cursor.position.max(cursor.skip_below);
        for r in &resp.records {
            if r.offset < from {
                continue;
            }
            if cursor.end.is_some_and(|end| r.offset >= end) {
                break;
            }
            self.print(resp.partition, r)?;
            printed += 1;
            last = Some(r.offset);
            if let Some(left) = self.left.as_mut() {
                *left -= 1;
                if *left == 0 {
                    break;
                }
            }
        }
        self.out.flush()?;
        let before = cursor.position;
        if let Some(last) = last {
            cursor.position = last + 1;
        }
        if self.left != Some(0) {
            // Past records skipped by compaction or control batches, too.
            cursor.position = cursor.position.max(resp.next_offset);
        }
        if cursor.position == before
            && cursor
                .end
                .is_some_and(|end| before < end && before < resp.high_watermark)
        {
            return Err(CliError::Other(format!(
                "partition {}: the broker returned nothing at offset {before}, below its high watermark {}",
                cursor.partition, resp.high_watermark
            )));
        }
        Ok(printed)
    }

    /// Retention deleted records under the cursor, or the partition was truncated: skip to
    /// the nearest valid offset and say so.
    fn out_of_range(&self, cursor: &mut Cursor, e: &ErrorBody) -> Result<(), CliError> {
        let to = match (e.log_start_offset, e.log_end_offset) {
            (Some(start), _) if cursor.position < start => start,
            (_, Some(end)) if cursor.position > end => end,
            _ => return Err(CliError::Broker(e.clone())),
        };
        eprintln!(
            "warning: partition {}: offset {} is out of range ({}); continuing at {to}",
            cursor.partition, cursor.position, e.message
        );
        cursor.position = to;
        Ok(())
    }

    fn print(&mut self, partition: u32, r: &ConsumedRecord) -> Result<(), CliError> {
        match self.format {
            Format::Value => self.out.line(text(&r.value)),
            Format::Kv => self
                .out
                .line(format_args!("{}\t{}", text(&r.key), text(&r.value))),
            Format::Json => self.out.json(&JsonRecord {
                topic: &self.args.topic,
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: &r.key,
                value: &r.value,
                headers: &r.headers,
            }),
        }
    }
}

/// A key or value for the text formats: itself when it is UTF-8, base64 otherwise.
fn text(payload: &Option<Payload>) -> Cow<'_, str> {
    match payload {
        None => Cow::Borrowed("null"),
        Some(p) => match std::str::from_utf8(&p.0) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(STANDARD.encode(&p.0)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("earliest"), Ok(StartFrom::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartFrom::Latest));
        assert_eq!(parse_start("42"), Ok(StartFrom::Offset(42)));
        assert_eq!(
            parse_start("@1718000000000"),
            Ok(StartFrom::Timestamp(1_718_000_000_000))
        );
        assert!(parse_start("-1").is_err());
        assert!(parse_start("@soon").is_err());
    }

    #[test]
    fn binary_payloads_print_as_base64() {
        assert_eq!(text(&Some(Payload(b"hi".to_vec()))), "hi");
        assert_eq!(text(&Some(Payload(vec![0xff, 0]))), "/wA=");
        assert_eq!(text(&None), "null");
    }
}
