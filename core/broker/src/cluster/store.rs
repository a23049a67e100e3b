//! Durable storage of the metadata Raft: the log, the vote, and the state machine's snapshot,
//! in `<data>/cluster/`.
//!
//! The metadata log is small (topic and broker changes, compacted by snapshots), so the whole
//! unpurged log is also kept in memory; the file is the record of it for restarts.
//!
//! Files, format version 1:
//! - `raft.log`: frames `[len: u32 LE][crc32c(payload): u32 LE][payload: JSON entry]`,
//!   appended and fsynced before openraft hears an append completed. A torn or corrupt tail
//!   (a crash mid-append, never acknowledged) is cut off at open. Truncation and purge rewrite
//!   the file (temp file, fsync, rename, fsync of the directory).
//! - `raft-vote.json`, `raft-committed.json`, `raft-purged.json`: written whole the same way.
//! - `raft-snapshot.json`: `{ "meta": SnapshotMeta, "state": ClusterMeta }`.

use std::fmt::Debug;
use std::io::{Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::watch;

use super::meta::{ClusterMeta, MetaResult};
use super::{MetaView, NodeId, TypeConfig};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn io_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(&std::io::Error::other(e.to_string())).into()
}

/// Writes `bytes` to `dir/name` atomically and durably.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Largest frame accepted when reading `raft.log` back (a metadata command is small; a bigger
/// length is corruption).
const MAX_FRAME_BYTES: usize = 64 << 20;

fn encode_frame(entry: &Entry<TypeConfig>, out: &mut Vec<u8>) -> std::io::Result<()> {
    let payload = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Reads frames until the end or the first torn/corrupt one; answers the entries and the byte
/// length of the good prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<Entry<TypeConfig>>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        if len > MAX_FRAME_BYTES || bytes.len() - pos - 8 < len {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(e) => entries.push(e),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    (entries, pos)
}

struct LogInner {
    dir: PathBuf,
    file: std::fs::File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

impl LogInner {
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for e in self.entries.values() {
            encode_frame(e, &mut buf)?;
        }
        write_atomic(&self.dir, "raft.log", &buf)?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("raft.log"))?;
        Ok(())
    }
}

