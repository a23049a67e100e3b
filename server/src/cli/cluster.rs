//! `sluice cluster status`: brokers, the controller, partition leaders and ISRs, and the
//! partitions that are under-replicated, through `GET /v1/cluster`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, Table};

/// Arguments of `sluice cluster`.
#[derive(Debug, Args)]
#[command(after_help = "\
A broker started without --peers reports itself as a single-node cluster.

Examples:
  sluice cluster status
  sluice cluster status --url http://127.0.0.1:9402
  sluice cluster status --json | jq '.under_replicated'")]
pub struct ClusterArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers (alive or dead), the controller, every partition's replicas, leader, epoch and
    /// ISR, and the under-replicated partitions.
    Status,
}

/// Runs `sluice cluster`.
pub async fn run(args: ClusterArgs) -> ExitCode {
    let mut out = Stdout::new();
    let r = match args.command {
        ClusterCommand::Status => status(&args.client, &mut out).await,
    };
    match r.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(args.client.json),
    }
}

fn ids(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn status(opts: &ClientOpts, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(opts);
    let url = client.endpoint(&["v1", "cluster"])?;
    let answer: Value = client
        .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
        .await?;
    if opts.json {
        return out.json(&answer);
    }
    let controller = answer["controller"].as_u64();
    out.line(format!(
        "cluster {} ({} mode), asked broker {}, controller {}",
        answer["cluster_id"].as_str().unwrap_or("?"),
        answer["mode"].as_str().unwrap_or("?"),
        answer["node_id"],
        controller.map_or_else(
            || "none (election under way)".to_string(),
            |c| c.to_string()
        )
    ))?;
    out.line("")?;
    let mut brokers = Table::new(&["BROKER", "ADDRESS", "STATE", "ROLE"]);
    for b in answer["brokers"].as_array().into_iter().flatten() {
        let state = match (b["alive"].as_bool(), b["decommissioning"].as_bool()) {
            (Some(true), Some(true)) => "alive, draining",
            (Some(true), _) => "alive",
            _ => "dead",
        };
        let role = if b["id"].as_u64() == controller {
            "controller"
        } else {
            ""
        };
        brokers.row(vec![
            b["id"].to_string(),
            b["address"].as_str().unwrap_or("").to_string(),
            state.to_string(),
            role.to_string(),
        ]);
    }
    brokers.write(out)?;
    let topics = answer["topics"].as_array().cloned().unwrap_or_default();
    if !topics.is_empty() {
        out.line("")?;
        let mut parts = Table::new(&["TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"]);
        for t in &topics {
            for p in t["partitions"].as_array().into_iter().flatten() {
                parts.row(vec![
                    t["name"].as_str().unwrap_or("").to_string(),
                    p["partition"].to_string(),
                    p["leader"]
                        .as_u64()
                        .map_or_else(|| "none".to_string(), |l| l.to_string()),
                    p["leader_epoch"].to_string(),
                    ids(&p["replicas"]),
                    ids(&p["isr"]),
                ]);
            }
        }
        parts.write(out)?;
    }
    let under = answer["under_replicated"].as_array().map_or(0, Vec::len);
    out.line("")?;
    out.line(format!("under-replicated partitions: {under}"))?;
    Ok(())
}
