//! `sluice serve`: settings (flags, environment, TOML file — one definition each), start-up,
//! and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, CommandFactory};
use sluice_broker::{Broker, BrokerConfig};
use sluice_storage::{LogConfig, MaintainerConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// Settings of `sluice serve`. Each can be given as a flag, as an environment variable
/// (`SLUICE_` + the flag name in capitals with `_`), or in the TOML file named by `--config`
/// (the flag name as key); a flag beats the environment, which beats the file, which beats the
/// default.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Example config file (sluice.toml):\n  listen = \"127.0.0.1:9400\"\n  data-dir = \"/var/lib/sluice\"\n  log-default = [\"durability=always\", \"retention.ms=86400000\"]"
)]
pub struct ServeArgs {
    /// TOML file with settings (keys are the flag names without `--`).
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for HTTP and WebSocket. Port 0 picks a free port and prints it.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9400")]
    pub listen: SocketAddr,
    /// Directory holding topics and their logs.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Create unknown topics on first produce (with --default-partitions).
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics.
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: u32,
    /// Most partitions one topic may have.
    #[arg(long, env = "SLUICE_MAX_PARTITIONS", default_value_t = 10_000)]
    pub max_partitions: u32,
    /// Default topic setting, KEY=VALUE (repeatable), e.g. durability=always, retention.ms=3600000.
    #[arg(
        long = "log-default",
        env = "SLUICE_LOG_DEFAULTS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub log_defaults: Vec<String>,
    /// Most open client connections (HTTP and WebSocket); more are refused with 429.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "SLUICE_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub max_request_bytes: usize,
    /// Largest WebSocket frame (message), in bytes.
    #[arg(long, env = "SLUICE_MAX_FRAME_BYTES", default_value_t = 16 << 20)]
    pub max_frame_bytes: usize,
    /// Most requests one WebSocket connection may have in flight.
    #[arg(long, env = "SLUICE_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: u32,
    /// Most bytes of frames queued for one WebSocket client before the broker waits for it to
    /// read (a slow reader is disconnected after --send-timeout-ms).
    #[arg(long, env = "SLUICE_MAX_BUFFERED_BYTES", default_value_t = 64 << 20)]
    pub max_buffered_bytes: usize,
    /// Most subscriptions one WebSocket connection may hold.
    #[arg(long, env = "SLUICE_MAX_SUBSCRIPTIONS", default_value_t = 64)]
    pub max_subscriptions: usize,
    /// A WebSocket that has not said hello within this time is closed, in ms.
    #[arg(long, env = "SLUICE_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// A WebSocket with no frame from the client for this long is closed, in ms.
    #[arg(long, env = "SLUICE_IDLE_TIMEOUT_MS", default_value_t = 300_000)]
    pub idle_timeout_ms: u64,
    /// A client that does not take a frame the server sends within this time is disconnected, in ms.
    #[arg(long, env = "SLUICE_SEND_TIMEOUT_MS", default_value_t = 30_000)]
    pub send_timeout_ms: u64,
    /// Longest long-poll a fetch may ask for, in ms.
    #[arg(long, env = "SLUICE_MAX_FETCH_WAIT_MS", default_value_t = 30_000)]
    pub max_fetch_wait_ms: u64,
    /// Largest byte budget of one fetch.
    #[arg(long, env = "SLUICE_MAX_FETCH_BYTES", default_value_t = 64 << 20)]
    pub max_fetch_bytes: u64,
    /// Period of retention and compaction checks, in ms.
    #[arg(
        long,
        env = "SLUICE_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub retention_check_interval_ms: u64,
    /// Time given to in-flight requests on shutdown before they are cut, in ms.
    #[arg(long, env = "SLUICE_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,
    /// Most HTTP consumer instances (REST-proxy style group members) the broker keeps.
    #[arg(long, env = "SLUICE_MAX_CONSUMER_INSTANCES", default_value_t = 1000)]
    pub max_consumer_instances: usize,
    /// An HTTP consumer instance not used for this long is removed (it leaves its group), in ms.
    #[arg(
        long,
        env = "SLUICE_CONSUMER_INSTANCE_IDLE_MS",
        default_value_t = 300_000
    )]
    pub consumer_instance_idle_ms: u64,
    /// Smallest session timeout a group member may ask for, in ms.
    #[arg(
        long,
        env = "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 100
    )]
    pub group_min_session_timeout_ms: u64,
    /// Largest session timeout a group member may ask for, in ms.
    #[arg(
        long,
        env = "SLUICE_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    pub group_max_session_timeout_ms: u64,
    /// Session timeout of group members that ask for none, in ms.
    #[arg(
        long,
        env = "SLUICE_GROUP_SESSION_TIMEOUT_MS",
        default_value_t = 45_000
    )]
    pub group_session_timeout_ms: u64,
    /// Heartbeat interval told to group members, in ms (at most a third of their session timeout).
    #[arg(
        long,
        env = "SLUICE_GROUP_HEARTBEAT_INTERVAL_MS",
        default_value_t = 3_000
    )]
    pub group_heartbeat_interval_ms: u64,
    /// Most members one consumer group may have.
    #[arg(long, env = "SLUICE_GROUP_MAX_MEMBERS", default_value_t = 1000)]
    pub group_max_members: usize,
    /// Committed offsets of a group without members expire this long after its last commit, in ms.
    #[arg(
        long,
        env = "SLUICE_OFFSETS_RETENTION_MS",
        default_value_t = 604_800_000
    )]
    pub offsets_retention_ms: u64,
    /// Partitions of the internal __consumer_offsets topic (used when it is first created).
    #[arg(long, env = "SLUICE_OFFSETS_PARTITIONS", default_value_t = 8)]
    pub offsets_partitions: u32,
    /// This broker's id in a cluster (with --peers).
    #[arg(long, env = "SLUICE_NODE_ID")]
    pub node_id: Option<u32>,
    /// Every broker of the cluster, this one included, as ID@HOST:PORT (comma-separated):
    /// the voters of the metadata quorum. Without it the broker runs alone.
    #[arg(
        long,
        env = "SLUICE_PEERS",
        value_name = "ID@HOST:PORT",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// Join a running cluster as a new broker (its id and address must be in --peers, with
    /// at least one running broker) instead of forming a new one.
    #[arg(long, env = "SLUICE_JOIN", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub join: bool,
    /// How often a broker tells the controller it is alive, in ms.
    #[arg(
        long,
        env = "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 250
    )]
    pub broker_heartbeat_interval_ms: u64,
    /// A broker the controller has not heard from for this long is dead: its partitions get
    /// new leaders, in ms.
    #[arg(
        long,
        env = "SLUICE_BROKER_SESSION_TIMEOUT_MS",
        default_value_t = 1_500
    )]
    pub broker_session_timeout_ms: u64,
    /// The metadata quorum elects a new controller within this many ms (randomized between
    /// this and twice it) after the old one stops answering.
    #[arg(
        long,
        env = "SLUICE_CONTROLLER_ELECTION_TIMEOUT_MS",
        default_value_t = 400
    )]
    pub controller_election_timeout_ms: u64,
    /// A follower replica that has not caught up with its leader for this long leaves the
    /// ISR, in ms.
    #[arg(long, env = "SLUICE_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000)]
    pub replica_lag_time_max_ms: u64,
    /// Longest an acks=all write waits for the in-sync replicas before it fails with
    /// request_timed_out, in ms.
    #[arg(long, env = "SLUICE_REPLICATION_TIMEOUT_MS", default_value_t = 30_000)]
    pub replication_timeout_ms: u64,
    /// Log filter (tracing EnvFilter syntax), e.g. info, sluice=debug.
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    pub log: String,
}

