//! `sluice`: the Sluice broker (`sluice serve`) and its command-line client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod cluster;
mod console;
mod consumers;
mod http;
mod metrics;
mod serve;
mod ws;

/// Sluice: a Kafka-style event streaming platform.
///
/// Start a broker with `sluice serve`, then talk to it with the other commands (they use the
/// broker's HTTP API at --url, default http://127.0.0.1:9400, or $SLUICE_URL).
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:\n  sluice serve --data-dir ./data\n  sluice topic create orders --partitions 3\n  echo 'user-1:hello' | sluice produce orders --key-separator :\n  sluice consume orders --from earliest --max 10\n  sluice offsets orders --json\n\nEvery command takes --json for machine-readable output; `sluice <command> --help` has more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker: HTTP and WebSocket on one port, data in a directory.
    Serve(Box<serve::ServeArgs>),
    /// Create, list, describe, alter and delete topics.
    Topic(cli::topic::TopicArgs),
    /// Send lines from stdin or a file as records.
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic.
    Consume(cli::consume::ConsumeArgs),
    /// Show the earliest and latest offsets of a topic's partitions.
    Offsets(cli::offsets::OffsetsArgs),
    /// List, describe and delete consumer groups; reset their offsets.
    Group(cli::group::GroupArgs),
    /// Upload, list, describe and delete WebAssembly plugins.
    Plugin(cli::plugin::PluginArgs),
    /// Show the cluster (brokers, controller, partition leaders and ISRs); drain a broker.
    Cluster(cli::cluster::ClusterArgs),
    /// Move a partition to other brokers.
    Partition(cli::cluster::PartitionArgs),
    /// Measure produce/consume throughput and latency against a broker.
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `serve` reads its config file into the arguments before clap sees them.
    let args = match serve::with_config_file(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Topic(args) => cli::topic::run(args).await,
            Command::Produce(args) => cli::produce::run(args).await,
            Command::Consume(args) => cli::consume::run(args).await,
            Command::Offsets(args) => cli::offsets::run(args).await,
            Command::Group(args) => cli::group::run(args).await,
            Command::Plugin(args) => cli::plugin::run(args).await,
            Command::Cluster(args) => cli::cluster::run(args).await,
            Command::Partition(args) => cli::cluster::run_partition(args).await,
            Command::Bench(args) => cli::bench::run(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// docs/OPERATIONS.md has one row per `serve` setting with its variable and default.
    #[test]
    fn operations_doc_lists_every_serve_setting() {
        let doc = include_str!("../../docs/OPERATIONS.md");
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let default = arg
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_else(|| "—".into());
            let row = format!("| `--{long}` | `{env}` | `{default}` |");
            assert!(
                doc.contains(&row),
                "docs/OPERATIONS.md lacks the row for --{long}: {row}"
            );
        }
    }

    #[test]
    fn config_file_settings_yield_to_flags_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\ndata-dir = \"/from/file\"\nlog-default = [\"durability=always\", \"retention.ms=5\"]\n").unwrap();
        let args: Vec<String> = [
            "sluice",
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args = serve::with_config_file(args).unwrap();
        let Command::Serve(s) = Cli::parse_from(args).command else {
            panic!("serve")
        };
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.data_dir, std::path::PathBuf::from("/from/flag"));
        assert_eq!(s.log_defaults, vec!["durability=always", "retention.ms=5"]);

        std::fs::write(&file, "no-such-setting = 1\n").unwrap();
        let args: Vec<String> = ["sluice", "serve", "--config", file.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = serve::with_config_file(args).unwrap_err();
        assert!(err.contains("no-such-setting"), "{err}");
    }
}
