//! Where block records could live: the same zstd-3 records of 64 KiB blocks
//! stored in four layouts, then read at random with a cold page cache
//! (issue 14, "reads of less than a block ... measure each choice").
//!
//! ```text
//! cargo run --release --example block_layouts -- DIR [MIB] [READS] [ROUNDS]
//! ```
//!
//! DIR must be on the disk under test and is emptied first; reads drop the
//! page cache (`/proc/sys/vm/drop_caches`, so run it as root). The blocks
//! are text from `../shared/training` (public training text, not an
//! evaluation corpus), repeated up to MIB (default 256).
//!
//! Layouts:
//! - `inline`: today's `blocks` table (a rowid table keyed by `(ino, idx)`
//!   with the record inline, spilling into overflow pages) in a WAL
//!   database with 4 KiB pages;
//! - `inline-norowid`: the same table `WITHOUT ROWID`;
//! - `data-db`: records in a second SQLite file with 64 KiB pages and a
//!   rollback journal, keyed by a block id; `(ino, idx) -> id` in the WAL
//!   database, committed after the data;
//! - `segments`: records appended to one data file (`pwrite`, `fdatasync`),
//!   `(ino, idx) -> (offset, len)` in the WAL database, committed after
//!   the data.
//!
//! Writes go in transactions of 32 MiB of blocks, as a write-back does;
//! "durable" ends with the last commit on stable storage (WAL commit with
//! `synchronous=FULL`; data file or data database synced first), and
//! "checkpointed" also includes copying the WAL into the database, which
//! the volume does later on a thread of its own. Reads: READS (default
//! 2000) random whole records, and as many random 8 KiB ranges of records
//! (incremental blob I/O for SQLite, `pread` for segments), each with its
//! bytes read from the disk (`/proc/self/io`) per read.
//!
//! Prints one JSON object per layout and round.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{params, Connection, ToSql, MAIN_DB};
use serde::Serialize;

const BLOCK: usize = 65536;
const BATCH_BYTES: usize = 32 << 20;
const RANGE: usize = 8192;

#[derive(Clone, Copy, Debug)]
enum Layout {
    Inline,
    InlineNoRowid,
    DataDb,
    Segments,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Inline => "inline",
            Layout::InlineNoRowid => "inline-norowid",
            Layout::DataDb => "data-db",
            Layout::Segments => "segments",
        }
    }
}

#[derive(Serialize)]
struct Figures {
    layout: &'static str,
    round: usize,
    raw_mib: f64,
    stored_mib: f64,
    /// Raw bytes per second until the last commit is durable.
    durable_mb_s: f64,
    /// The same, including the WAL checkpoint.
    checkpointed_mb_s: f64,
    /// CPU seconds of this process for the writes and the checkpoint.
    write_cpu_s: f64,
    /// Bytes this process wrote to the disk per raw byte.
    write_amplification: f64,
    /// Files on disk after the checkpoint, per stored byte.
    space_amplification: f64,
    cold_record_reads_s: f64,
    cold_record_disk_kib_per_read: f64,
    cold_range_reads_s: f64,
    cold_range_disk_kib_per_read: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        return Err("usage: block_layouts DIR [MIB] [READS] [ROUNDS]".into());
    };
    let mib: usize = args.get(1).map_or(Ok(256), |s| s.parse())?;
    let reads: usize = args.get(2).map_or(Ok(2000), |s| s.parse())?;
    let rounds: usize = args.get(3).map_or(Ok(2), |s| s.parse())?;
    if mib == 0 || reads == 0 {
        return Err("MIB and READS must be at least 1".into());
    }
    let records = records(mib)?;
    let layouts = [
        Layout::Inline,
        Layout::InlineNoRowid,
        Layout::DataDb,
        Layout::Segments,
    ];
    for round in 1..=rounds {
        for &layout in &layouts {
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir)?;
            let f = measure(layout, round, &dir, &records, reads)?;
            println!("{}", serde_json::to_string(&f)?);
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// zstd-3 records of 64 KiB blocks of training text.
fn records(mib: usize) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/training/en_gutenberg");
    let mut text = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(&root)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        if name.is_file() {
            File::open(&name)?.read_to_end(&mut text)?;
        }
        if text.len() >= 64 << 20 {
            break;
        }
    }
    if text.len() < BLOCK {
        return Err(format!("{} holds less than a block of text", root.display()).into());
    }
    let blocks = mib * 1024 * 1024 / BLOCK;
    let mut out = Vec::with_capacity(blocks);
    for i in 0..blocks {
        let start = (i * BLOCK) % (text.len() - BLOCK + 1);
        out.push(zstd::bulk::compress(&text[start..start + BLOCK], 3)?);
    }
    Ok(out)
}