/// Shared by every request handler.
pub struct AppState {
    pub broker: Arc<Broker>,
    pub args: ServeArgs,
    pub metrics: Metrics,
    pub connections: Arc<Semaphore>,
    pub shutting_down: AtomicBool,
    /// Turns true when shutdown begins: long-polls answer at once, WebSockets close (1001).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The address actually bound (with the chosen port when --listen had port 0).
    pub local_addr: SocketAddr,
    /// HTTP consumer instances.
    pub consumers: crate::consumers::Instances,
}

/// Rewrites `sluice serve ...` arguments to include the settings of its `--config` file
/// (or `SLUICE_CONFIG`), for settings given neither as flags nor in the environment.
pub fn with_config_file(args: Vec<String>) -> Result<Vec<String>, String> {
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(args);
    }
    let mut path = std::env::var_os("SLUICE_CONFIG").map(PathBuf::from);
    let mut iter = args.iter().skip(2);
    while let Some(a) = iter.next() {
        if a == "--config" {
            path = iter.next().map(PathBuf::from);
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let command = crate::Cli::command();
    let serve = command.find_subcommand("serve").expect("serve exists");
    let mut injected = Vec::new();
    for (key, value) in table {
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .ok_or_else(|| {
                format!(
                    "config file {}: unknown setting `{key}` (see `sluice serve --help`)",
                    path.display()
                )
            })?;
        let env_set = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
        let on_command_line = args
            .iter()
            .any(|a| a == &format!("--{key}") || a.starts_with(&format!("--{key}=")));
        if env_set || on_command_line {
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(toml_scalar)
                .collect::<Result<_, _>>()?,
            other => vec![toml_scalar(other)?],
        };
        for v in values {
            injected.push(format!("--{key}={v}"));
        }
    }
    let mut out = args[..2].to_vec();
    out.extend(injected);
    out.extend(args[2..].iter().cloned());
    Ok(out)
}

fn toml_scalar(v: toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "config value {other} must be a string, number or boolean"
        )),
    }
}