/// The Raft log and vote. Cheap to clone (the reader openraft asks for is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("raft.log");
        let mut bytes = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let (entries, good) = decode_frames(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                cut_bytes = bytes.len() - good,
                "cutting off a torn tail of the metadata log (a crash mid-append)"
            );
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            f.set_len(good as u64)?;
            f.sync_all()?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)?;
        let last_purged = read_json(&dir.join("raft-purged.json"))?;
        let entries = entries
            .into_iter()
            .filter(|e| last_purged.is_none_or(|p: LogId<NodeId>| e.log_id.index > p.index))
            .map(|e| (e.log_id.index, e))
            .collect();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote: read_json(&dir.join("raft-vote.json"))?,
                committed: read_json(&dir.join("raft-committed.json"))?,
            })),
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = self.inner.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock();
        let bytes = serde_json::to_vec(vote).map_err(io_err)?;
        write_atomic(&inner.dir, "raft-vote.json", &bytes).map_err(io_err)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let mut inner = self.inner.lock();
        let bytes = serde_json::to_vec(&committed).map_err(io_err)?;
        write_atomic(&inner.dir, "raft-committed.json", &bytes).map_err(io_err)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock();
        let mut buf = Vec::new();
        let mut new = Vec::new();
        for e in entries {
            encode_frame(&e, &mut buf).map_err(io_err)?;
            new.push(e);
        }
        let result = inner
            .file
            .write_all(&buf)
            .and_then(|_| inner.file.sync_data());
        match result {
            Ok(()) => {
                for e in new {
                    inner.entries.insert(e.log_id.index, e);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(io_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock();
        inner.entries.retain(|&i, _| i < log_id.index);
        inner.rewrite().map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock();
        let bytes = serde_json::to_vec(&log_id).map_err(io_err)?;
        write_atomic(&inner.dir, "raft-purged.json", &bytes).map_err(io_err)?;
        inner.last_purged = Some(log_id);
        inner.entries.retain(|&i, _| i > log_id.index);
        inner.rewrite().map_err(io_err)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    state: ClusterMeta,
}

struct SmInner {
    dir: PathBuf,
    state: ClusterMeta,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    snapshot: Option<StoredSnapshot>,
    snapshot_seq: u64,
}

/// The state machine: [`ClusterMeta`] in memory, published to a watch after every apply.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    published: watch::Sender<Arc<MetaView>>,
}

impl StateMachine {
    /// Restores from the last snapshot in `dir`, if any.
    pub fn open(dir: &Path) -> std::io::Result<(StateMachine, watch::Receiver<Arc<MetaView>>)> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<StoredSnapshot> = read_json(&dir.join("raft-snapshot.json"))?;
        let (state, last_applied, membership) = match &snapshot {
            Some(s) => (
                s.state.clone(),
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (ClusterMeta::default(), None, StoredMembership::default()),
        };
        let view = Arc::new(MetaView {
            meta: state.clone(),
            applied_index: last_applied.map_or(0, |l| l.index),
        });
        let (tx, rx) = watch::channel(view);
        Ok((
            StateMachine {
                inner: Arc::new(Mutex::new(SmInner {
                    dir: dir.to_path_buf(),
                    state,
                    last_applied,
                    membership,
                    snapshot,
                    snapshot_seq: 0,
                })),
                published: tx,
            },
            rx,
        ))
    }

    fn publish(&self, inner: &SmInner) {
        self.published.send_replace(Arc::new(MetaView {
            meta: inner.state.clone(),
            applied_index: inner.last_applied.map_or(0, |l| l.index),
        }));
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let mut inner = self.inner.lock();
        inner.snapshot_seq += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                inner.last_applied.map_or(0, |l| l.index),
                inner.snapshot_seq
            ),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            state: inner.state.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(io_err)?;
        write_atomic(&inner.dir, "raft-snapshot.json", &bytes).map_err(io_err)?;
        let data = serde_json::to_vec(&stored.state).map_err(io_err)?;
        inner.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(
        Option<LogId<NodeId>>,
        StoredMembership<NodeId, openraft::BasicNode>,
    )> {
        let inner = self.inner.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<MetaResult>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock();
        let mut out = Vec::new();
        for e in entries {
            inner.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Ok(())),
                EntryPayload::Normal(cmd) => {
                    let r = inner.state.apply(&cmd);
                    if let Err(err) = &r {
                        tracing::debug!(?cmd, error = %err.message, "metadata command refused");
                    }
                    out.push(r)
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Ok(()))
                }
            }
        }
        self.publish(&inner);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let state: ClusterMeta = serde_json::from_slice(snapshot.get_ref()).map_err(io_err)?;
        let mut inner = self.inner.lock();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(io_err)?;
        write_atomic(&inner.dir, "raft-snapshot.json", &bytes).map_err(io_err)?;
        inner.state = state;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.inner.lock();
        match &inner.snapshot {
            Some(s) => {
                let data = serde_json::to_vec(&s.state).map_err(io_err)?;
                Ok(Some(Snapshot {
                    meta: s.meta.clone(),
                    snapshot: Box::new(Cursor::new(data)),
                }))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[test]
    fn a_torn_tail_is_cut_and_good_frames_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        for i in 1..=3 {
            encode_frame(&entry(i), &mut buf).unwrap();
        }
        let good = buf.len();
        encode_frame(&entry(4), &mut buf).unwrap();
        buf.truncate(buf.len() - 3);
        std::fs::write(dir.path().join("raft.log"), &buf).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            store
                .inner
                .lock()
                .entries
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("raft.log"))
                .unwrap()
                .len(),
            good as u64
        );
        // A flipped byte in the middle cuts from there.
        let mut bad = std::fs::read(dir.path().join("raft.log")).unwrap();
        let second = bad.len() / 2;
        bad[second] ^= 0xff;
        let (entries, _) = decode_frames(&bad);
        assert!(entries.len() < 3);
    }
}