fn wal_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "cache_size", -16384)?;
    Ok(conn)
}

fn data_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", 65536)?;
    conn.query_row("PRAGMA journal_mode=TRUNCATE", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS data (id INTEGER PRIMARY KEY, record BLOB NOT NULL)",
    )?;
    Ok(conn)
}

fn measure(
    layout: Layout,
    round: usize,
    dir: &Path,
    records: &[Vec<u8>],
    reads: usize,
) -> Result<Figures, Box<dyn std::error::Error>> {
    let meta_path = dir.join("store.db");
    let raw = (records.len() * BLOCK) as f64;
    let stored: usize = records.iter().map(Vec::len).sum();
    let io0 = io_bytes()?;
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    {
        let mut meta = wal_db(&meta_path)?;
        let mut data = match layout {
            Layout::DataDb => Some(data_db(&dir.join("data.db"))?),
            _ => None,
        };
        let segment = match layout {
            Layout::Segments => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(dir.join("data.seg"))?,
            ),
            _ => None,
        };
        // The record inline, or where it lies outside.
        let (last_column, without_rowid) = match layout {
            Layout::Inline => ("record BLOB", ""),
            Layout::InlineNoRowid => ("record BLOB", ", WITHOUT ROWID"),
            Layout::DataDb | Layout::Segments => ("at INTEGER", ", WITHOUT ROWID"),
        };
        meta.execute_batch(&format!(
            "CREATE TABLE blocks (ino INTEGER NOT NULL, idx INTEGER NOT NULL, codec INTEGER NOT NULL, \
             raw_len INTEGER NOT NULL, stored_len INTEGER NOT NULL, {last_column} NOT NULL, \
             PRIMARY KEY (ino, idx)) STRICT{without_rowid}"
        ))?;
        let mut offset = 0u64;
        let per_batch = BATCH_BYTES / BLOCK;
        let batches: Vec<&[Vec<u8>]> = records.chunks(per_batch).collect();
        for (b, batch) in batches.iter().enumerate() {
            let last = b + 1 == batches.len();
            let first_idx = (b * per_batch) as i64;
            // The data first, durable before the rows that point at it.
            let mut ats = Vec::with_capacity(batch.len());
            if let Some(data) = data.as_mut() {
                let tx = data.transaction()?;
                {
                    let mut ins = tx.prepare_cached("INSERT INTO data (record) VALUES (?1)")?;
                    for r in batch.iter() {
                        ins.execute(params![r])?;
                        ats.push(tx.last_insert_rowid());
                    }
                }
                tx.commit()?;
            }
            if let Some(seg) = segment.as_ref() {
                let mut buf = Vec::with_capacity(batch.iter().map(Vec::len).sum());
                for r in batch.iter() {
                    ats.push((offset + buf.len() as u64) as i64);
                    buf.extend_from_slice(r);
                }
                seg.write_all_at(&buf, offset)?;
                offset += buf.len() as u64;
                seg.sync_data()?;
            }
            if last {
                meta.pragma_update(None, "synchronous", "FULL")?;
            }
            let tx = meta.transaction()?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT INTO blocks VALUES (1, ?1, 1, 65536, ?2, ?3)")?;
                for (i, r) in batch.iter().enumerate() {
                    let last: &dyn ToSql = match layout {
                        Layout::Inline | Layout::InlineNoRowid => r,
                        Layout::DataDb | Layout::Segments => &ats[i],
                    };
                    ins.execute(params![first_idx + i as i64, r.len() as i64, last])?;
                }
            }
            tx.commit()?;
        }
    }
    let durable = t0.elapsed().as_secs_f64();
    {
        let meta = wal_db(&meta_path)?;
        meta.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let checkpointed = t0.elapsed().as_secs_f64();
    let write_cpu = cpu_s() - cpu0;
    let written = io_bytes()?.1 - io0.1;
    let on_disk: u64 = fs::read_dir(dir)?
        .map(|e| e.and_then(|e| e.metadata()).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let picks: Vec<usize> = (0..reads).map(|_| next(records.len())).collect();
    let (rec_s, rec_kib) = cold_reads(layout, dir, &picks, records, false, &mut next)?;
    let (range_s, range_kib) = cold_reads(layout, dir, &picks, records, true, &mut next)?;
    Ok(Figures {
        layout: layout.name(),
        round,
        raw_mib: raw / 1048576.0,
        stored_mib: stored as f64 / 1048576.0,
        durable_mb_s: raw / 1e6 / durable,
        checkpointed_mb_s: raw / 1e6 / checkpointed,
        write_cpu_s: write_cpu,
        write_amplification: written as f64 / raw,
        space_amplification: on_disk as f64 / stored as f64,
        cold_record_reads_s: reads as f64 / rec_s,
        cold_record_disk_kib_per_read: rec_kib,
        cold_range_reads_s: reads as f64 / range_s,
        cold_range_disk_kib_per_read: range_kib,
    })
}

/// Reads `picks` (whole records, or an 8 KiB range of each at a random
/// offset) after dropping the page cache; returns the seconds taken and
/// the KiB read from the disk per read, checking every byte.
fn cold_reads(
    layout: Layout,
    dir: &Path,
    picks: &[usize],
    records: &[Vec<u8>],
    ranges: bool,
    next: &mut impl FnMut(usize) -> usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let meta = Connection::open(dir.join("store.db"))?;
    let data = match layout {
        Layout::DataDb => Some(Connection::open(dir.join("data.db"))?),
        _ => None,
    };
    let segment = match layout {
        Layout::Segments => Some(File::open(dir.join("data.seg"))?),
        _ => None,
    };
    drop_caches()?;
    let io0 = io_bytes()?.0;
    let t0 = Instant::now();
    for &i in picks {
        let want = &records[i];
        let (start, len) = if ranges {
            let len = RANGE.min(want.len());
            (next(want.len() - len + 1), len)
        } else {
            (0, want.len())
        };
        let got: Vec<u8> = match layout {
            Layout::Inline if ranges => {
                let rowid: i64 = meta
                    .prepare_cached("SELECT rowid FROM blocks WHERE ino = 1 AND idx = ?1")?
                    .query_row([i as i64], |r| r.get(0))?;
                blob_range(&meta, "blocks", "record", rowid, start, len)?
            }
            // A WITHOUT ROWID table has no incremental blob I/O: the
            // range costs the whole record.
            Layout::Inline | Layout::InlineNoRowid => meta
                .prepare_cached(
                    "SELECT substr(record, ?2, ?3) FROM blocks WHERE ino = 1 AND idx = ?1",
                )?
                .query_row(params![i as i64, start as i64 + 1, len as i64], |r| {
                    r.get(0)
                })?,
            Layout::DataDb => {
                let id: i64 = meta
                    .prepare_cached("SELECT at FROM blocks WHERE ino = 1 AND idx = ?1")?
                    .query_row([i as i64], |r| r.get(0))?;
                let data = data.as_ref().expect("data database");
                if ranges {
                    blob_range(data, "data", "record", id, start, len)?
                } else {
                    data.prepare_cached("SELECT record FROM data WHERE id = ?1")?
                        .query_row([id], |r| r.get(0))?
                }
            }
            Layout::Segments => {
                let at: i64 = meta
                    .prepare_cached("SELECT at FROM blocks WHERE ino = 1 AND idx = ?1")?
                    .query_row([i as i64], |r| r.get(0))?;
                let mut buf = vec![0u8; len];
                segment
                    .as_ref()
                    .expect("segment file")
                    .read_exact_at(&mut buf, at as u64 + start as u64)?;
                buf
            }
        };
        if got[..] != want[start..start + len] {
            return Err(format!("{}: record {i} read back wrong", layout.name()).into());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let kib = (io_bytes()?.0 - io0) as f64 / 1024.0 / picks.len() as f64;
    Ok((secs, kib))
}

/// Bytes `start..start + len` of a blob through SQLite's incremental blob
/// I/O, which reads only the pages holding them (after walking the
/// overflow chain up to them).
fn blob_range(
    conn: &Connection,
    table: &str,
    column: &str,
    rowid: i64,
    start: usize,
    len: usize,
) -> rusqlite::Result<Vec<u8>> {
    let blob = conn.blob_open(MAIN_DB, table, column, rowid, true)?;
    let mut buf = vec![0u8; len];
    blob.read_at_exact(&mut buf, start)?;
    Ok(buf)
}

/// (read_bytes, write_bytes) of this process from `/proc/self/io`.
fn io_bytes() -> std::io::Result<(u64, u64)> {
    let text = fs::read_to_string("/proc/self/io")?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("read_bytes:"), field("write_bytes:")))
}

fn cpu_s() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn drop_caches() -> std::io::Result<()> {
    // SAFETY: sync takes no arguments.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot drop the page cache (run as root): {e}"),
        )
    })
}