impl ServeArgs {
    /// The cluster settings, when --peers is given.
    fn cluster_config(&self) -> Result<Option<sluice_broker::cluster::ClusterConfig>, String> {
        if self.peers.is_empty() {
            if self.node_id.is_some() {
                return Err(
                    "--node-id needs --peers (every broker of the cluster as ID@HOST:PORT)".into(),
                );
            }
            return Ok(None);
        }
        let peers = crate::cluster::parse_peers(&self.peers)?;
        let id = self
            .node_id
            .ok_or("--peers needs --node-id (this broker's id in the list)")?;
        let addr = peers.get(&id).ok_or_else(|| {
            format!("--node-id {id} is not in --peers; list this broker there too")
        })?;
        if self.listen.port() == 0 {
            return Err(
                "cluster brokers need a fixed --listen port (the peers list names it)".into(),
            );
        }
        if !addr.ends_with(&format!(":{}", self.listen.port())) {
            return Err(format!(
                "--peers says node {id} is at {addr} but --listen is {}; make them agree",
                self.listen
            ));
        }
        let mut c = sluice_broker::cluster::ClusterConfig::new(id, peers);
        c.heartbeat_interval_ms = self.broker_heartbeat_interval_ms.max(10);
        c.session_timeout_ms = self
            .broker_session_timeout_ms
            .max(2 * c.heartbeat_interval_ms);
        let e = self.controller_election_timeout_ms.max(50);
        c.raft_election_timeout_ms = (e, 2 * e);
        c.raft_heartbeat_ms = (e / 6).max(10);
        c.replica_lag_time_max_ms = self.replica_lag_time_max_ms;
        c.join = self.join;
        Ok(Some(c))
    }

    fn broker_config(&self) -> Result<BrokerConfig, String> {
        let mut log = LogConfig::default();
        for kv in &self.log_defaults {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                format!("--log-default `{kv}` must be KEY=VALUE, e.g. durability=always")
            })?;
            log.set(k.trim(), v.trim())
                .map_err(|e| format!("--log-default: {e}"))?;
        }
        Ok(BrokerConfig {
            data_dir: self.data_dir.clone(),
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions.max(1),
            max_partitions: self.max_partitions.max(1),
            log_defaults: log,
            maintenance: MaintainerConfig {
                retention_check_interval_ms: self.retention_check_interval_ms,
                ..MaintainerConfig::default()
            },
            max_fetch_wait_ms: self.max_fetch_wait_ms,
            max_fetch_bytes: self.max_fetch_bytes,
            replication_timeout_ms: self.replication_timeout_ms.max(1),
            groups: sluice_broker::GroupConfig {
                min_session_timeout_ms: self.group_min_session_timeout_ms,
                max_session_timeout_ms: self
                    .group_max_session_timeout_ms
                    .max(self.group_min_session_timeout_ms),
                default_session_timeout_ms: self.group_session_timeout_ms,
                heartbeat_interval_ms: self.group_heartbeat_interval_ms.max(1),
                offsets_retention_ms: self.offsets_retention_ms,
                offsets_partitions: self.offsets_partitions.max(1),
                max_members: self.group_max_members.max(1),
            },
        })
    }
}

