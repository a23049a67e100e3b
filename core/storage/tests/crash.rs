//! Crash safety of `durability = always`: a child process appends batches and acknowledges
//! each append once it returns; the parent kills it with SIGKILL at a random moment, reopens
//! the log (recovery) and checks that every acknowledged batch is there, byte for byte, at its
//! acknowledged offsets, and that whatever else survived is whole batches the child wrote after
//! them.
//!
//! The child is this test binary run again with `SLUICE_CRASH_CHILD` set, so no helper binary
//! is needed. A batch's content is a function of its sequence number, so the parent rebuilds
//! exactly what the child wrote. Every round starts a new child on the same directory, so each
//! kill hits a log that has already been recovered at least once. Segments are small, so many
//! kills land near a roll.
//!
//! The kill delays come from a seed printed at the start; rerun a failure with
//! `SLUICE_CRASH_SEED=<seed>`. `SLUICE_CRASH_ROUNDS=<n>` runs more rounds. A failing run keeps
//! its log directory and prints its path.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{NewRec, Rec, batch, decode};
use sluice_record::{Batches, set_base_offset, set_partition_leader_epoch};
use sluice_storage::{Durability, Log, LogConfig, ReadBound, RecoveryReport};

/// This test's name, as the child's libtest filter (`--exact`).
const TEST_NAME: &str = "acknowledged_batches_survive_sigkill_at_random_moments";
/// Set in the child: the log directory.
const CHILD_DIR_ENV: &str = "SLUICE_CRASH_CHILD";
/// Set in the child: sequence number of the first batch it appends.
const CHILD_SEQ_ENV: &str = "SLUICE_CRASH_START_SEQ";
/// Set in the child: the leader epoch it stamps (the round number).
const CHILD_EPOCH_ENV: &str = "SLUICE_CRASH_EPOCH";
const SEED_ENV: &str = "SLUICE_CRASH_SEED";
const ROUNDS_ENV: &str = "SLUICE_CRASH_ROUNDS";
/// Marks the child's protocol lines among libtest's own output.
const LINE_PREFIX: &str = "SLUICE-CRASH ";

const DEFAULT_ROUNDS: u64 = 20;
/// The child is killed 1 to this many ms after its first acknowledgement.
const MAX_KILL_DELAY_MS: u64 = 150;
/// Longest wait for the child's first line and for its first acknowledgement.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
/// A child nobody kills stops by itself (so a lost parent leaves nothing running).
const CHILD_MAX_APPENDS: u64 = 100_000;
const CHILD_MAX_RUNTIME: Duration = Duration::from_secs(120);
/// Random offset and timestamp lookups checked after each recovery.
const LOOKUPS_PER_ROUND: usize = 64;
/// Record timestamps are fixed, so they can be rebuilt; batch `seq` owns 100 ms from
/// `BASE_TIMESTAMP_MS + seq * 100`, so timestamps never decrease along the log.
const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;
const TIMESTAMP_SPAN_PER_BATCH_MS: i64 = 100;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Always,
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        // Roll by size only and never delete: record timestamps are fixed, years in the past.
        segment_ms: i64::MAX as u64,
        retention_ms: None,
        ..LogConfig::default()
    }
}

