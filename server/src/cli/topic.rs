//! `sluice topic`: create, list, describe, alter and delete topics through `/v1/topics`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde::{Deserialize, Serialize};
use sluice_protocol::types::{AlterTopic, CreateTopic, TopicDescription, TopicList};

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, Table, parse_key_value};

/// Arguments of `sluice topic` (its help text comes from `after_help`: the subcommand's doc
/// line in main.rs replaces a struct doc).
#[derive(Debug, Args)]
#[command(after_help = "\
A topic is a named log split into partitions; records with the same key always land in the
same partition, so their order is kept. Settings (retention.ms, cleanup.policy,
max.message.bytes, ...) are per topic; the broker's defaults apply to the rest.

Examples:
  sluice topic create orders --partitions 3 --config retention.ms=86400000
  sluice topic list
  sluice topic describe orders
  sluice topic alter orders --partitions 6 --delete-config retention.ms
  sluice topic delete orders
  sluice topic list --json | jq -r '.topics[].name'")]
pub struct TopicArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: TopicCommand,
}

/// What to do with topics.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the topics with their partition counts.
    List {
        /// Include the broker's internal topics (`__consumer_offsets`).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions (offsets, size on disk) and every setting's effective value.
    Describe {
        /// The topic.
        name: String,
    },
    /// Add partitions or change settings of a topic.
    Alter(AlterArgs),
    /// Delete a topic and all its records. There is no undo.
    Delete {
        /// The topic.
        name: String,
    },
}

/// `sluice topic create`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sluice topic create orders
  sluice topic create clicks --partitions 12 --config retention.ms=3600000
  sluice topic create users --config cleanup.policy=compact")]
pub struct CreateArgs {
    /// Name: 1 to 249 of the characters a-z A-Z 0-9 . _ -
    pub name: String,
    /// Number of partitions: the most consumers of a group that can read in parallel. It can
    /// grow later (`topic alter --partitions`), which moves where keys are routed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Copies of each partition. Without it the broker chooses: 1 on a single broker, 3 in a
    /// cluster of three or more brokers (else all of them).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub replication_factor: Option<u16>,
    /// A topic setting, e.g. retention.ms=86400000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
}

/// `sluice topic alter`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["partitions", "configs", "delete_configs"])))]
#[command(after_help = "\
Examples:
  sluice topic alter orders --partitions 6
  sluice topic alter orders --config retention.ms=3600000 --config max.message.bytes=2097152
  sluice topic alter orders --delete-config retention.ms")]
pub struct AlterArgs {
    /// The topic.
    pub name: String,
    /// New total number of partitions (it can only grow; keys then route differently).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: Option<u32>,
    /// Set a topic setting, e.g. retention.ms=3600000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    /// Reset a setting to the broker's default (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    pub delete_configs: Vec<String>,
}

/// The broker's answer to a delete.
#[derive(Debug, Serialize, Deserialize)]
struct Deleted {
    deleted: String,
}

/// Runs `sluice topic ...`.
pub async fn run(args: TopicArgs) -> ExitCode {
    let json = args.client.json;
    let mut out = Stdout::new();
    let result = match args.command {
        TopicCommand::Create(c) => create(&args.client, c, &mut out).await,
        TopicCommand::List { internal } => list(&args.client, internal, &mut out).await,
        TopicCommand::Describe { name } => describe(&args.client, &name, &mut out).await,
        TopicCommand::Alter(a) => alter(&args.client, a, &mut out).await,
        TopicCommand::Delete { name } => delete(&args.client, &name, &mut out).await,
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}

async fn create(opts: &ClientOpts, args: CreateArgs, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(opts);
    let body = CreateTopic {
        name: args.name,
        partitions: args.partitions,
        replication_factor: args.replication_factor.unwrap_or(0),
        configs: args.configs.into_iter().collect(),
    };
    let url = client.endpoint(&["v1", "topics"])?;
    let created: TopicDescription = client
        .send(client.http().post(url).json(&body).timeout(REQUEST_TIMEOUT))
        .await?;
    if opts.json {
        return out.json(&created);
    }
    let partitions = created.partitions.len();
    out.line(format_args!(
        "created topic {} with {partitions} partition{} (replication factor {})",
        created.name,
        plural(partitions),
        created.replication_factor
    ))
}

async fn list(opts: &ClientOpts, internal: bool, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(opts);
    let url = client.endpoint(&["v1", "topics"])?;
    let mut list: TopicList = client
        .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
        .await?;
    if !internal {
        list.topics.retain(|t| !t.internal);
    }
    if opts.json {
        return out.json(&list);
    }
    if list.topics.is_empty() {
        return out.line("no topics yet; create one with `sluice topic create NAME`");
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "INTERNAL"]);
    for t in &list.topics {
        table.row(vec![
            t.name.clone(),
            t.partitions.to_string(),
            yes_no(t.internal),
        ]);
    }
    table.write(out)
}

