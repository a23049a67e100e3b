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
    /// Drain a broker: it takes no new replicas and each of its replicas moves to another live
    /// broker (watch `sluice cluster status` until it holds none; then stop it).
    Decommission {
        /// The broker's id.
        id: u32,
    },
}

/// Arguments of `sluice partition`.
#[derive(Debug, Args)]
#[command(after_help = "\
The new replicas copy the partition from its leader; once every one of them is in sync the
controller drops the old ones (and moves leadership if the leader is not among the new).
`sluice cluster status` shows the move under way (REPLICAS holds old and new together).

Examples:
  sluice partition reassign orders 0 --replicas 2,3,4
  sluice partition reassign orders 0 --replicas 2,3,4 --json")]
pub struct PartitionArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: PartitionCommand,
}

/// What to do with a partition.
#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Move a partition to other brokers.
    Reassign {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The new replicas, comma-separated broker ids, preferred leader first.
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<u32>,
    },
}

/// Runs `sluice partition`.
pub async fn run_partition(args: PartitionArgs) -> ExitCode {
    let mut out = Stdout::new();
    let r = match &args.command {
        PartitionCommand::Reassign {
            topic,
            partition,
            replicas,
        } => {
            let body =
                serde_json::json!({"topic": topic, "partition": partition, "replicas": replicas});
            post(
                &args.client,
                &["v1", "cluster", "reassign"],
                body,
                &mut out,
                |v| {
                    format!(
                        "moving {}/{} to brokers {}; `sluice cluster status` shows the progress",
                        v["topic"].as_str().unwrap_or(""),
                        v["partition"],
                        ids(&v["target"])
                    )
                },
            )
            .await
        }
    };
    match r.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(args.client.json),
    }
}

async fn post(
    opts: &ClientOpts,
    path: &[&str],
    body: Value,
    out: &mut Stdout,
    human: impl Fn(&Value) -> String,
) -> Result<(), CliError> {
    let client = Client::new(opts);
    let url = client.endpoint(path)?;
    let answer: Value = client
        .send(client.http().post(url).json(&body).timeout(REQUEST_TIMEOUT))
        .await?;
    if opts.json {
        out.json(&answer)
    } else {
        out.line(human(&answer))
    }
}

/// Runs `sluice cluster`.
pub async fn run(args: ClusterArgs) -> ExitCode {
    let mut out = Stdout::new();
    let r = match args.command {
        ClusterCommand::Status => status(&args.client, &mut out).await,
        ClusterCommand::Decommission { id } => {
            let id_s = id.to_string();
            let path = ["v1", "cluster", "brokers", id_s.as_str(), "decommission"];
            post(&args.client, &path, serde_json::json!({}), &mut out, |_| {
                format!("broker {id} is draining: its replicas are moving to other brokers; stop it once `sluice cluster status` shows it holds none")
            })
            .await
        }
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
