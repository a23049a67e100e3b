//! [`Broker`]: owns the topics of one data directory and serves produce, fetch and admin
//! requests. Blocking log work runs on tokio's blocking pool so request tasks never stall.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use parking_lot::RwLock;
use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode, is_internal_topic, partitioner, validate_topic_name};
use sluice_record::varint::{varint_len, varlong_len};
use sluice_record::{BatchBuilder, Batches, HEADER_LEN};
use sluice_storage::{
    Log, LogConfig, Maintainer, MaintainerConfig, ReadBound, ReadInfo, StorageError, now_ms,
};

mod clustered;
mod groups_cluster;
mod replication;

use crate::cluster::{GroupCall, GroupReply};
use groups_cluster::unexpected;

use crate::group::{GroupConfig, Groups, OFFSETS_TOPIC};
use crate::plugins::{PluginDescription, Plugins};
use crate::topic::{Partition, Topic, TopicManifest, TopicSettings};
use sluice_wasm::{Filter, Map};

/// Broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where topics live (`<data_dir>/topics/<name>/<partition>/`).
    pub data_dir: PathBuf,
    /// Create a topic on first produce instead of failing with `unknown_topic`.
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics.
    pub default_partitions: u32,
    /// Most partitions one topic may have.
    pub max_partitions: u32,
    /// Defaults for every topic's log settings.
    pub log_defaults: LogConfig,
    /// Background flush / retention / compaction timing.
    pub maintenance: MaintainerConfig,
    /// Longest long-poll a fetch may ask for, in ms.
    pub max_fetch_wait_ms: u64,
    /// Largest byte budget of one fetch.
    pub max_fetch_bytes: u64,
    /// Consumer group settings.
    pub groups: GroupConfig,
    /// Longest an acks=all write waits for the in-sync replicas, in ms (cluster mode).
    pub replication_timeout_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./data"),
            auto_create_topics: false,
            default_partitions: 1,
            max_partitions: 10_000,
            log_defaults: LogConfig::default(),
            maintenance: MaintainerConfig::default(),
            max_fetch_wait_ms: 30_000,
            max_fetch_bytes: 64 << 20,
            groups: GroupConfig::default(),
            replication_timeout_ms: 30_000,
        }
    }
}

/// What a fetch returned: stored batches and where to continue.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Whole record batches; the first may start before the requested offset.
    pub batches: Vec<u8>,
    /// Read details (next offset, watermarks).
    pub info: ReadInfo,
}

/// The broker core. Cheap to share (`Arc<Broker>`).
pub struct Broker {
    config: BrokerConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    maintainer: Maintainer,
    groups: Groups,
    plugins: Plugins,
    /// Partitioner instances per topic: (plugin sha256, plugin name, params, pool).
    partitioners: parking_lot::Mutex<BTreeMap<String, CachedPartitioner>>,
    /// Set in cluster mode: topics follow the replicated metadata.
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    reconcile_lock: tokio::sync::Mutex<()>,
    /// The broker itself, for tasks it spawns (set in cluster mode).
    self_ref: std::sync::OnceLock<std::sync::Weak<Broker>>,
}

type CachedPartitioner = (
    [u8; 32],
    String,
    BTreeMap<String, String>,
    sluice_wasm::Partitioner,
);

fn storage_error(e: StorageError) -> ErrorBody {
    match e {
        StorageError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        } => ErrorBody {
            code: ErrorCode::OffsetOutOfRange,
            message: format!(
                "offset {requested} is out of range: the partition holds offsets {log_start} to {log_end} (exclusive); seek to one of them"
            ),
            log_start_offset: Some(log_start),
            log_end_offset: Some(log_end),
        },
        StorageError::InvalidBatch { .. } | StorageError::IncompleteAppend { .. } => {
            ErrorBody::new(ErrorCode::InvalidRecords, e.to_string())
        }
        StorageError::AppendTooLarge { .. } => {
            ErrorBody::new(ErrorCode::RecordTooLarge, e.to_string())
        }
        StorageError::KeyRequired { .. } => ErrorBody::new(ErrorCode::KeyRequired, e.to_string()),
        other => {
            tracing::error!(error = %other, "storage error");
            ErrorBody::new(ErrorCode::StorageError, other.to_string())
        }
    }
}

fn unknown_topic(name: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::UnknownTopic,
        format!(
            "topic `{name}` does not exist; create it first (POST /v1/topics or `sluice topic create {name}`)"
        ),
    )
}

fn io_error(what: &str, e: std::io::Error) -> ErrorBody {
    tracing::error!(error = %e, "{what}");
    ErrorBody::new(ErrorCode::StorageError, format!("{what}: {e}"))
}

/// What the broker accepts from producers beyond a well-formed batch: uncompressed (for now),
/// not transactional or control (no transactions yet), and offsets 0..count-1 (as Kafka's log
/// validator demands of v2 batches), so one batch cannot burn offsets it does not use.
fn check_client_batch(h: &sluice_record::BatchHeader) -> Result<(), ErrorBody> {
    let refuse = |m: String| Err(ErrorBody::new(ErrorCode::InvalidRecords, m));
    if h.compression() != 0 {
        return refuse(format!(
            "compressed record batches (codec {}) are not supported yet; send uncompressed batches (attributes bits 0-2 = 0)",
            h.compression()
        ));
    }
    if h.is_transactional() || h.is_control() {
        return refuse(
            "transactional and control batches are not supported; clear attributes bits 4 and 5"
                .into(),
        );
    }
    if h.record_count < 1 || h.last_offset_delta != h.record_count - 1 {
        return refuse(format!(
            "lastOffsetDelta {} must be recordCount - 1 ({}) in a produced batch",
            h.last_offset_delta,
            h.record_count.saturating_sub(1)
        ));
    }
    Ok(())
}

