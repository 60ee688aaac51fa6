//! `llmfs stats` and `llmfs fsck`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::mountinfo::store_of_mountpoint;
use crate::codec::CodecId;
use crate::store::{OpenOptions, Store};

/// A path names a store directory, or the mountpoint of a mounted volume.
fn store_dir(path: &Path) -> PathBuf {
    store_of_mountpoint(path).unwrap_or_else(|| path.to_path_buf())
}

fn open_read_only(path: &Path) -> Result<Store, String> {
    let dir = store_dir(path);
    Store::open(
        &dir,
        &OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        },
    )
    .map_err(|e| e.to_string())
}

fn ratio(logical: u64, stored: u64) -> f64 {
    if stored == 0 {
        0.0
    } else {
        logical as f64 / stored as f64
    }
}

pub fn stats(path: &Path, json: bool) -> Result<ExitCode, String> {
    let store = open_read_only(path)?;
    let t = store.read(|m| m.totals()).map_err(|e| e.to_string())?;
    let name = |c: u8| CodecId::from_u8(c).map_or("unknown", |c| c.name());
    if json {
        let codecs: Vec<String> = t
            .per_codec
            .iter()
            .map(|(c, n, raw, stored)| {
                format!(
                    "{{\"codec\":\"{}\",\"blocks\":{n},\"raw_bytes\":{raw},\"stored_bytes\":{stored}}}",
                    name(*c)
                )
            })
            .collect();
        println!(
            "{{\"store\":{:?},\"block_size\":{},\"files\":{},\"directories\":{},\"other_inodes\":{},\
             \"logical_bytes\":{},\"stored_bytes\":{},\"ratio\":{:.4},\"codecs\":[{}]}}",
            store.dir().display().to_string(),
            store.block_size(),
            t.files,
            t.directories,
            t.other_inodes,
            t.logical_bytes,
            t.stored_bytes,
            ratio(t.logical_bytes, t.stored_bytes),
            codecs.join(",")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("store          {}", store.dir().display());
    println!("block size     {}", store.block_size());
    println!("files          {}", t.files);
    println!("directories    {}", t.directories);
    println!("other inodes   {}", t.other_inodes);
    println!("logical bytes  {}", t.logical_bytes);
    println!("stored bytes   {}", t.stored_bytes);
    println!(
        "ratio          {:.3}",
        ratio(t.logical_bytes, t.stored_bytes)
    );
    println!();
    println!(
        "{:<8} {:>10} {:>16} {:>16} {:>7}",
        "codec", "blocks", "raw bytes", "stored bytes", "ratio"
    );
    for (c, n, raw, stored) in &t.per_codec {
        println!(
            "{:<8} {:>10} {:>16} {:>16} {:>7.3}",
            name(*c),
            n,
            raw,
            stored,
            ratio(*raw, *stored)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fsck(path: &Path) -> Result<ExitCode, String> {
    let store = open_read_only(path)?;
    let report = crate::fsck::check(&store, |_, _| {}).map_err(|e| e.to_string())?;
    println!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