#[test]
fn acknowledged_batches_survive_sigkill_at_random_moments() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        child_main(Path::new(&dir));
    }
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().expect("SLUICE_CRASH_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    let rounds: u64 = std::env::var(ROUNDS_ENV).map_or(DEFAULT_ROUNDS, |r| {
        r.parse().expect("SLUICE_CRASH_ROUNDS is a number")
    });
    println!("crash test: seed {seed} (rerun with {SEED_ENV}={seed}), {rounds} rounds");

    let dir = KeepOnPanic(Some(
        tempfile::Builder::new()
            .prefix("sluice-crash-")
            .tempdir()
            .expect("temporary directory"),
    ));
    let dir_path = dir.path();
    let mut rng = Rng::new(seed);
    let mut history = History::default();
    let mut stats = Stats::default();
    let mut log_end_offset = 0;
    let mut closed_cleanly = false;
    let started = Instant::now();

    for round in 0..rounds {
        let start_seq = history.batches_present();
        history.round_starts.push(start_seq);
        let delay = Duration::from_millis(1 + rng.below(MAX_KILL_DELAY_MS));
        let fail = |what: String| -> ! {
            panic!(
                "seed {seed}, round {round} (killed after {delay:?}), log {}: {what}",
                dir_path.display()
            )
        };

        let run = run_child(dir_path, round, start_seq, delay).unwrap_or_else(|e| fail(e));
        if run.start.log_end_offset != log_end_offset {
            fail(format!(
                "the child opened the log at end offset {}, the parent left it at {log_end_offset}",
                run.start.log_end_offset
            ));
        }
        if run.start.bytes_truncated != 0 || (closed_cleanly && run.start.bytes_scanned != 0) {
            fail(format!(
                "the parent {} the recovered log, yet the child's open found work to do: {:?}",
                if closed_cleanly { "closed" } else { "dropped" },
                run.start
            ));
        }
        check_acks(&run, start_seq).unwrap_or_else(|e| fail(e));
        history.acks.extend(run.acks.iter().copied());

        // Alternate a clean close and a plain drop, so children open both kinds of log.
        closed_cleanly = round % 2 == 0;
        let found =
            check_log(dir_path, &mut history, &mut rng, closed_cleanly).unwrap_or_else(|e| fail(e));
        let present = history.batches_present();
        let unacked = present - history.acked_batches().max(start_seq);
        stats.acked_appends += run.acks.len() as u64;
        stats.unacked_batches_kept += unacked;
        stats.bytes_truncated += found.report.bytes_truncated;
        stats.segments_discarded += found.report.segments_discarded as u64;
        println!(
            "round {round}: killed {delay:?} after the first ack; {} appends acked, {} batches \
             in the log ({} unacknowledged), end offset {}, {} segments, recovery {:?}",
            run.acks.len(),
            present,
            unacked,
            found.log_end_offset,
            found.segments,
            found.report,
        );
        log_end_offset = found.log_end_offset;
    }
    println!(
        "crash test: {rounds} kills in {:?}; {} appends acknowledged, {} batches / {} records \
         in the log, {} unacknowledged batches survived, {} torn bytes cut, {} segments \
         discarded",
        started.elapsed(),
        stats.acked_appends,
        history.batches_present(),
        log_end_offset,
        stats.unacked_batches_kept,
        stats.bytes_truncated,
        stats.segments_discarded,
    );
}

// ---------------------------------------------------------------------------------------------
// What the child writes: a pure function of the batch sequence number.

/// SplitMix64: small, seedable, plenty for sizes and bytes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The records of batch `seq`: 1 to 20 records, mostly small values with some up to 2000 bytes,
/// null and empty keys, null values, headers with null values, non-decreasing timestamps.
fn records_of(seq: u64) -> Vec<NewRec> {
    let mut rng = Rng::new(seq.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed_0fba_7c40);
    let count = 1 + rng.below(20);
    let mut timestamp = BASE_TIMESTAMP_MS + seq as i64 * TIMESTAMP_SPAN_PER_BATCH_MS;
    (0..count)
        .map(|_| {
            timestamp += rng.below(5) as i64;
            let key = match rng.below(8) {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{}", rng.below(1000)).into_bytes()),
            };
            let value = match rng.below(10) {
                0 => None,
                _ => {
                    let len = if rng.below(4) == 0 {
                        rng.below(2000)
                    } else {
                        rng.below(100)
                    };
                    Some(rng.bytes(len as usize))
                }
            };
            let headers = (0..rng.below(3))
                .map(|h| {
                    let value = match rng.below(3) {
                        0 => None,
                        _ => {
                            let len = rng.below(16) as usize;
                            Some(rng.bytes(len))
                        }
                    };
                    (format!("h{h}").into_bytes(), value)
                })
                .collect();
            NewRec {
                timestamp,
                key,
                value,
                headers,
            }
        })
        .collect()
}

/// How many batches the append starting with batch `seq` carries: mostly one, sometimes 2 or 3
/// (so a kill can also tear an append between its batches).
fn batches_in_append(seq: u64) -> u64 {
    let mut rng = Rng::new(seq ^ 0xa99e_0dda_7a00);
    if rng.below(4) == 0 {
        2 + rng.below(2)
    } else {
        1
    }
}

