//! `sluice-log-dump`: prints a partition log directory — segments, batches, offsets,
//! timestamps, index entries — without opening it for writing (safe on a live broker's data).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sluice_record::{Batch, BatchHeader, HEADER_LEN};

const USAGE: &str = "\
sluice-log-dump: print the segments and batches of one partition's log directory

USAGE:
    sluice-log-dump [OPTIONS] <DIR>

OPTIONS:
    --records     also print every record (offset, timestamp, key, value size, headers)
    --indexes     also print the offset and time index entries
    --json        one JSON object per line instead of text
    -h, --help    this help

Every batch is checked (header, CRC, record structure); a bad one is reported with its file
and byte position and the dump goes on with the next segment. The exit status is 1 when
anything was corrupt.

EXAMPLE:
    sluice-log-dump ./data/topics/orders-0 --records | less
";

struct Options {
    dir: PathBuf,
    records: bool,
    indexes: bool,
    json: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut dir = None;
    let (mut records, mut indexes, mut json) = (false, false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--records" => records = true,
            "--indexes" => indexes = true,
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                if dir.replace(PathBuf::from(s)).is_some() {
                    return Err("give exactly one directory".into());
                }
            }
        }
    }
    let dir = dir.ok_or("missing <DIR>")?;
    Ok(Options {
        dir,
        records,
        indexes,
        json,
    })
}

fn display_bytes(b: Option<&[u8]>) -> String {
    match b {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 64 => format!("{s:?}"),
            _ => format!("<{} bytes>", b.len()),
        },
    }
}

fn segment_bases(dir: &Path, ext: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(ext)
            && stem.len() == 20
            && let Ok(base) = stem.parse::<u64>()
        {
            out.push((base, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn dump_index(out: &mut impl Write, opts: &Options, base: u64, dir: &Path) -> io::Result<()> {
    let mut idx = Vec::new();
    let path = dir.join(format!("{base:020}.index"));
    if File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut idx))
        .is_ok()
    {
        for e in idx.chunks_exact(8) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if opts.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"index": path, "offset": base + rel as u64, "position": pos})
                )?;
            } else {
                writeln!(out, "  index offset={} position={pos}", base + rel as u64)?;
            }
        }
    }
    let mut tidx = Vec::new();
    let path = dir.join(format!("{base:020}.timeindex"));
    if File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut tidx))
        .is_ok()
    {
        for e in tidx.chunks_exact(12) {
            let ts = i64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
            let rel = u32::from_be_bytes(e[8..].try_into().expect("4 bytes"));
            if opts.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"timeindex": path, "timestamp": ts, "offset": base + rel as u64})
                )?;
            } else {
                writeln!(
                    out,
                    "  timeindex timestamp={ts} offset={}",
                    base + rel as u64
                )?;
            }
        }
    }
    Ok(())
}

/// Dumps one segment; returns whether it was all sound.
fn dump_segment(out: &mut impl Write, opts: &Options, base: u64, path: &Path) -> io::Result<bool> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    if opts.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"segment": path, "base_offset": base, "bytes": data.len()})
        )?;
    } else {
        writeln!(
            out,
            "segment {} base_offset={base} bytes={}",
            path.display(),
            data.len()
        )?;
    }
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        let checked = BatchHeader::parse(rest)
            .and_then(|_| Batch::new(rest))
            .and_then(|b| b.validate().map(|()| b));
        let batch = match checked {
            Ok(b) => b,
            Err(e) => {
                let reason = if rest.len() < HEADER_LEN {
                    format!("{} trailing bytes: {e}", rest.len())
                } else {
                    e.to_string()
                };
                if opts.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"corrupt": path, "position": pos, "reason": reason})
                    )?;
                } else {
                    writeln!(out, "  CORRUPT at position {pos}: {reason}")?;
                }
                return Ok(false);
            }
        };
        let h = batch.header();
        if opts.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                "batch": {"position": pos, "base_offset": h.base_offset, "last_offset": h.last_offset(),
                "records": h.record_count, "bytes": h.total_len(), "base_timestamp": h.base_timestamp,
                "max_timestamp": h.max_timestamp, "leader_epoch": h.partition_leader_epoch,
                "compression": h.compression(), "producer_id": h.producer_id, "crc": h.crc}})
            )?;
        } else {
            writeln!(
                out,
                "  batch position={pos} offsets={}..={} records={} bytes={} max_timestamp={} leader_epoch={} compression={} crc={:#010x}",
                h.base_offset,
                h.last_offset(),
                h.record_count,
                h.total_len(),
                h.max_timestamp,
                h.partition_leader_epoch,
                h.compression(),
                h.crc
            )?;
        }
        if opts.records
            && let Ok(records) = batch.records()
        {
            for r in records.flatten() {
                let headers: Vec<String> = r
                    .headers()
                    .flatten()
                    .map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), display_bytes(v)))
                    .collect();
                if opts.json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"record": {
                        "offset": r.offset(h.base_offset), "timestamp": r.timestamp(h.base_timestamp),
                        "key": r.key.map(String::from_utf8_lossy), "value_bytes": r.value.map(<[u8]>::len),
                        "headers": headers}})
                    )?;
                } else {
                    writeln!(
                        out,
                        "    offset={} timestamp={} key={} value={} headers=[{}]",
                        r.offset(h.base_offset),
                        r.timestamp(h.base_timestamp),
                        display_bytes(r.key),
                        display_bytes(r.value),
                        headers.join(", ")
                    )?;
                }
            }
        }
        pos += h.total_len();
    }
    Ok(true)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let segments = match segment_bases(&opts.dir, ".log") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot list {}: {e}", opts.dir.display());
            return ExitCode::from(2);
        }
    };
    if segments.is_empty() {
        eprintln!(
            "error: no segment files (<20-digit base offset>.log) in {}; is this a partition directory?",
            opts.dir.display()
        );
        return ExitCode::from(2);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut sound = true;
    for (base, path) in &segments {
        match dump_segment(&mut out, &opts, *base, path) {
            Ok(ok) => sound &= ok,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: reading {}: {e}", path.display());
                sound = false;
            }
        }
        if opts.indexes && dump_index(&mut out, &opts, *base, &opts.dir).is_err() {
            sound = false;
        }
    }
    let _ = out.flush();
    if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
