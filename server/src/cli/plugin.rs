//! `sluice plugin`: upload, list, describe and delete WebAssembly plugins, through
//! `/v1/plugins`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{CliError, Client, ClientOpts, REQUEST_TIMEOUT, Stdout, Table};

/// Arguments of `sluice plugin`.
#[derive(Debug, Args)]
#[command(after_help = "\
A plugin is a WebAssembly module (ABI in docs/plugin-abi.md) that runs inside the broker: a
`filter` decides which records a consumer receives, a `partitioner` routes records. The
broker checks and compiles a module when it is uploaded; a bad one is refused with the reason.

Examples:
  sluice plugin upload keyword target/wasm32-unknown-unknown/release/keyword_filter.wasm
  sluice plugin list
  sluice plugin describe keyword --json
  sluice consume orders --from earliest      # (filters attach to HTTP fetches and subscriptions)
  sluice plugin delete keyword")]
pub struct PluginArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// `sluice plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload (or replace) a plugin from a .wasm file.
    Upload {
        /// Name to upload it under.
        name: String,
        /// The .wasm module.
        file: PathBuf,
    },
    /// List uploaded plugins.
    List,
    /// Show a plugin's kind, ABI version, size, sha256, upload time and health.
    Describe {
        /// Plugin name.
        name: String,
    },
    /// Delete a plugin.
    Delete {
        /// Plugin name.
        name: String,
    },
}

/// Runs `sluice plugin`.
pub async fn run(args: PluginArgs) -> ExitCode {
    let mut out = Stdout::new();
    match plugin(&args, &mut out).await.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(args.client.json),
    }
}

fn row(p: &serde_json::Value) -> Vec<String> {
    let s = |k: &str| {
        p[k].as_str()
            .map_or_else(|| p[k].to_string(), str::to_string)
    };
    vec![
        s("name"),
        s("kind"),
        s("size_bytes"),
        s("sha256").chars().take(12).collect(),
        s("records"),
        s("errors"),
    ]
}

async fn plugin(args: &PluginArgs, out: &mut Stdout) -> Result<(), CliError> {
    let client = Client::new(&args.client);
    let json = args.client.json;
    let header = ["NAME", "KIND", "BYTES", "SHA256", "RECORDS", "ERRORS"];
    match &args.command {
        PluginCommand::Upload { name, file } => {
            let bytes = std::fs::read(file)
                .map_err(|e| CliError::Other(format!("cannot read {}: {e}", file.display())))?;
            let url = client.endpoint(&["v1", "plugins", name])?;
            let p: serde_json::Value = client
                .send(
                    client
                        .http()
                        .put(url)
                        .body(bytes)
                        .header("content-type", "application/wasm")
                        .timeout(REQUEST_TIMEOUT),
                )
                .await?;
            if json {
                return out.json(&p);
            }
            out.line(format!(
                "uploaded {} plugin {name} ({} bytes, sha256 {})",
                p["kind"].as_str().unwrap_or("?"),
                p["size_bytes"],
                p["sha256"].as_str().unwrap_or("?")
            ))
        }
        PluginCommand::List => {
            let url = client.endpoint(&["v1", "plugins"])?;
            let v: serde_json::Value = client
                .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&v);
            }
            let list = v["plugins"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                return out
                    .line("no plugins yet; upload one with `sluice plugin upload NAME FILE`");
            }
            let mut t = Table::new(&header);
            for p in &list {
                t.row(row(p));
            }
            t.write(out)
        }
        PluginCommand::Describe { name } => {
            let url = client.endpoint(&["v1", "plugins", name])?;
            let p: serde_json::Value = client
                .send(client.http().get(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&p);
            }
            let mut t = Table::new(&header);
            t.row(row(&p));
            t.write(out)?;
            if let Some(e) = p["last_error"].as_str() {
                out.line(format!("last error: {e}"))?;
            }
            Ok(())
        }
        PluginCommand::Delete { name } => {
            let url = client.endpoint(&["v1", "plugins", name])?;
            let v: serde_json::Value = client
                .send(client.http().delete(url).timeout(REQUEST_TIMEOUT))
                .await?;
            if json {
                return out.json(&v);
            }
            out.line(format!("deleted plugin {name}"))
        }
    }
}