/// Exact encoded size of one record (with its length prefix) in a batch: what
/// `BatchBuilder::push` will write for it.
fn encoded_record_len(
    timestamp_delta: i64,
    offset_delta: i32,
    r: &ProduceRecord,
    headers: &[(&[u8], Option<&[u8]>)],
) -> usize {
    let opt = |b: Option<&[u8]>| b.map_or(varint_len(-1), |b| varint_len(b.len() as i32) + b.len());
    let mut body = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    body += opt(r.key.as_ref().map(|k| k.as_bytes()));
    body += opt(r.value.as_ref().map(|v| v.as_bytes()));
    body += varint_len(headers.len() as i32);
    for (k, v) in headers {
        body += varint_len(k.len() as i32) + k.len() + opt(*v);
    }
    varint_len(body as i32) + body
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorBody> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("background task failed: {e}")))
}

impl Broker {
    /// Opens every topic under `config.data_dir` (recovering their logs) and starts the
    /// background maintenance thread.
    pub fn open(config: BrokerConfig) -> Result<Broker, ErrorBody> {
        config
            .log_defaults
            .validate()
            .map_err(|e| ErrorBody::new(ErrorCode::InvalidConfig, e.to_string()))?;
        let topics_dir = config.data_dir.join("topics");
        std::fs::create_dir_all(&topics_dir).map_err(|e| io_error("create data directory", e))?;
        let maintainer = Maintainer::spawn(config.maintenance);
        let mut topics = BTreeMap::new();
        let entries = std::fs::read_dir(&topics_dir).map_err(|e| io_error("list topics", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list topics", e))?;
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".deleted") {
                // A deletion interrupted by a crash: finish it.
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            let manifest = match TopicManifest::read(&dir) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "skipping a directory without a readable topic.json");
                    continue;
                }
            };
            let topic = Self::open_topic(&config, dir, manifest)?;
            for p in topic.partitions() {
                maintainer.register(&p.log);
            }
            topics.insert(topic.name.clone(), topic);
        }
        let offsets_topic = match topics.get(OFFSETS_TOPIC) {
            Some(t) => t.clone(),
            None => {
                let configs = crate::group::offsets_topic_configs();
                let manifest = TopicManifest {
                    version: 1,
                    name: OFFSETS_TOPIC.to_string(),
                    partitions: config.groups.offsets_partitions.max(1),
                    replication_factor: 1,
                    configs,
                    created_ms: now_ms(),
                };
                let dir = topics_dir.join(OFFSETS_TOPIC);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| io_error("create the offsets topic", e))?;
                manifest
                    .write(&dir)
                    .map_err(|e| io_error("write the offsets topic manifest", e))?;
                let t = Self::open_topic(&config, dir, manifest)?;
                for p in t.partitions() {
                    maintainer.register(&p.log);
                }
                topics.insert(t.name.clone(), t.clone());
                t
            }
        };
        let mut groups = Groups::load(config.groups.clone(), offsets_topic)?;
        groups.replication_timeout_ms = config.replication_timeout_ms;
        let plugins = Plugins::open(&config.data_dir)?;
        tracing::info!(topics = topics.len(), dir = %config.data_dir.display(), "broker opened");
        Ok(Broker {
            config,
            topics: RwLock::new(topics),
            maintainer,
            groups,
            plugins,
            partitioners: Default::default(),
            cluster: Default::default(),
            reconcile_lock: Default::default(),
            self_ref: Default::default(),
        })
    }

    fn open_topic(
        config: &BrokerConfig,
        dir: PathBuf,
        manifest: TopicManifest,
    ) -> Result<Arc<Topic>, ErrorBody> {
        let settings = TopicSettings::resolve(&config.log_defaults, manifest.configs.clone())?;
        let mut partitions = Vec::with_capacity(manifest.partitions as usize);
        for p in 0..manifest.partitions {
            let log =
                Log::open(dir.join(p.to_string()), settings.log.clone()).map_err(storage_error)?;
            partitions.push(Arc::new(Partition::new(p, Arc::new(log))));
        }
        Ok(Arc::new(Topic {
            name: manifest.name,
            dir,
            replication_factor: manifest.replication_factor,
            created_ms: manifest.created_ms,
            settings: RwLock::new(settings),
            partitions: RwLock::new(partitions),
            sticky: AtomicU32::new(0),
        }))
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, ErrorBody> {
        self.topics.read().get(name).cloned().ok_or_else(|| {
            // In a cluster, a topic the metadata has may not be created here yet.
            match self.cluster.get() {
                Some(c) if c.view().meta.topics.contains_key(name) => ErrorBody::new(
                    ErrorCode::LeaderNotAvailable,
                    format!("topic `{name}` is still being created on this broker; retry shortly"),
                ),
                _ => unknown_topic(name),
            }
        })
    }

    /// All topics.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Creates a topic. Internal topics (`__` prefix) are refused unless `internal` is set.
    pub async fn create_topic(&self, req: CreateTopic) -> Result<TopicDescription, ErrorBody> {
        if let Some(cluster) = self.cluster.get() {
            return self.create_topic_clustered(cluster, req).await;
        }
        self.create_topic_inner(req, false).await
    }

    /// Checks a creation request as far as it can be checked without the cluster: name,
    /// partition count, settings and partitioner plugin.
    pub(crate) fn check_create(
        &self,
        req: &CreateTopic,
        internal: bool,
    ) -> Result<TopicSettings, ErrorBody> {
        validate_topic_name(&req.name)
            .map_err(|m| ErrorBody::new(ErrorCode::InvalidTopicName, m))?;
        if is_internal_topic(&req.name) && !internal {
            return Err(ErrorBody::new(
                ErrorCode::InternalTopic,
                format!(
                    "`{}` starts with `__`, which is reserved for internal topics",
                    req.name
                ),
            ));
        }
        if req.partitions == 0 || req.partitions > self.config.max_partitions {
            return Err(ErrorBody::new(
                ErrorCode::InvalidConfig,
                format!(
                    "partitions must be between 1 and {}",
                    self.config.max_partitions
                ),
            ));
        }
        let settings = TopicSettings::resolve(&self.config.log_defaults, req.configs.clone())?;
        self.check_partitioner(&settings)?;
        Ok(settings)
    }

    async fn create_topic_inner(
        &self,
        req: CreateTopic,
        internal: bool,
    ) -> Result<TopicDescription, ErrorBody> {
        let settings = self.check_create(&req, internal)?;
        if req.replication_factor > 1 {
            return Err(ErrorBody::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {} needs a cluster; this broker runs alone, so use 1 (or start brokers with --node-id and --peers)",
                    req.replication_factor
                ),
            ));
        }
        let manifest = TopicManifest {
            version: 1,
            name: req.name.clone(),
            partitions: req.partitions,
            replication_factor: req.replication_factor.max(1),
            configs: settings.overrides.clone(),
            created_ms: now_ms(),
        };
        let topic = self.create_local_topic(manifest).await?;
        Ok(topic.describe())
    }

    /// Creates the topic's directory, manifest and partition logs on this broker.
    pub(crate) async fn create_local_topic(
        &self,
        manifest: TopicManifest,
    ) -> Result<Arc<Topic>, ErrorBody> {
        if self.topics.read().contains_key(&manifest.name) {
            return Err(ErrorBody::new(
                ErrorCode::TopicExists,
                format!("topic `{}` exists already", manifest.name),
            ));
        }
        let dir = self.config.data_dir.join("topics").join(&manifest.name);
        let config = self.config.clone();
        let topic = blocking(move || -> Result<Arc<Topic>, ErrorBody> {
            if dir.exists() {
                return Err(ErrorBody::new(
                    ErrorCode::TopicExists,
                    "topic directory exists already",
                ));
            }
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create topic directory", e))?;
            manifest
                .write(&dir)
                .map_err(|e| io_error("write topic manifest", e))?;
            Self::open_topic(&config, dir, manifest)
        })
        .await??;
        if self.cluster.get().is_some() {
            // In a cluster nobody may write the new partitions before the metadata gives
            // each its role (a standalone partition would acknowledge acks=all at once).
            for p in topic.partitions() {
                *p.role.lock() = crate::replica::Role::Offline;
            }
        }
        {
            let mut topics = self.topics.write();
            if topics.contains_key(&topic.name) {
                return Err(ErrorBody::new(
                    ErrorCode::TopicExists,
                    format!("topic `{}` exists already", topic.name),
                ));
            }
            topics.insert(topic.name.clone(), topic.clone());
        }
        for p in topic.partitions() {
            self.maintainer.register(&p.log);
        }
        tracing::info!(topic = %topic.name, partitions = topic.partition_count(), "topic created");
        Ok(topic)
    }

    /// Lists topics.
    pub fn list_topics(&self) -> TopicList {
        TopicList {
            topics: self
                .topics()
                .iter()
                .map(|t| TopicSummary {
                    name: t.name.clone(),
                    partitions: t.partition_count(),
                    internal: is_internal_topic(&t.name),
                })
                .collect(),
        }
    }

    /// Describes a topic.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription, ErrorBody> {
        let topic = self.topic(name)?;
        let mut d = topic.describe();
        if let Some(cluster) = self.cluster.get() {
            let view = cluster.view();
            if let Some(t) = view.meta.topics.get(name) {
                for (info, pm) in d.partitions.iter_mut().zip(&t.partitions) {
                    info.leader = Some(pm.leader);
                    info.replicas = Some(pm.replicas.clone());
                    info.isr = Some(pm.isr.clone());
                }
            }
            for (info, part) in d.partitions.iter_mut().zip(topic.partitions()) {
                info.replica_role = Some(part.role_name().to_string());
            }
        }
        Ok(d)
    }

    /// Changes settings and/or grows the partition count.
    pub async fn alter_topic(
        &self,
        name: &str,
        change: AlterTopic,
    ) -> Result<TopicDescription, ErrorBody> {
        if let Some(cluster) = self.cluster.get() {
            return self.alter_topic_clustered(cluster, name, change).await;
        }
        self.alter_topic_local(name, change).await
    }

    pub(crate) async fn alter_topic_local(
        &self,
        name: &str,
        change: AlterTopic,
    ) -> Result<TopicDescription, ErrorBody> {
        let topic = self.topic(name)?;
        if is_internal_topic(name) {
            return Err(ErrorBody::new(
                ErrorCode::InternalTopic,
                format!("`{name}` is internal and cannot be altered"),
            ));
        }
        let mut overrides = topic.settings().overrides;
        for (k, v) in change.configs {
            match v {
                Some(v) => overrides.insert(k, v),
                None => overrides.remove(&k),
            };
        }
        let settings = TopicSettings::resolve(&self.config.log_defaults, overrides)?;
        self.check_partitioner(&settings)?;
        let current = topic.partition_count();
        let target = change.partitions.unwrap_or(current);
        if target < current {
            return Err(ErrorBody::new(
                ErrorCode::InvalidConfig,
                format!(
                    "topic `{name}` has {current} partitions; partitions can be added, never removed"
                ),
            ));
        }
        if target > self.config.max_partitions {
            return Err(ErrorBody::new(
                ErrorCode::InvalidConfig,
                format!("partitions must be at most {}", self.config.max_partitions),
            ));
        }
        let t = topic.clone();
        let new_settings = settings.clone();
        let added = blocking(move || -> Result<Vec<Arc<Partition>>, ErrorBody> {
            for p in t.partitions() {
                p.log
                    .set_config(new_settings.log.clone())
                    .map_err(storage_error)?;
            }
            let mut added = Vec::new();
            for p in current..target {
                let log = Log::open(t.dir.join(p.to_string()), new_settings.log.clone())
                    .map_err(storage_error)?;
                added.push(Arc::new(Partition::new(p, Arc::new(log))));
            }
            Ok(added)
        })
        .await??;
        *topic.settings.write() = settings;
        for p in &added {
            self.maintainer.register(&p.log);
        }
        topic.partitions.write().extend(added);
        let manifest = topic.manifest();
        let dir = topic.dir.clone();
        blocking(move || manifest.write(&dir))
            .await?
            .map_err(|e| io_error("write topic manifest", e))?;
        tracing::info!(topic = name, partitions = target, "topic altered");
        Ok(topic.describe())
    }

    /// Deletes a topic and its files.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ErrorBody> {
        if is_internal_topic(name) {
            return Err(ErrorBody::new(
                ErrorCode::InternalTopic,
                format!("`{name}` is internal and cannot be deleted"),
            ));
        }
        if let Some(cluster) = self.cluster.get() {
            return self.delete_topic_clustered(cluster, name).await;
        }
        self.delete_topic_local(name).await
    }

    pub(crate) async fn delete_topic_local(&self, name: &str) -> Result<(), ErrorBody> {
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| unknown_topic(name))?;
        let dir = topic.dir.clone();
        // Requests still holding a partition must not write into a directory that a new topic
        // of the same name may take over; long-polls and subscriptions waiting on it wake and
        // find it gone.
        for p in topic.partitions() {
            p.log.retire();
            p.wake_watchers();
        }
        drop(topic);
        // Rename first so a crash mid-delete never leaves a half topic that reopens.
        let doomed = dir.with_file_name(format!("{name}.{}.deleted", now_ms()));
        blocking(move || -> std::io::Result<()> {
            std::fs::rename(&dir, &doomed)?;
            std::fs::remove_dir_all(&doomed)
        })
        .await?
        .map_err(|e| io_error("delete topic files", e))?;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    fn topic_for_produce(&self, name: &str) -> Result<Option<Arc<Topic>>, ErrorBody> {
        if is_internal_topic(name) {
            return Err(ErrorBody::new(
                ErrorCode::InternalTopic,
                format!("`{name}` is internal; clients cannot produce to it"),
            ));
        }
        match self.topic(name) {
            Ok(t) => Ok(Some(t)),
            Err(_) if self.config.auto_create_topics => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn topic_or_create(&self, name: &str) -> Result<Arc<Topic>, ErrorBody> {
        if let Some(t) = self.topic_for_produce(name)? {
            return Ok(t);
        }
        let req = CreateTopic {
            name: name.to_string(),
            partitions: self.config.default_partitions,
            replication_factor: 0,
            configs: BTreeMap::new(),
        };
        match self.create_topic(req).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::TopicExists => {}
            Err(e) => return Err(e),
        }
        self.topic(name)
    }

    /// Produces records, routing each: explicit partition, else murmur2 of the key as Kafka's
    /// default partitioner, else one partition per request chosen round-robin (sticky per
    /// batch). Records of one partition become one batch (or several if they exceed
    /// `max.message.bytes`); nothing is written if any record is invalid. Answers offsets per
    /// record, in request order (none with `acks=0`).
    pub async fn produce_records(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        acks: Acks,
    ) -> Result<ProduceResponse, ErrorBody> {
        if records.is_empty() {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "no records to produce",
            ));
        }
        let topic = self.topic_or_create(topic).await?;
        let n = topic.partition_count();
        let settings = topic.settings();
        let sticky = topic.next_sticky(n);
        if settings.log.cleanup_policy.compact
            && let Some(i) = records.iter().position(|r| r.key.is_none())
        {
            // Checked up front so a request is all or nothing.
            return Err(ErrorBody::new(
                ErrorCode::KeyRequired,
                format!(
                    "record {i} has no key; topic `{}` is compacted and needs a key on every record",
                    topic.name
                ),
            ));
        }
        // Route: explicit partition > the topic's partitioner plugin > murmur2 > sticky.
        let by_plugin = match settings.partitioner() {
            Some((name, params)) if records.iter().any(|r| r.partition.is_none()) => Some(
                self.route_with_plugin(&topic.name, &name, &params, &records, n)
                    .await?,
            ),
            _ => None,
        };
        let mut routes = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let p = match (r.partition, &r.key) {
                (None, _) if by_plugin.is_some() => by_plugin.as_ref().expect("checked")[i],
                (Some(p), _) => {
                    if p >= n {
                        return Err(topic.partition(p).err().expect("out of range"));
                    }
                    p
                }
                (None, Some(k)) => partitioner::partition_for_key(k.as_bytes(), n),
                (None, None) => sticky,
            };
            routes.push(p);
        }
        // Encode one or more batches per partition, in record order, before writing anything.
        let now = now_ms() as i64;
        let max = settings.max_message_bytes as usize;
        let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, &p) in routes.iter().enumerate() {
            by_partition.entry(p).or_default().push(i);
        }
        let mut offsets = vec![
            RecordOffset {
                partition: 0,
                offset: 0
            };
            records.len()
        ];
        let mut jobs = Vec::new();
        let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
        for (p, idx) in by_partition {
            // Split the partition's records into batches of at most `max` bytes.
            let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
            let mut len = 0usize;
            for &i in &idx {
                let r = &records[i];
                let ts = r.timestamp.unwrap_or(now);
                headers.clear();
                headers.extend(
                    r.headers
                        .0
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))),
                );
                if let Some((base_ts, group)) = groups.last_mut() {
                    let add = encoded_record_len(ts - *base_ts, group.len() as i32, r, &headers);
                    if len + add <= max {
                        group.push(i);
                        len += add;
                        continue;
                    }
                }
                let alone = HEADER_LEN + encoded_record_len(0, 0, r, &headers);
                if alone > max {
                    return Err(ErrorBody::new(
                        ErrorCode::RecordTooLarge,
                        format!(
                            "record {i} encodes to a {alone}-byte batch, larger than the topic's max.message.bytes ({max}); send smaller records or raise the setting"
                        ),
                    ));
                }
                groups.push((ts, vec![i]));
                len = alone;
            }
            let mut out = Vec::with_capacity(len * groups.len());
            for (base_ts, group) in &groups {
                let mut b = BatchBuilder::new(&mut out, 0, *base_ts);
                for &i in group {
                    let r = &records[i];
                    headers.clear();
                    headers.extend(
                        r.headers
                            .0
                            .iter()
                            .map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))),
                    );
                    b.push(
                        r.timestamp.unwrap_or(now),
                        r.key.as_ref().map(|k| k.as_bytes()),
                        r.value.as_ref().map(|v| v.as_bytes()),
                        &headers,
                    );
                }
                b.finish().expect("a group holds at least one record");
            }
            debug_assert!(Batches::new(&out).all(|b| b.is_ok_and(|b| b.as_bytes().len() <= max)));
            jobs.push((topic.partition(p)?, out, idx));
        }
        // Every partition must take the write (here, or on its leader) before any is written.
        let mut epochs = Vec::with_capacity(jobs.len());
        for (partition, _, _) in &jobs {
            epochs.push(match self.check_writable(&topic, partition, acks) {
                Ok(e) => Ok(e),
                Err(e) => Err(self.forward_target(&topic.name, partition.id, e)?),
            });
        }
        let mut pending = Vec::new();
        let mut forwarded = Vec::new();
        for ((partition, mut bytes, idx), epoch) in jobs.into_iter().zip(epochs) {
            let epoch = match epoch {
                Ok(e) => e,
                Err(addr) => {
                    forwarded.push((partition, addr, bytes, idx));
                    continue;
                }
            };
            let part = partition.clone();
            let task = tokio::task::spawn_blocking(move || {
                let r = part.log.append(&mut bytes, epoch);
                if r.is_ok() {
                    part.advance_high_watermark();
                }
                r
            });
            pending.push((partition, epoch, task, idx));
        }
        let mut forwarded_answers = Vec::new();
        for (part, addr, bytes, idx) in forwarded {
            let answer = self
                .forward_produce(&addr, &topic.name, part.id, bytes, acks)
                .await;
            forwarded_answers.push((part.id, answer, idx));
        }
        if acks == Acks::None {
            tokio::spawn(async move {
                for (p, _, task, _) in pending {
                    if let Ok(Err(e)) = task.await {
                        tracing::warn!(partition = p.id, error = %e, "acks=0 produce failed");
                    }
                }
            });
            return Ok(ProduceResponse { offsets: vec![] });
        }
        for (part, epoch, task, idx) in pending {
            let info = task
                .await
                .map_err(|e| {
                    ErrorBody::new(ErrorCode::Internal, format!("append task failed: {e}"))
                })?
                .map_err(storage_error)?;
            if acks == Acks::All {
                part.wait_replicated(
                    info.log_end_offset,
                    epoch,
                    self.config.replication_timeout_ms,
                )
                .await?;
            }
            for (k, &i) in idx.iter().enumerate() {
                offsets[i] = RecordOffset {
                    partition: part.id,
                    offset: info.first_offset + k as u64,
                };
            }
        }
        for (p, answer, idx) in forwarded_answers {
            let first = answer?.offsets.first().map(|o| o.offset).ok_or_else(|| {
                ErrorBody::new(ErrorCode::Internal, "the leader answered no offset")
            })?;
            for (k, &i) in idx.iter().enumerate() {
                offsets[i] = RecordOffset {
                    partition: p,
                    offset: first + k as u64,
                };
            }
        }
        Ok(ProduceResponse { offsets })
    }

    /// Produces already-encoded record batches (the SDKs' path). With a partition they are
    /// appended as they are (after validation); without, their records are routed like
    /// `produce_records`. Answers one entry per appended batch group: (partition, first offset).
    pub async fn produce_batches(
        &self,
        topic: &str,
        partition: Option<u32>,
        batches: Vec<u8>,
        acks: Acks,
    ) -> Result<ProduceResponse, ErrorBody> {
        let topic = self.topic_or_create(topic).await?;
        let max = topic.settings().max_message_bytes as usize;
        let mut count = 0usize;
        let mut iter = Batches::new(&batches);
        for b in iter.by_ref() {
            let b = b.map_err(|e| {
                ErrorBody::new(
                    ErrorCode::InvalidRecords,
                    format!("invalid record batch: {e}"),
                )
            })?;
            check_client_batch(b.header())?;
            if b.as_bytes().len() > max {
                return Err(ErrorBody::new(
                    ErrorCode::RecordTooLarge,
                    format!(
                        "a {}-byte batch is larger than the topic's max.message.bytes ({max})",
                        b.as_bytes().len()
                    ),
                ));
            }
            count += 1;
        }
        if !iter.remainder().is_empty() || count == 0 {
            return Err(ErrorBody::new(
                ErrorCode::InvalidRecords,
                "the body must hold one or more whole record batches",
            ));
        }
        let partition = match partition {
            Some(p) => p,
            None if topic.partition_count() == 1 => 0,
            None => {
                let records = Self::decode_for_routing(&batches)?;
                let resp = self.produce_records(&topic.name, records, acks).await?;
                return Ok(resp);
            }
        };
        self.produce_to_partition(&topic, partition, batches, acks, true)
            .await
    }

    /// Writes whole batches to one partition: here when this broker leads it (or runs alone);
    /// with `forward`, on its leader otherwise (one hop, so every client can talk to any
    /// broker of a cluster).
    pub async fn produce_to_partition(
        &self,
        topic: &Arc<Topic>,
        partition: u32,
        mut batches: Vec<u8>,
        acks: Acks,
        forward: bool,
    ) -> Result<ProduceResponse, ErrorBody> {
        let part = topic.partition(partition)?;
        let epoch = match self.check_writable(topic, &part, acks) {
            Ok(e) => e,
            Err(e) if forward => {
                let addr = self.forward_target(&topic.name, partition, e)?;
                return self
                    .forward_produce(&addr, &topic.name, partition, batches, acks)
                    .await;
            }
            Err(e) => return Err(e),
        };
        let writer = part.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = writer.log.append(&mut batches, epoch);
            if r.is_ok() {
                writer.advance_high_watermark();
            }
            r
        });
        if acks == Acks::None {
            return Ok(ProduceResponse { offsets: vec![] });
        }
        let info = task
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("append task failed: {e}")))?
            .map_err(storage_error)?;
        if acks == Acks::All {
            part.wait_replicated(
                info.log_end_offset,
                epoch,
                self.config.replication_timeout_ms,
            )
            .await?;
        }
        Ok(ProduceResponse {
            offsets: vec![RecordOffset {
                partition,
                offset: info.first_offset,
            }],
        })
    }

    fn decode_for_routing(bytes: &[u8]) -> Result<Vec<ProduceRecord>, ErrorBody> {
        let bad = |e: sluice_record::RecordError| {
            ErrorBody::new(
                ErrorCode::InvalidRecords,
                format!("invalid record batch: {e}"),
            )
        };
        let mut out = Vec::new();
        for b in Batches::new(bytes) {
            let b = b.map_err(bad)?;
            b.validate().map_err(bad)?;
            let h = *b.header();
            for r in b.records().map_err(bad)? {
                let r = r.map_err(bad)?;
                let headers = r
                    .headers()
                    .map(|h| {
                        h.map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.map(Into::into)))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?;
                out.push(ProduceRecord {
                    key: r.key.map(Into::into),
                    value: r.value.map(Into::into),
                    headers: Headers(headers),
                    partition: None,
                    timestamp: Some(r.timestamp(h.base_timestamp)),
                });
            }
        }
        Ok(out)
    }

    /// Reads batches from `offset`, waiting up to `max_wait_ms` (capped by the broker) for
    /// records when there are none yet. Wakes as soon as the high watermark moves.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u64,
        max_wait_ms: u64,
    ) -> Result<Fetched, ErrorBody> {
        let part = self.topic(topic)?.partition(partition)?;
        if let Err(e) = self.check_readable(topic, &part) {
            let addr = self.forward_target(topic, partition, e)?;
            return self
                .forward_fetch(&addr, topic, partition, offset, max_bytes, max_wait_ms)
                .await;
        }
        self.fetch_local(&part, offset, max_bytes, max_wait_ms)
            .await
    }

    /// A fetch served by this broker (its leader, or a single broker).
    pub(crate) async fn fetch_local(
        &self,
        part: &Arc<Partition>,
        offset: u64,
        max_bytes: u64,
        max_wait_ms: u64,
    ) -> Result<Fetched, ErrorBody> {
        let max_bytes = max_bytes.clamp(1, self.config.max_fetch_bytes) as usize;
        let wait = Duration::from_millis(max_wait_ms.min(self.config.max_fetch_wait_ms));
        let mut hw = part.watch_high_watermark();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let log = part.log.clone();
            let (batches, info) = blocking(move || {
                let mut buf = Vec::new();
                log.read_into(offset, max_bytes, ReadBound::HighWatermark, &mut buf)
                    .map(|i| (buf, i))
            })
            .await?
            .map_err(storage_error)?;
            if info.bytes > 0 || wait.is_zero() {
                return Ok(Fetched { batches, info });
            }
            // Nothing yet: wait for the high watermark to move past the offset, or time out.
            let waited = tokio::time::timeout_at(deadline, hw.wait_for(|&h| h > offset)).await;
            match waited {
                Ok(Ok(_)) => continue,
                _ => return Ok(Fetched { batches, info }),
            }
        }
    }

    /// Earliest and latest offsets of each partition, and the offset for a timestamp.
    pub async fn list_offsets(
        &self,
        topic: &str,
        timestamp: Option<i64>,
    ) -> Result<OffsetsResponse, ErrorBody> {
        let t = self.topic(topic)?;
        let mut partitions = Vec::new();
        for p in t.partitions() {
            let log = p.log.clone();
            let for_ts = match timestamp {
                Some(ts) => Some(
                    blocking(move || log.offset_for_timestamp(ts, ReadBound::HighWatermark))
                        .await?
                        .map_err(storage_error)?,
                ),
                None => None,
            };
            partitions.push(PartitionOffsets {
                partition: p.id,
                earliest: p.log.log_start_offset(),
                latest: p.log.high_watermark(),
                offset_for_timestamp: for_ts,
            });
        }
        Ok(OffsetsResponse {
            topic: t.name.clone(),
            partitions,
        })
    }

    /// Uploads (or replaces) a plugin: validated and compiled before it is stored.
    pub async fn upload_plugin(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<PluginDescription, ErrorBody> {
        let me = self.clone();
        let owned = name.to_string();
        let d = blocking(move || me.plugins.upload(&owned, &bytes)).await??;
        if let Some(cluster) = self.cluster.get() {
            // Every broker copies it from here.
            let cmd = crate::cluster::MetaCommand::PutPlugin {
                name: name.to_string(),
                plugin: crate::cluster::meta::PluginMeta {
                    sha256: d.sha256.clone(),
                    size: d.size_bytes as u64,
                    holder: cluster.node_id(),
                },
            };
            let view = cluster
                .submit(crate::cluster::ControllerRequest::Command(cmd))
                .await?;
            self.reconcile(&view).await;
        }
        Ok(d)
    }

    /// The module bytes of a stored plugin (other brokers of a cluster copy it).
    pub fn plugin_module(&self, name: &str) -> Option<Vec<u8>> {
        self.plugins.module_bytes(name)
    }

    fn check_partitioner(&self, settings: &TopicSettings) -> Result<(), ErrorBody> {
        if let Some((name, params)) = settings.partitioner() {
            self.plugins.partitioner(&name, &params).map_err(|e| {
                ErrorBody::new(
                    ErrorCode::InvalidConfig,
                    format!("partitioner `{name}`: {}", e.message),
                )
            })?;
        }
        Ok(())
    }

    /// Routes every record through the topic's partitioner plugin (one call per chunk of
    /// records, on the blocking pool); the answer has one partition per record.
    async fn route_with_plugin(
        &self,
        topic: &str,
        name: &str,
        params: &BTreeMap<String, String>,
        records: &[ProduceRecord],
        partitions: u32,
    ) -> Result<Vec<u32>, ErrorBody> {
        let sha = self.plugins.sha256(name).ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::UnknownPlugin,
                format!("topic `{topic}` routes with plugin `{name}`, which no longer exists"),
            )
        })?;
        let partitioner = {
            let mut cache = self.partitioners.lock();
            match cache.get(topic) {
                Some((s, n, p, part)) if *s == sha && n == name && p == params => part.clone(),
                _ => {
                    let part = self.plugins.partitioner(name, params)?;
                    cache.insert(
                        topic.to_string(),
                        (sha, name.to_string(), params.clone(), part.clone()),
                    );
                    part
                }
            }
        };
        let now = now_ms() as i64;
        // The blocking task needs its own copy of the records.
        let records = records.to_vec();
        blocking(move || -> Result<Vec<u32>, ErrorBody> {
            let failed = |e: sluice_wasm::PluginError| {
                let code = if e.is_plugin_fault() {
                    ErrorCode::PluginFailed
                } else {
                    ErrorCode::InvalidPlugin
                };
                ErrorBody::new(code, e.to_string())
            };
            let mut instance = partitioner.instance().map_err(failed)?;
            let mut routing = instance.routing(partitions).map_err(failed)?;
            let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
            for (i, r) in records.iter().enumerate() {
                headers.clear();
                headers.extend(
                    r.headers
                        .0
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes()))),
                );
                routing
                    .push(&sluice_wasm::RecordInput {
                        offset: i as i64,
                        timestamp: r.timestamp.unwrap_or(now),
                        key: r.key.as_ref().map(|k| k.as_bytes()),
                        value: r.value.as_ref().map(|v| v.as_bytes()),
                        headers: &headers,
                    })
                    .map_err(failed)?;
            }
            let mut routes = Vec::with_capacity(records.len());
            routing.finish(&mut routes).map_err(failed)?;
            Ok(routes)
        })
        .await?
    }

    /// Uploaded plugins.
    pub fn list_plugins(&self) -> Vec<PluginDescription> {
        self.plugins.list()
    }

    /// One plugin: kind, ABI version, size, sha256, upload time, health counters.
    pub fn describe_plugin(&self, name: &str) -> Result<PluginDescription, ErrorBody> {
        self.plugins.describe(name)
    }

    /// Deletes a plugin; refused while a topic routes with it (subscriptions using it as a
    /// filter keep their loaded copy until they end).
    pub async fn delete_plugin(&self, name: &str) -> Result<(), ErrorBody> {
        self.check_plugin_unused(name)?;
        if let Some(cluster) = self.cluster.get() {
            let cmd = crate::cluster::MetaCommand::DeletePlugin {
                name: name.to_string(),
            };
            self.plugins.describe(name)?;
            let view = cluster
                .submit(crate::cluster::ControllerRequest::Command(cmd))
                .await?;
            self.reconcile(&view).await;
            return Ok(());
        }
        self.plugins.delete(name)
    }

    fn check_plugin_unused(&self, name: &str) -> Result<(), ErrorBody> {
        if let Some(t) = self
            .topics()
            .into_iter()
            .find(|t| t.settings().partitioner().is_some_and(|(n, _)| n == name))
        {
            return Err(ErrorBody::new(
                ErrorCode::InvalidConfig,
                format!(
                    "plugin `{name}` is the partitioner of topic `{}`; remove it there first (sluice topic alter {} --delete-config partitioner)",
                    t.name, t.name
                ),
            ));
        }
        Ok(())
    }

    /// A filter for a subscription or fetch: plugin `name` initialised with `params`.
    pub fn filter(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Filter, ErrorBody> {
        self.plugins.filter(name, params)
    }

    /// Runs `filter` over fetched batches on the blocking pool: the kept records (offsets keep
    /// their gaps) and where to continue, which is past dropped records too.
    pub async fn apply_filter(filter: &Filter, fetched: Fetched) -> Result<Fetched, ErrorBody> {
        let filter = filter.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(fetched.batches.len());
            let summary = filter
                .filter_batches(&fetched.batches, &mut out)
                .map_err(|e| {
                    let code = if e.is_plugin_fault() {
                        ErrorCode::PluginFailed
                    } else {
                        ErrorCode::InvalidPlugin
                    };
                    ErrorBody::new(code, e.to_string())
                })?;
            let mut info = fetched.info;
            if let Some(next) = summary.next_offset {
                info.next_offset = info.next_offset.max(next as u64);
            }
            info.bytes = out.len();
            Ok(Fetched { batches: out, info })
        })
        .await?
    }

    /// A map for a subscription or fetch: plugin `name` initialised with `params`. A plugin
    /// of another kind is refused with `invalid_plugin`.
    pub fn map(&self, name: &str, params: &BTreeMap<String, String>) -> Result<Map, ErrorBody> {
        self.plugins.map_plugin(name, params)
    }

    /// Runs `map` over fetched (and possibly filtered) batches on the blocking pool: the same
    /// batches, offsets and timestamps with each record rewritten; where to continue is
    /// unchanged. A map that fails (trap, timeout, bad answer) is `plugin_failed`.
    pub async fn apply_map(map: &Map, fetched: Fetched) -> Result<Fetched, ErrorBody> {
        if fetched.batches.is_empty() {
            return Ok(fetched);
        }
        let map = map.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(fetched.batches.len());
            map.map_batches(&fetched.batches, &mut out).map_err(|e| {
                let code = if e.is_plugin_fault() {
                    ErrorCode::PluginFailed
                } else {
                    ErrorCode::InvalidPlugin
                };
                ErrorBody::new(code, e.to_string())
            })?;
            let mut info = fetched.info;
            info.bytes = out.len();
            Ok(Fetched { batches: out, info })
        })
        .await?
    }

    /// Partition counts of the client topics (internal ones excluded).
    fn client_topic_partitions(&self) -> BTreeMap<String, u32> {
        self.topics
            .read()
            .iter()
            .filter(|(n, _)| !is_internal_topic(n))
            .map(|(n, t)| (n.clone(), t.partition_count()))
            .collect()
    }

    /// A group member's heartbeat: join (epoch 0), keep-alive with revocation acknowledgements,
    /// or leave (-1, or -2 for a static member coming back). Answers the member's assignment.
    pub async fn group_heartbeat(
        &self,
        req: &GroupHeartbeat,
    ) -> Result<GroupAssignment, ErrorBody> {
        if let Some(addr) = self.group_coordinator(&req.group).await? {
            return match self
                .group_call(&addr, GroupCall::Heartbeat(req.clone()))
                .await?
            {
                GroupReply::Assignment(a) => Ok(a),
                other => Err(unexpected(other)),
            };
        }
        self.groups.heartbeat(req, &self.client_topic_partitions())
    }

    /// The assignment a member should have now, without counting as a heartbeat; `None` once
    /// the member is gone. Transports push it when it changes (see [`Broker::group_changes`]).
    pub fn peek_assignment(&self, group: &str, member_id: &str) -> Option<GroupAssignment> {
        self.groups.peek(group, member_id)
    }

    /// Changes whenever any group's state may have changed.
    pub fn group_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.groups.changes()
    }

    /// Commits offsets for a group; refused from removed members and stale epochs.
    pub async fn commit_offsets(&self, req: CommitOffsets) -> Result<(), ErrorBody> {
        if let Some(addr) = self.group_coordinator(&req.group).await? {
            return match self.group_call(&addr, GroupCall::Commit(req)).await? {
                GroupReply::Done => Ok(()),
                other => Err(unexpected(other)),
            };
        }
        self.groups
            .commit(req, &self.client_topic_partitions())
            .await
    }

    /// Committed offsets of a group (optionally of some topics).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topics: Option<&[String]>,
    ) -> Result<GroupOffsets, ErrorBody> {
        if let Some(addr) = self.group_coordinator(group).await? {
            let call = GroupCall::FetchOffsets {
                group: group.to_string(),
                topics: topics.map(|t| t.to_vec()),
            };
            return match self.group_call(&addr, call).await? {
                GroupReply::Offsets(o) => Ok(o),
                other => Err(unexpected(other)),
            };
        }
        self.groups.fetch(group, topics)
    }

    /// Groups with members or committed offsets (in a cluster, of every live broker).
    pub async fn list_groups(&self) -> GroupList {
        self.list_groups_everywhere().await
    }

    /// The groups this broker coordinates.
    pub(crate) fn list_local_groups(&self) -> GroupList {
        self.groups.list()
    }

    /// A group's state, members, assignment, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ErrorBody> {
        if let Some(addr) = self.group_coordinator(group).await? {
            let call = GroupCall::Describe {
                group: group.to_string(),
            };
            return match self.group_call(&addr, call).await? {
                GroupReply::Description(d) => Ok(*d),
                other => Err(unexpected(other)),
            };
        }
        self.groups.describe(group, &self.topics())
    }

    /// Deletes a group's committed offsets (only without active members).
    pub async fn delete_group(&self, group: &str) -> Result<(), ErrorBody> {
        if let Some(addr) = self.group_coordinator(group).await? {
            let call = GroupCall::Delete {
                group: group.to_string(),
            };
            return match self.group_call(&addr, call).await? {
                GroupReply::Done => Ok(()),
                other => Err(unexpected(other)),
            };
        }
        self.groups.delete(group).await
    }

    /// Moves an inactive group's offsets to the earliest, latest, an offset or a timestamp.
    pub async fn reset_offsets(
        &self,
        group: &str,
        req: ResetOffsets,
    ) -> Result<GroupOffsets, ErrorBody> {
        if let Some(addr) = self.group_coordinator(group).await? {
            let call = GroupCall::Reset {
                group: group.to_string(),
                req,
            };
            return match self.group_call(&addr, call).await? {
                GroupReply::Offsets(o) => Ok(o),
                other => Err(unexpected(other)),
            };
        }
        self.groups.ensure_inactive(group, "reset its offsets")?;
        let topics: Vec<String> = match req.topics {
            Some(t) => t,
            None => self.groups.committed_topics(group).into_iter().collect(),
        };
        if topics.is_empty() {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("group `{group}` has no committed offsets; name the topics to reset"),
            ));
        }
        let mut new = Vec::new();
        for name in &topics {
            let t = self.topic(name)?;
            let by_time = match req.to {
                StartFrom::Timestamp(ts) => Some(self.list_offsets(name, Some(ts)).await?),
                _ => None,
            };
            for p in t.partitions() {
                let (start, end) = (p.log.log_start_offset(), p.log.high_watermark());
                let offset = match req.to {
                    StartFrom::Earliest => start,
                    StartFrom::Latest => end,
                    StartFrom::Offset(o) => o.clamp(start, end),
                    StartFrom::Timestamp(_) => by_time
                        .as_ref()
                        .and_then(|o| o.partitions.iter().find(|x| x.partition == p.id))
                        .and_then(|x| x.offset_for_timestamp.flatten())
                        .unwrap_or(end),
                };
                new.push((name.clone(), p.id, offset));
            }
        }
        self.groups.reset(group, new).await?;
        self.groups.fetch(group, Some(&topics))
    }

    /// Removes group members whose session expired and expires old offsets of empty groups.
    /// Call it periodically (the server does, every few hundred ms).
    pub async fn maintain_groups(&self) {
        self.groups.expire(&self.client_topic_partitions());
        if let Err(e) = self.groups.expire_offsets().await {
            tracing::warn!(error = %e.message, "expiring committed offsets");
        }
    }

    /// Clean shutdown: flushes and closes every log so the next start scans nothing.
    pub async fn shutdown(self: Arc<Self>) {
        let topics: Vec<Arc<Topic>> = std::mem::take(&mut *self.topics.write())
            .into_values()
            .collect();
        let result = blocking(move || {
            for t in topics {
                let parts = std::mem::take(&mut *t.partitions.write());
                for p in parts {
                    let Ok(p) = Arc::try_unwrap(p) else {
                        tracing::warn!(topic = %t.name, "partition still in use at shutdown; it will recover on the next start");
                        continue;
                    };
                    match Arc::try_unwrap(p.log) {
                        Ok(log) => {
                            if let Err(e) = log.close() {
                                tracing::error!(topic = %t.name, partition = p.id, error = %e, "closing log");
                            }
                        }
                        Err(log) => {
                            if let Err(e) = log.flush() {
                                tracing::error!(topic = %t.name, partition = p.id, error = %e, "flushing log");
                            }
                        }
                    }
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e.message, "shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_record_len_is_exact() {
        let cases = [
            ProduceRecord::default(),
            ProduceRecord {
                key: Some("k".into()),
                value: Some(vec![7u8; 300].into()),
                headers: Headers(vec![
                    ("a".into(), None),
                    ("bb".into(), Some(vec![1u8; 200].into())),
                ]),
                ..Default::default()
            },
        ];
        for r in &cases {
            for (dt, delta) in [(0i64, 0i32), (-5, 1), (1 << 40, 70_000)] {
                let headers: Vec<(&[u8], Option<&[u8]>)> = r
                    .headers
                    .0
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes())))
                    .collect();
                let mut out = Vec::new();
                let mut b = BatchBuilder::new(&mut out, 0, 1000);
                b.push_with_delta(
                    delta,
                    1000 + dt,
                    r.key.as_ref().map(|k| k.as_bytes()),
                    r.value.as_ref().map(|v| v.as_bytes()),
                    &headers,
                );
                b.finish().unwrap();
                assert_eq!(
                    out.len(),
                    HEADER_LEN + encoded_record_len(dt, delta, r, &headers)
                );
            }
        }
    }
}