fn init_tracing(filter: &str) {
    // openraft logs every unreachable peer at warn/error, which is routine while a broker is
    // down; its logs are opt-in (`--log info,openraft=info`).
    let filter = if filter.contains("openraft") {
        filter.to_string()
    } else {
        format!("{filter},openraft=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the broker until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> ExitCode {
    init_tracing(&args.log);
    let cluster_config = match args.cluster_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match args.broker_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let broker = match tokio::task::spawn_blocking(move || Broker::open(config)).await {
        Ok(Ok(b)) => Arc::new(b),
        Ok(Err(e)) => {
            eprintln!(
                "error: cannot open the data directory {}: {}",
                args.data_dir.display(),
                e.message
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e} (is another broker running? use --listen to pick another address)",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .expect("bound listener has an address");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut cluster_tasks = Vec::new();
    if let Some(cc) = cluster_config {
        let transport =
            crate::cluster::HttpTransport::new(Duration::from_millis(cc.request_timeout_ms));
        let planner = Broker::topic_planner(Arc::downgrade(&broker));
        let dir = args.data_dir.join("cluster");
        let node = cc.node_id;
        match sluice_broker::cluster::Cluster::start(
            cc,
            &dir,
            transport.clone(),
            Arc::new(transport),
            planner,
        )
        .await
        {
            Ok(cluster) => {
                broker.attach_cluster(cluster.clone());
                cluster_tasks.push(tokio::spawn(cluster.run(stop_rx.clone())));
                cluster_tasks.push(tokio::spawn(broker.clone().follow_cluster(stop_rx.clone())));
                tracing::info!(node, "cluster mode: metadata quorum started");
            }
            Err(e) => {
                eprintln!(
                    "error: cannot start the cluster metadata in {}: {}",
                    dir.display(),
                    e.message
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let state = Arc::new(AppState {
        broker: broker.clone(),
        metrics: Metrics::new(),
        connections: Arc::new(Semaphore::new(args.max_connections)),
        shutting_down: AtomicBool::new(false),
        stopping: stop_rx.clone(),
        local_addr: local,
        consumers: Default::default(),
        args: args.clone(),
    });
    // Group liveness: members whose session expired are removed and their partitions move;
    // HTTP consumer instances heartbeat and idle ones are removed.
    let groups_state = state.clone();
    let groups_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            groups_state.broker.maintain_groups().await;
            crate::consumers::maintain(groups_state.clone()).await;
        }
    });
    let app = crate::http::router(state.clone());
    // The readiness line: tests and scripts wait for it (it carries the chosen port).
    println!(
        "sluice listening on http://{local} (data in {})",
        args.data_dir.display()
    );
    tracing::info!(%local, "listening");

    let shutdown_state = state.clone();
    // No Nagle delay: answers and pushes are small frames that must go out at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        shutdown_state.shutting_down.store(true, Ordering::Release);
        let _ = stop_tx.send(true);
    });
    let timeout = Duration::from_millis(args.shutdown_timeout_ms);
    let mut stop = stop_rx.clone();
    let result = tokio::select! {
        r = server => r.map_err(|e| e.to_string()),
        _ = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(timeout).await;
        } => Err("in-flight requests did not finish within --shutdown-timeout-ms".into()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "server stopped");
    }
    // WebSockets outlive the HTTP server; each holds a connection slot until it has closed.
    let all = u32::try_from(args.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(timeout, state.connections.acquire_many(all)).await;
    groups_task.abort();
    let _ = groups_task.await;
    for t in cluster_tasks {
        t.abort();
        let _ = t.await;
    }
    if let Some(c) = broker.cluster() {
        c.shutdown().await;
    }
    drop(state);
    broker.shutdown().await;
    tracing::info!("stopped cleanly");
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
