//! The cm codec (context mixing without a model) end to end: every corpus
//! file and adversarial inputs through the codec and through `llmfs
//! compress --codec cm` / `decompress`; a volume whose blocks are swapped
//! to cm records records the feature, reads back exactly through a real
//! mount, lists its cm blocks in `stats`, and fscks clean.

use std::path::{Path, PathBuf};

use llmfs::codec::{CmCodec, Codec, CodecId, CodecSet};
use llmfs::store::{Durability, Feature};

const CORPORA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpora");

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(Path::new(CORPORA), &mut v);
    v.sort();
    v
}

fn adversarial() -> Vec<(&'static str, Vec<u8>)> {
    let n = crate::common::noise(30_000, 11);
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![0x41]),
        ("zeros", vec![0; 200_000]),
        ("ones", vec![0xFF; 70_000]),
        (
            "alternating",
            (0..100_000)
                .map(|i| if i % 2 == 0 { 0 } else { 0xFF })
                .collect(),
        ),
        (
            "long repeats",
            [n.clone(), n.clone(), n.clone(), n].concat(),
        ),
        ("noise", crate::common::noise(150_000, 3)),
        ("text", crate::common::text(150_000, 7)),
    ]
}

/// Every file of the corpora, cut into 64 KiB blocks, through the codec.
#[test]
fn corpus_blocks_round_trip_through_the_codec() {
    let files = corpus_files();
    if files.is_empty() {
        eprintln!("skipped: no corpora at {CORPORA}");
        return;
    }
    let set = CodecSet::default();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        // The first and the last block of each file (the whole 108 MB
        // would take many minutes in a debug build): the start of every
        // kind of data, and a short tail block.
        let blocks: Vec<&[u8]> = data.chunks(65536).collect();
        let ends = [blocks.first(), blocks.last().filter(|_| blocks.len() > 1)];
        for b in ends.into_iter().flatten() {
            let rec = set.encode_block_with(CodecId::Cm, b).unwrap();
            let back = set.decode_block(&rec, 65536).unwrap();
            assert!(back == *b, "{}", f.display());
        }
    }
}

#[test]
fn adversarial_inputs_round_trip_through_the_codec() {
    for (name, data) in adversarial() {
        for b in data.chunks(65536).chain(data.is_empty().then_some(&[][..])) {
            let mut p = Vec::new();
            CmCodec.encode(b, &mut p).unwrap();
            let mut out = Vec::new();
            CmCodec.decode(&p, b.len(), &mut out).unwrap();
            assert!(out == b, "{name}");
        }
    }
}

fn compress_cli(input: &Path, packed: &Path, back: &Path) -> serde_json::Value {
    let (ok, out) = crate::common::run([
        "compress".as_ref(),
        "--json".as_ref(),
        "--codec".as_ref(),
        "cm".as_ref(),
        input.as_os_str(),
        packed.as_os_str(),
    ]);
    assert!(ok, "{out}");
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let (ok, out) =
        crate::common::run(["decompress".as_ref(), packed.as_os_str(), back.as_os_str()]);
    assert!(ok, "{out}");
    summary
}

/// `llmfs compress --codec cm` stores every block as cm (no model needed)
/// and `decompress` gives the input back, for text, the adversarial inputs
/// and the small corpus files.
#[test]
fn compress_cli_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(String, Vec<u8>)> = adversarial()
        .into_iter()
        .map(|(n, d)| (n.replace(' ', "_"), d))
        .collect();
    for f in corpus_files() {
        let len = std::fs::metadata(&f).unwrap().len();
        if len <= 200_000 {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            inputs.push((name, std::fs::read(&f).unwrap()));
        }
    }
    for (name, data) in inputs {
        let input = t.path().join(&name);
        std::fs::write(&input, &data).unwrap();
        let packed = t.path().join(format!("{name}.llmfs"));
        let back = t.path().join(format!("{name}.back"));
        let summary = compress_cli(&input, &packed, &back);
        assert!(std::fs::read(&back).unwrap() == data, "{name}");
        let blocks = data.len().div_ceil(65536) as u64;
        assert_eq!(summary["codecs"]["cm"]["blocks"], blocks, "{name}");
        if name == "text" {
            let bpb = summary["bits_per_byte"].as_f64().unwrap();
            assert!(bpb < 1.0, "{name}: {bpb}");
        }
    }
}

/// A volume's blocks swapped to cm records (through the store API, as the
/// archiver swaps): the volume records the features `cm` and `cm-v3` (the
/// payload version this build writes) and schema version 10, a real mount reads the file back exactly, `stats` lists the cm
/// blocks, and fsck decodes them clean.
#[test]
fn volume_with_cm_records_mounts_reads_and_fscks() {
    if crate::common::skip_without_fuse() {
        return;
    }
    let data = crate::common::text(5 * 65536 + 1234, 3);
    let mut m = crate::common::Mounted::new(&[]);
    std::fs::write(m.path("notes.txt"), &data).unwrap();
    m.unmount();

    let set = CodecSet::default();
    {
        let store = crate::common::open_store(&m.store, 65536);
        let infos = store.read(|x| x.block_infos(None)).unwrap();
        let mut swapped = 0;
        for info in infos {
            let old = store
                .read(|x| x.block(info.ino, info.idx))
                .unwrap()
                .unwrap();
            let raw = set.decode_block(&old, 65536).unwrap();
            let rec = set.encode_block_with(CodecId::Cm, &raw).unwrap();
            let done = store
                .write(Durability::Durable, |x| {
                    x.swap_archived_block(
                        info.ino,
                        info.idx,
                        &old,
                        Some((CodecId::Cm as u8, &rec)),
                        llmfs::store::ArchiveTier::Archive,
                    )
                })
                .unwrap();
            assert!(done);
            swapped += 1;
        }
        assert_eq!(swapped, 6);
        let features = store.read(|x| x.features()).unwrap();
        assert!(features.contains(Feature::Cm) && features.contains(Feature::CmV3));
    }
    let version: u32 = rusqlite::Connection::open(m.store.join(llmfs::store::DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 10);
    let stats = crate::common::stats_json(&m.store);
    assert_eq!(crate::common::codec_blocks(&stats, "cm"), 6);

    m.mount(&[]);
    assert!(std::fs::read(m.path("notes.txt")).unwrap() == data);
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}
