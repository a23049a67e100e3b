//! `sluice group`: list, describe, delete consumer groups and reset their offsets, through
//! `/v1/groups`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use sluice_protocol::types::{GroupDescription, GroupList, GroupOffsets, StartFrom};

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, Table};

/// Arguments of `sluice group`.
#[derive(Debug, Args)]
#[command(after_help = "\
A consumer group splits the partitions of its topics among its members; each partition has
one owner, and the group's committed offsets say where it resumes. `describe` shows members,
assignment, committed offsets and lag; `reset-offsets` and `delete` need a group without
active members (stop its consumers first).

Examples:
  sluice group list
  sluice group describe billing
  sluice group reset-offsets billing --to earliest
  sluice group reset-offsets billing --to @1718000000000 --topic orders
  sluice group delete billing")]
pub struct GroupArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: GroupCommand,
}

/// `sluice group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with members or committed offsets.
    List,
    /// Show a group's state, members, assignment, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group's committed offsets (no active members).
    Delete {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (no active members).
    ResetOffsets {
        /// Group id.
        group: String,
        /// earliest, latest, an offset, or @TIMESTAMP_MS.
        #[arg(long, value_name = "WHERE")]
        to: String,
        /// Only these topics (repeatable; default: every topic the group has offsets for).
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
}

/// Runs `sluice group`.
pub async fn run(args: GroupArgs) -> ExitCode {
    let mut out = Stdout::new();
    match group(&args, &mut out).await.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(args.client.json),
    }
}

fn parse_to(to: &str) -> Result<StartFrom, CliError> {
    match to {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        t if t.starts_with('@') => t[1..].parse().map(StartFrom::Timestamp).map_err(|_| {
            CliError::Other(format!(
                "--to {t}: a timestamp is @ and milliseconds since the epoch"
            ))
        }),
        t => t.parse().map(StartFrom::Offset).map_err(|_| {
            CliError::Other(format!(
                "--to {t}: use earliest, latest, an offset or @TIMESTAMP_MS"
            ))
        }),
    }
}

async fn group(args: &GroupArgs, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(&args.client);
    let json = args.client.json;
    match &args.command {
        GroupCommand::List => {
            let url = client.endpoint(&["v1", "groups"])?;
            let list: GroupList = client
                .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&list);
            }
            let mut t = Table::new(&["GROUP", "STATE", "MEMBERS"]);
            for g in &list.groups {
                t.row(vec![
                    g.group.clone(),
                    g.state.clone(),
                    g.members.to_string(),
                ]);
            }
            t.write(out)
        }
        GroupCommand::Describe { group } => {
            let url = client.endpoint(&["v1", "groups", group])?;
            let d: GroupDescription = client
                .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&d);
            }
            let n = d.members.len();
            out.line(format!(
                "group {}: {} (epoch {}, assignor {}, {n} member{})",
                d.group,
                d.state,
                d.group_epoch,
                d.assignor,
                if n == 1 { "" } else { "s" }
            ))?;
            let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "OWNER"]);
            for p in &d.partitions {
                t.row(vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.committed.map_or_else(|| "-".into(), |c| c.to_string()),
                    p.log_end_offset.to_string(),
                    p.lag.to_string(),
                    p.owner.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            t.write(out)
        }
        GroupCommand::Delete { group } => {
            let url = client.endpoint(&["v1", "groups", group])?;
            let v: serde_json::Value = client
                .send(client.http().delete(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&v);
            }
            out.line(format!("deleted group {group}"))
        }
        GroupCommand::ResetOffsets { group, to, topics } => {
            let to = parse_to(to)?;
            let url = client.endpoint(&["v1", "groups", group, "reset-offsets"])?;
            let body = serde_json::json!({
                "to": to,
                "topics": if topics.is_empty() { None } else { Some(topics) },
            });
            let o: GroupOffsets = client
                .send(client.http().post(url).json(&body).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&o);
            }
            let mut t = Table::new(&["TOPIC", "PARTITION", "OFFSET"]);
            for c in &o.offsets {
                t.row(vec![
                    c.topic.clone(),
                    c.partition.to_string(),
                    c.offset.to_string(),
                ]);
            }
            t.write(out)
        }
    }
}
