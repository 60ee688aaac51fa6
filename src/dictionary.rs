//! The volume dictionary: a sample of the volume's own cold data that
//! primes every cm block the archiver writes (docs/DESIGN.md, "Volume
//! dictionary").
//!
//! Independent 64 KiB blocks lose what repeats across blocks and files: a
//! log's line templates, a format's headers. The archiver builds one
//! dictionary per volume, once enough cold data is waiting (so the sample is
//! representative and its cost is spread), from chunks of blocks spread over
//! that data; stores it durably, by SHA-256, before any block refers to it;
//! and from then on primes cm with it. Every block still decodes on its own
//! (with the dictionary, which the volume keeps as long as it keeps blocks
//! naming it).

use std::sync::Arc;

use crate::codec::cm::{digest_from_hex, Dictionaries, StoredDictionary};
use crate::codec::{record_codec, CodecId, CodecSet};
use crate::error::{Error, Result};
use crate::store::{ArchiveTier, DictionaryRow, Durability, Store};

/// Volume setting naming (SHA-256, hex) the dictionary new cm blocks are
/// primed with.
pub const DICTIONARY_SETTING: &str = "cm_dictionary_sha256";
/// Bytes of a dictionary at most: priming costs a pass over them once per
/// process, each block a copy of the primed tables. On the held-out logs a
/// volume dictionary of 256 KiB stores 0.90x of one of 64 KiB, dictionary
/// included (bench/results/2026-12-02-dictionary-logs.tsv).
pub const DICTIONARY_LEN: usize = 256 * 1024;
/// Bytes taken from each sampled block: enough for whole records of long
/// lines (JSON logs of 5 KB a line). On the held-out logs, chunks of 8 KiB
/// store 151744 bytes with cm payload version 3, against 155547 with 4 KiB
/// and 153761 with 16 KiB (fewer blocks sampled) (examples/dict_logs.rs).
const CHUNK: usize = 8192;
/// Cold blocks waiting before a dictionary is built: with less, the
/// dictionary would cost about what it saves.
pub const MIN_BLOCKS: usize = 16;
/// How many waiting blocks the sample is spread over, at most.
const SCAN: usize = 4096;

/// Loads every dictionary the volume stores, the current one named.
pub fn load(store: &Store) -> Result<Arc<Dictionaries>> {
    let dicts = Dictionaries::new();
    refresh(store, &dicts)?;
    Ok(Arc::new(dicts))
}

/// Adds to `dicts` every dictionary the volume stores that it lacks, and
/// names the volume's current one: another process (an archive worker
/// beside a mount) may have stored one since `dicts` was loaded.
pub fn refresh(store: &Store, dicts: &Dictionaries) -> Result<()> {
    let (stored, current) = store
        .read(|m| Ok::<_, Error>((m.dictionaries()?, m.volume_setting(DICTIONARY_SETTING)?)))?;
    for row in stored {
        match digest_from_hex(&row.sha256) {
            Some(digest) => dicts.insert(StoredDictionary {
                digest,
                raw_len: row.raw_len as usize,
                payload: row.payload,
            }),
            None => log::error!(
                "the volume stores a dictionary under a bad name {:?}",
                row.sha256
            ),
        }
    }
    dicts.set_current(current.as_deref().and_then(digest_from_hex));
    Ok(())
}