/// Batch `seq` as the log stores it: offsets and leader epoch assigned.
fn stored_batch(seq: u64, base_offset: u64, leader_epoch: i32) -> Vec<u8> {
    let mut b = batch(&records_of(seq));
    set_base_offset(&mut b, base_offset as i64);
    set_partition_leader_epoch(&mut b, leader_epoch);
    b
}

// ---------------------------------------------------------------------------------------------
// The child.

fn env_u64(name: &str) -> u64 {
    let v = std::env::var(name).unwrap_or_else(|_| panic!("child: {name} is not set"));
    v.parse()
        .unwrap_or_else(|_| panic!("child: {name}={v} is not a number"))
}

/// Appends until killed, printing one acknowledgement line after each append returns.
fn child_main(dir: &Path) -> ! {
    let mut seq = env_u64(CHILD_SEQ_ENV);
    let epoch = env_u64(CHILD_EPOCH_ENV) as i32;
    let log =
        Log::open(dir, config()).unwrap_or_else(|e| panic!("child: open {}: {e}", dir.display()));
    let report = log.recovery_report();
    let mut out = std::io::stdout().lock();
    say(
        &mut out,
        &format!(
            "START {} {} {}",
            log.log_end_offset(),
            report.bytes_scanned,
            report.bytes_truncated
        ),
    );
    let started = Instant::now();
    let mut appends = 0u64;
    let mut bytes = Vec::new();
    while appends < CHILD_MAX_APPENDS && started.elapsed() < CHILD_MAX_RUNTIME {
        let n = batches_in_append(seq);
        bytes.clear();
        for s in seq..seq + n {
            bytes.extend_from_slice(&batch(&records_of(s)));
        }
        let info = log
            .append(&mut bytes, epoch)
            .unwrap_or_else(|e| panic!("child: append of batch {seq}: {e}"));
        say(
            &mut out,
            &format!(
                "ACK {seq} {n} {} {} {}",
                info.first_offset, info.last_offset, info.log_end_offset
            ),
        );
        seq += n;
        appends += 1;
    }
    panic!(
        "child: not killed after {appends} appends in {:?}",
        started.elapsed()
    );
}

/// Writes one protocol line in one write (shorter than PIPE_BUF, so it reaches the pipe whole
/// or not at all) and flushes it.
fn say(out: &mut impl Write, line: &str) {
    let line = format!("{LINE_PREFIX}{line}\n");
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .expect("child: write to the parent");
}

// ---------------------------------------------------------------------------------------------
// The parent: running and killing a child.

/// The child's first line: what its open found.
#[derive(Debug, Clone, Copy)]
struct Start {
    log_end_offset: u64,
    bytes_scanned: u64,
    bytes_truncated: u64,
}

/// One acknowledged append: batches `seq..seq + batches` at offsets `first..=last`.
#[derive(Debug, Clone, Copy)]
struct Ack {
    seq: u64,
    batches: u64,
    first_offset: u64,
    last_offset: u64,
    log_end_offset: u64,
}

struct ChildRun {
    start: Start,
    acks: Vec<Ack>,
}

/// Kills and reaps the child however the parent leaves (including by panicking).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Keeps the log directory of a failed run for inspection.
struct KeepOnPanic(Option<tempfile::TempDir>);

impl KeepOnPanic {
    fn path(&self) -> &Path {
        self.0.as_ref().expect("present until drop").path()
    }
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if thread::panicking()
            && let Some(dir) = self.0.take()
        {
            let path: PathBuf = dir.keep();
            eprintln!(
                "crash test failed; log directory kept at {}",
                path.display()
            );
        }
    }
}

