//! `sluice offsets`: earliest and latest offsets of a topic's partitions, and the offset for a
//! time, through `GET /v1/topics/{topic}/offsets`.

use std::process::ExitCode;

use clap::Args;
use sluice_protocol::types::OffsetsResponse;

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, Table};

/// Arguments of `sluice offsets` (its help text comes from `after_help`: the subcommand's doc
/// line in main.rs replaces a struct doc).
#[derive(Debug, Args)]
#[command(after_help = "\
EARLIEST is the first offset still stored (retention moves it up). LATEST is the high
watermark: the offset the next record gets, where `consume --from latest` starts. With
--timestamp, also the first offset whose record is at or after that time (- when none is).

Examples:
  sluice offsets orders
  sluice offsets orders --timestamp 1718000000000
  sluice offsets orders --json")]
pub struct OffsetsArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    /// The topic.
    pub topic: String,
    /// Also find, per partition, the first offset at or after this time (ms since the epoch).
    #[arg(long, value_name = "MS")]
    pub timestamp: Option<i64>,
}

/// Runs `sluice offsets`.
pub async fn run(args: OffsetsArgs) -> ExitCode {
    let mut out = Stdout::new();
    match offsets(&args, &mut out).await.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(args.client.json),
    }
}

async fn offsets(args: &OffsetsArgs, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(&args.client);
    let mut url = client.endpoint(&["v1", "topics", &args.topic, "offsets"])?;
    if let Some(ts) = args.timestamp {
        url.query_pairs_mut()
            .append_pair("timestamp", &ts.to_string());
    }
    let mut answer: OffsetsResponse = client
        .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
        .await?;
    if args.timestamp.is_some() {
        // The broker's `null` (no record that late) reads back as `None`; print it as null.
        for p in &mut answer.partitions {
            p.offset_for_timestamp = Some(p.offset_for_timestamp.flatten());
        }
    }
    if args.client.json {
        return out.json(&answer);
    }
    let mut header = vec!["PARTITION", "EARLIEST", "LATEST"];
    if args.timestamp.is_some() {
        header.push("OFFSET-FOR-TIMESTAMP");
    }
    let mut table = Table::new(&header);
    for p in &answer.partitions {
        let mut row = vec![
            p.partition.to_string(),
            p.earliest.to_string(),
            p.latest.to_string(),
        ];
        if args.timestamp.is_some() {
            row.push(
                p.offset_for_timestamp
                    .flatten()
                    .map_or_else(|| "-".to_string(), |o| o.to_string()),
            );
        }
        table.row(row);
    }
    table.write(out)
}