/// Builds the volume's dictionary if it has none, `codecs` code with
/// dictionaries, and at least [`MIN_BLOCKS`] blocks wait for `tier` (written
/// before `written_before`). Returns the new dictionary's SHA-256 (hex).
pub fn build_if_due(
    store: &Store,
    codecs: &CodecSet,
    tier: ArchiveTier,
    written_before: i64,
) -> Result<Option<String>> {
    let Some(dicts) = codecs.dictionaries() else {
        return Ok(None);
    };
    if dicts.current().is_some() {
        return Ok(None);
    }
    let waiting =
        store.read(|m| Ok::<_, Error>(m.blocks_to_archive(tier, written_before, SCAN)?))?;
    if waiting.len() < MIN_BLOCKS {
        return Ok(None);
    }
    let mut blocks = Vec::new();
    for i in sampled(waiting.len()) {
        let (ino, idx) = waiting[i];
        let Some(record) = store.read(|m| Ok::<_, Error>(m.block(ino, idx)?))? else {
            continue;
        };
        // Raw records are incompressible data: nothing to learn from.
        if record_codec(&record) == Some(CodecId::Raw) {
            continue;
        }
        match codecs.decode_block(&record, store.block_size()) {
            Ok(raw) => blocks.push(raw),
            Err(e) => log::warn!("dictionary sample: inode {ino} block {idx}: {e}"),
        }
    }
    let sample = sample_from(blocks.iter().map(Vec::as_slice));
    if sample.len() < DICTIONARY_LEN / 4 {
        return Ok(None);
    }
    let stored = StoredDictionary::of(&sample);
    let sha = crate::model::hex(&stored.digest);
    let built_elsewhere = store.write(Durability::Durable, |m| {
        // An archive worker on another machine may have built one
        // meanwhile: then the volume keeps that one.
        m.lock_volume_settings()?;
        if let Some(other) = m.volume_setting(DICTIONARY_SETTING)? {
            return Ok::<_, Error>(Some(other));
        }
        m.put_dictionary(&DictionaryRow {
            sha256: sha.clone(),
            raw_len: stored.raw_len as u64,
            payload: stored.payload.clone(),
        })?;
        m.set_volume_setting(DICTIONARY_SETTING, &sha)?;
        Ok(None)
    })?;
    if let Some(other) = built_elsewhere {
        log::info!("another archiver built the volume's dictionary {other}: using it");
        refresh(store, dicts)?;
        return Ok(None);
    }
    let digest = stored.digest;
    log::info!(
        "the volume now primes cm and llm blocks with dictionary {sha} ({} bytes, stored in {})",
        stored.raw_len,
        stored.payload.len()
    );
    dicts.insert(stored);
    dicts.set_current(Some(digest));
    Ok(Some(sha))
}

/// The indexes of the waiting blocks (of `waiting`) the sample is taken
/// from: spread evenly, one chunk each.
fn sampled(waiting: usize) -> impl Iterator<Item = usize> {
    let chunks = (DICTIONARY_LEN / CHUNK).min(waiting);
    (0..chunks).map(move |i| i * waiting / chunks)
}

/// The dictionary's bytes from the sampled blocks' contents.
fn sample_from<'a>(blocks: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut sample = Vec::with_capacity(DICTIONARY_LEN);
    for raw in blocks {
        sample.extend_from_slice(chunk_of(raw));
    }
    sample
}

/// The dictionary of a file of `blocks` blocks (`llmfs compress`), built
/// as the archiver builds a volume's: a chunk of each of up to 32 blocks
/// spread over the file, `block(i)` reading block `i`. `None` when the
/// file has fewer than [`MIN_BLOCKS`] blocks or the sample is under a
/// quarter of [`DICTIONARY_LEN`] (it would cost about what it saves).
pub fn sample_file<E>(
    blocks: usize,
    mut block: impl FnMut(usize) -> std::result::Result<Vec<u8>, E>,
) -> std::result::Result<Option<Vec<u8>>, E> {
    if blocks < MIN_BLOCKS {
        return Ok(None);
    }
    let mut sample = Vec::with_capacity(DICTIONARY_LEN);
    for i in sampled(blocks) {
        sample.extend_from_slice(chunk_of(&block(i)?));
    }
    Ok((sample.len() >= DICTIONARY_LEN / 4).then_some(sample))
}

/// The dictionary the archiver would build from these waiting blocks (in
/// archive order, none raw): for measuring without a volume
/// (examples/dict_logs.rs).
pub fn sample_of(waiting: &[&[u8]]) -> Vec<u8> {
    sample_from(sampled(waiting.len()).map(|i| waiting[i]))
}

/// Up to [`CHUNK`] bytes from the middle of a block, starting after a line
/// break when one is near (whole lines teach templates best).
fn chunk_of(raw: &[u8]) -> &[u8] {
    let start = raw.len().saturating_sub(CHUNK) / 2;
    let start = raw[start..]
        .iter()
        .take(256)
        .position(|&b| b == b'\n')
        .map_or(start, |p| start + p + 1);
    &raw[start..(start + CHUNK).min(raw.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_after_a_line_break_when_one_is_near() {
        let len = CHUNK + 6000;
        let mid = 3000;
        let mut raw = vec![b'a'; len];
        raw[mid + 100] = b'\n';
        let c = chunk_of(&raw);
        assert_eq!(c.len(), CHUNK);
        assert_eq!(c.as_ptr() as usize - raw.as_ptr() as usize, mid + 101);
        let flat = vec![b'b'; len];
        assert_eq!(
            chunk_of(&flat).as_ptr() as usize - flat.as_ptr() as usize,
            mid
        );
        assert_eq!(chunk_of(b"short"), b"short");
    }
}