/// Starts a child on `dir`, waits for its first acknowledgement, kills it `delay` later and
/// returns everything it acknowledged before dying.
fn run_child(dir: &Path, round: u64, start_seq: u64, delay: Duration) -> Result<ChildRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("path of the test binary: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_SEQ_ENV, start_seq.to_string())
        .env(CHILD_EPOCH_ENV, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the child: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut child = Reaper(child);

    let (tx, lines) = mpsc::channel::<String>();
    let stdout_reader = thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline: its append is not counted as acknowledged.
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
            }
        }
    });
    let stderr_reader = read_all_of(stderr);

    let mut start = None;
    let mut acks = Vec::new();
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while acks.is_empty() {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => parse_line(&line, &mut start, &mut acks)?,
            Err(e) => {
                let what = match e {
                    RecvTimeoutError::Timeout => {
                        format!("no acknowledgement within {CHILD_TIMEOUT:?}")
                    }
                    RecvTimeoutError::Disconnected => "the child ended before its first \
                                                       acknowledgement"
                        .to_string(),
                };
                let (status, stderr) = reap(child, stderr_reader);
                return Err(format!("{what} ({status}); child stderr:\n{stderr}"));
            }
        }
    }

    thread::sleep(delay);
    let _ = child.0.kill();
    let status = child
        .0
        .wait()
        .map_err(|e| format!("wait for the child: {e}"))?;
    // The child is dead: its stdout ends, and every line it wrote is in the channel.
    stdout_reader.join().expect("stdout reader");
    for line in lines.try_iter() {
        parse_line(&line, &mut start, &mut acks)?;
    }
    let (_, stderr) = reap(child, stderr_reader);
    if status.signal() != Some(9) {
        return Err(format!(
            "the child ended by itself ({status}) instead of by SIGKILL; child stderr:\n{stderr}"
        ));
    }
    let start = start.ok_or("the child acknowledged before saying START")?;
    Ok(ChildRun { start, acks })
}

fn read_all_of(mut stderr: ChildStderr) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Kills (if still running) and reaps the child; returns its exit status and stderr.
fn reap(mut child: Reaper, stderr_reader: JoinHandle<String>) -> (ExitStatus, String) {
    let _ = child.0.kill();
    let status = child.0.wait().expect("wait for the child");
    let stderr = stderr_reader.join().expect("stderr reader");
    (status, stderr)
}

