//! The command-line client: subcommands that talk to a running broker over its HTTP API.
//!
//! Every command takes `--url` (or `SLUICE_URL`) and `--json`; tables for humans, JSON lines
//! for scripts. Errors print the broker's code and message and exit non-zero.

use std::process::ExitCode;

use clap::Args;
use sluice_protocol::ErrorBody;

pub mod bench;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod offsets;
pub mod plugin;
pub mod produce;
pub mod topic;

/// How long an ordinary request (not a long-poll) may take before the command gives up.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Options every client command shares.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// Broker address.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:9400",
        global = true
    )]
    pub url: String,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A failure of a client command, with what to tell the user.
#[derive(Debug)]
pub enum CliError {
    /// The broker answered with an error.
    Broker(ErrorBody),
    /// Anything else (connection refused, bad input).
    Other(String),
    /// Standard output was closed (`sluice consume t | head`): not a failure, the command
    /// just stops.
    StdoutClosed,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Broker(e) => write!(f, "{} ({})", e.message, e.code),
            CliError::Other(m) => f.write_str(m),
            CliError::StdoutClosed => f.write_str("standard output was closed"),
        }
    }
}

impl CliError {
    /// Prints the error (as JSON with `--json`) and gives the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        if let CliError::StdoutClosed = self {
            return ExitCode::SUCCESS;
        }
        if json {
            let body = match self {
                CliError::Broker(e) => serde_json::to_value(e).unwrap_or_default(),
                CliError::Other(m) => serde_json::json!({"code": "client_error", "message": m}),
                CliError::StdoutClosed => serde_json::Value::Null,
            };
            eprintln!("{body}");
        } else {
            eprintln!("error: {self}");
        }
        ExitCode::FAILURE
    }
}

/// A thin HTTP client for the broker's /v1 API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for `opts.url`.
    pub fn new(opts: &ClientOpts) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: opts.url.trim_end_matches('/').to_string(),
        }
    }

    /// The URL of the API path made of `segments` (`["v1", "topics", name]`), each one
    /// percent-encoded: topic names come from the command line.
    pub fn endpoint(&self, segments: &[&str]) -> Result<reqwest::Url, CliError> {
        let bad = |why: String| {
            CliError::Other(format!(
                "--url `{}` {why}; give one like http://127.0.0.1:9400",
                self.base
            ))
        };
        let mut url =
            reqwest::Url::parse(&self.base).map_err(|e| bad(format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must start with http://".into()));
        }
        url.path_segments_mut()
            .map_err(|()| bad("cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request and decodes a JSON answer, turning broker errors into [`CliError::Broker`].
    pub async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CliError> {
        let resp = req.send().await.map_err(|e| self.connect_error(e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CliError::Other(format!("reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => CliError::Broker(e),
                Err(_) => CliError::Other(format!(
                    "broker answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )),
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Other(format!("unexpected answer from the broker: {e}")))
    }

    fn connect_error(&self, e: reqwest::Error) -> CliError {
        if e.is_connect() {
            CliError::Other(format!(
                "cannot reach a broker at {}: {e}; start one with `sluice serve` or pass --url",
                self.base
            ))
        } else {
            CliError::Other(format!("request to {} failed: {e}", self.base))
        }
    }
}

/// Splits a `KEY=VALUE` argument (`--config`, `--header`) at its first `=`.
pub fn parse_key_value(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{arg}` must be KEY=VALUE")),
    }
}

/// Buffered standard output for command results. Write errors become [`CliError`]s; a closed
/// pipe becomes [`CliError::StdoutClosed`], which ends the command quietly.
pub struct Stdout {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Default for Stdout {
    fn default() -> Self {
        Stdout::new()
    }
}

impl Stdout {
    /// Standard output, buffered until [`Stdout::flush`].
    pub fn new() -> Stdout {
        Stdout {
            out: std::io::BufWriter::new(std::io::stdout()),
        }
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), CliError> {
        use std::io::Write;
        writeln!(self.out, "{text}").map_err(write_error)
    }

    /// Writes `value` as one line of JSON.
    pub fn json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        use std::io::Write;
        serde_json::to_writer(&mut self.out, value).map_err(|e| match e.io_error_kind() {
            Some(kind) => write_error(std::io::Error::from(kind)),
            None => CliError::Other(format!("cannot encode JSON: {e}")),
        })?;
        self.out.write_all(b"\n").map_err(write_error)
    }

    /// Sends what is buffered to the terminal or pipe.
    pub fn flush(&mut self) -> Result<(), CliError> {
        use std::io::Write;
        self.out.flush().map_err(write_error)
    }
}

fn write_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::StdoutClosed
    } else {
        CliError::Other(format!("cannot write to standard output: {e}"))
    }
}

/// A plain text table: a header row and left-aligned columns two spaces apart.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row (as many cells as the header has).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(
            cells.len(),
            self.rows[0].len(),
            "a row has one cell per column"
        );
        self.rows.push(cells);
    }

    /// Writes the table, its columns as wide as their widest cell.
    pub fn write(&self, out: &mut Stdout) -> Result<(), CliError> {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut line = String::new();
        for row in &self.rows {
            line.clear();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == columns {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.line(line.trim_end())?;
        }
        Ok(())
    }
}