async fn describe(opts: &ClientOpts, name: &str, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(opts);
    let url = client.endpoint(&["v1", "topics", name])?;
    let topic: TopicDescription = client
        .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
        .await?;
    if opts.json {
        return out.json(&topic);
    }
    write_description(&topic, out)
}

fn write_description(topic: &TopicDescription, out: &mut Stdout) -> Result<(), CliError> {
    out.line(format_args!("topic:              {}", topic.name))?;
    out.line(format_args!(
        "partitions:         {}",
        topic.partitions.len()
    ))?;
    out.line(format_args!(
        "replication factor: {}",
        topic.replication_factor
    ))?;
    out.line(format_args!(
        "internal:           {}",
        yes_no(topic.internal)
    ))?;
    out.line("")?;
    let mut table = Table::new(&[
        "PARTITION",
        "LOG-START",
        "HIGH-WATERMARK",
        "LOG-END",
        "SIZE-BYTES",
        "SEGMENTS",
    ]);
    for p in &topic.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
            p.log_end_offset.to_string(),
            p.size_bytes.to_string(),
            p.segments.to_string(),
        ]);
    }
    table.write(out)?;
    out.line("")?;
    let mut table = Table::new(&["CONFIG", "VALUE"]);
    for (k, v) in &topic.configs {
        table.row(vec![k.clone(), v.clone()]);
    }
    table.write(out)
}

async fn alter(opts: &ClientOpts, args: AlterArgs, out: &mut Stdout) -> Result<(), CliError> {
    let mut configs: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, v) in &args.configs {
        configs.insert(k.clone(), Some(v.clone()));
    }
    for k in &args.delete_configs {
        if configs.insert(k.clone(), None).is_some_and(|v| v.is_some()) {
            return Err(CliError::Other(format!(
                "`{k}` is given to both --config and --delete-config; pick one"
            )));
        }
    }
    let body = AlterTopic {
        configs,
        partitions: args.partitions,
    };
    let client = Client::new(opts);
    let url = client.endpoint(&["v1", "topics", &args.name])?;
    let topic: TopicDescription = client
        .send(
            client
                .http()
                .patch(url)
                .json(&body)
                .timeout(REQUEST_TIMEOUT),
        )
        .await?;
    if opts.json {
        return out.json(&topic);
    }
    let mut changes = Vec::new();
    if let Some(p) = args.partitions {
        changes.push(format!("{p} partition{}", plural(p as usize)));
    }
    let effective = |k: &str| {
        topic
            .configs
            .get(k)
            .map_or("(unset)", String::as_str)
            .to_string()
    };
    for (k, _) in &args.configs {
        changes.push(format!("{k}={}", effective(k)));
    }
    for k in &args.delete_configs {
        changes.push(format!("{k} reset to the default ({})", effective(k)));
    }
    out.line(format_args!(
        "altered topic {}: {}",
        topic.name,
        changes.join(", ")
    ))
}

async fn delete(opts: &ClientOpts, name: &str, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(opts);
    let url = client.endpoint(&["v1", "topics", name])?;
    let deleted: Deleted = client
        .send(client.http().delete(url).timeout(REQUEST_TIMEOUT))
        .await?;
    if opts.json {
        return out.json(&deleted);
    }
    out.line(format_args!("deleted topic {}", deleted.deleted))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}