fn parse_line(line: &str, start: &mut Option<Start>, acks: &mut Vec<Ack>) -> Result<(), String> {
    // libtest prints `test <name> ... ` without a newline before running the test.
    let Some((_, rest)) = line.trim_end().split_once(LINE_PREFIX) else {
        return Ok(()); // libtest's own output
    };
    let bad = || format!("bad line from the child: {line:?}");
    let mut words = rest.split(' ');
    let kind = words.next().ok_or_else(bad)?;
    let nums: Vec<u64> = words
        .map(|w| w.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    match (kind, nums.as_slice()) {
        ("START", &[log_end_offset, bytes_scanned, bytes_truncated]) if start.is_none() => {
            *start = Some(Start {
                log_end_offset,
                bytes_scanned,
                bytes_truncated,
            });
        }
        ("ACK", &[seq, batches, first_offset, last_offset, log_end_offset]) if start.is_some() => {
            acks.push(Ack {
                seq,
                batches,
                first_offset,
                last_offset,
                log_end_offset,
            });
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// The acknowledgements of one child are consecutive appends from where its open started.
fn check_acks(run: &ChildRun, start_seq: u64) -> Result<(), String> {
    let mut seq = start_seq;
    let mut offset = run.start.log_end_offset;
    for ack in &run.acks {
        let ok = ack.seq == seq
            && ack.batches == batches_in_append(seq)
            && ack.first_offset == offset
            && ack.last_offset >= ack.first_offset
            && ack.log_end_offset == ack.last_offset + 1;
        if !ok {
            return Err(format!(
                "acknowledgement {ack:?} does not follow batch {seq} at offset {offset}"
            ));
        }
        seq += ack.batches;
        offset = ack.log_end_offset;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent: checking the recovered log.

#[derive(Default)]
struct History {
    /// Every acknowledgement of every round.
    acks: Vec<Ack>,
    /// The first batch sequence number of each round's child.
    round_starts: Vec<u64>,
    /// Every batch found by the last check, by sequence number, as stored (offsets and epoch
    /// assigned). All of them went through a recovery and a flush, so they must stay.
    batches: Vec<Vec<u8>>,
    /// Base offset of each batch in `batches`.
    base_offsets: Vec<u64>,
    /// (timestamp, offset) of every record in `batches`, in offset order.
    record_times: Vec<(i64, u64)>,
}

impl History {
    /// Batches `0..this` were acknowledged.
    fn acked_batches(&self) -> u64 {
        self.acks.last().map_or(0, |a| a.seq + a.batches)
    }

    /// Batches found by the last check.
    fn batches_present(&self) -> u64 {
        self.batches.len() as u64
    }

    /// The leader epoch batch `seq` was written with: the last round that started at or
    /// before it (a later round rewrites the batches an earlier one lost).
    fn epoch_of(&self, seq: u64) -> i32 {
        (self.round_starts.partition_point(|&s| s <= seq) - 1) as i32
    }
}

#[derive(Default)]
struct Stats {
    acked_appends: u64,
    unacked_batches_kept: u64,
    bytes_truncated: u64,
    segments_discarded: u64,
}

/// What the check found besides the batches (which it adds to the history).
struct Found {
    log_end_offset: u64,
    segments: usize,
    report: RecoveryReport,
}

/// Opens (recovers) the log and checks it against everything acknowledged so far and
/// everything found before; adds the batches found since to `history`; then closes the log
/// cleanly or just drops it.
fn check_log(
    dir: &Path,
    history: &mut History,
    rng: &mut Rng,
    close_cleanly: bool,
) -> Result<Found, String> {
    let log = Log::open(dir, config()).map_err(|e| format!("recovery failed: {e}"))?;
    let report = log.recovery_report();
    let log_end = log.log_end_offset();
    if log.log_start_offset() != 0 {
        return Err(format!(
            "log start offset is {}, expected 0 (nothing is deleted here)",
            log.log_start_offset()
        ));
    }

    // Walk the whole log: whole batches, contiguous offsets, each exactly as the child wrote
    // batch number `seq` (acknowledged or not). Batches new since the last check are also
    // compared record by record, for a readable difference.
    let known = history.batches.len();
    let mut seq = 0usize;
    let mut next_offset = 0u64;
    let mut buf = Vec::new();
    while next_offset < log_end {
        let info = log
            .read_into(next_offset, 256 << 10, ReadBound::LogEnd, &mut buf)
            .map_err(|e| format!("read at offset {next_offset}: {e}"))?;
        if info.bytes == 0 {
            return Err(format!(
                "a read at offset {next_offset} returned nothing below the log end {log_end}"
            ));
        }
        let mut batches = Batches::new(&buf);
        for b in batches.by_ref() {
            let at = format!("batch {seq} (at offset {next_offset})");
            let b = b.map_err(|e| format!("{at}: {e}"))?;
            b.validate().map_err(|e| format!("{at} is invalid: {e}"))?;
            let base = b.header().base_offset as u64;
            if base != next_offset {
                return Err(format!(
                    "{at} has base offset {base}: offsets must be contiguous from 0"
                ));
            }
            if seq >= known {
                let expected = stored_batch(seq as u64, base, history.epoch_of(seq as u64));
                let expected_records = decode(&expected);
                if let Some(diff) = first_difference(&decode(b.as_bytes()), &expected_records) {
                    return Err(format!("{at} differs from what the child wrote: {diff}"));
                }
                history.batches.push(expected);
                history.base_offsets.push(base);
                history
                    .record_times
                    .extend(expected_records.iter().map(|r| (r.timestamp, r.offset)));
            }
            let expected = &history.batches[seq];
            if b.as_bytes() != expected.as_slice() {
                let i = b
                    .as_bytes()
                    .iter()
                    .zip(expected)
                    .position(|(x, y)| x != y)
                    .unwrap_or(expected.len().min(b.as_bytes().len()));
                let diff = first_difference(&decode(b.as_bytes()), &decode(expected))
                    .unwrap_or_else(|| "the records are the same".into());
                return Err(format!(
                    "{at} differs from what the child wrote at byte {i} ({} bytes, expected \
                     {}): {diff}",
                    b.as_bytes().len(),
                    expected.len()
                ));
            }
            next_offset = b.header().next_offset() as u64;
            seq += 1;
        }
        if !batches.remainder().is_empty() {
            return Err(format!(
                "a read at offset {} returned {} bytes after its last whole batch",
                info.first_batch_offset.unwrap_or(next_offset),
                batches.remainder().len()
            ));
        }
        if info.next_offset != next_offset {
            return Err(format!(
                "a read says it ends at offset {}, its batches end at {next_offset}",
                info.next_offset
            ));
        }
    }
    if next_offset != log_end {
        return Err(format!(
            "the batches end at offset {next_offset}, the log end offset is {log_end}"
        ));
    }

    // Everything acknowledged, and everything an earlier check found, is there at the offsets
    // the appends returned.
    let present = seq as u64;
    let must_have = history.acked_batches().max(known as u64);
    if present < must_have {
        let lost_from = history
            .acks
            .iter()
            .find(|a| a.seq + a.batches > present)
            .map_or(String::new(), |a| {
                format!(
                    " (the first lost append, {a:?}, was acknowledged at offsets {}..={})",
                    a.first_offset, a.last_offset
                )
            });
        return Err(format!(
            "acknowledged data lost: the log holds batches 0..{present} (end offset \
             {log_end}), but batches 0..{must_have} were acknowledged or found by an earlier \
             recovery{lost_from}; recovery {report:?}"
        ));
    }
    for ack in &history.acks {
        let first = history.base_offsets[ack.seq as usize];
        let end = history
            .base_offsets
            .get((ack.seq + ack.batches) as usize)
            .map_or(log_end, |&b| b);
        if (first, end) != (ack.first_offset, ack.last_offset + 1) {
            return Err(format!(
                "acknowledged append {ack:?} is at offsets {first}..{end} instead"
            ));
        }
    }

    // After recovery everything is durable and visible.
    if log.durable_offset() != log_end || log.high_watermark() != log_end {
        return Err(format!(
            "after recovery: durable offset {}, high watermark {}, log end {log_end}",
            log.durable_offset(),
            log.high_watermark()
        ));
    }

    // The rebuilt indexes find offsets and timestamps.
    for _ in 0..LOOKUPS_PER_ROUND {
        let offset = rng.below(log_end);
        let i = history.base_offsets.partition_point(|&base| base <= offset) - 1;
        let (bytes, info) = log
            .read(offset, 1, ReadBound::LogEnd)
            .map_err(|e| format!("read at offset {offset}: {e}"))?;
        let (base, expected) = (history.base_offsets[i], &history.batches[i]);
        if info.first_batch_offset != Some(base) || &bytes != expected {
            return Err(format!(
                "a read at offset {offset} returned the batch at {:?} ({} bytes) instead of \
                 batch {i} at {base} ({} bytes)",
                info.first_batch_offset,
                bytes.len(),
                expected.len()
            ));
        }
    }
    let times = &history.record_times;
    let last_timestamp = times.last().expect("at least one batch").0;
    let span = (last_timestamp - BASE_TIMESTAMP_MS) as u64 + 20;
    for _ in 0..LOOKUPS_PER_ROUND {
        let ts = BASE_TIMESTAMP_MS - 10 + rng.below(span) as i64;
        let expected = times
            .get(times.partition_point(|&(t, _)| t < ts))
            .map(|&(_, offset)| offset);
        let got = log
            .offset_for_timestamp(ts, ReadBound::LogEnd)
            .map_err(|e| format!("offset for timestamp {ts}: {e}"))?;
        if got != expected {
            return Err(format!(
                "offset for timestamp {ts} is {got:?}, expected {expected:?}"
            ));
        }
    }

    let found = Found {
        log_end_offset: log_end,
        segments: log.segments().len(),
        report,
    };
    if close_cleanly {
        log.close().map_err(|e| format!("close: {e}"))?;
    } else {
        drop(log);
    }
    Ok(found)
}

/// Where two record lists first differ, in words; `None` if equal.
fn first_difference(actual: &[Rec], expected: &[Rec]) -> Option<String> {
    let short = |v: &Option<Vec<u8>>| match v {
        None => "null".to_string(),
        Some(b) => format!("{} bytes {:02x?}", b.len(), &b[..b.len().min(12)]),
    };
    for (a, e) in actual.iter().zip(expected) {
        if a == e {
            continue;
        }
        let what = if a.offset != e.offset {
            format!("offset {} instead of {}", a.offset, e.offset)
        } else if a.timestamp != e.timestamp {
            format!("timestamp {} instead of {}", a.timestamp, e.timestamp)
        } else if a.key != e.key {
            format!("key {} instead of {}", short(&a.key), short(&e.key))
        } else if a.value != e.value {
            format!("value {} instead of {}", short(&a.value), short(&e.value))
        } else {
            format!("headers {:?} instead of {:?}", a.headers, e.headers)
        };
        return Some(format!("record at offset {}: {what}", e.offset));
    }
    (actual.len() != expected.len())
        .then(|| format!("{} records instead of {}", actual.len(), expected.len()))
}
