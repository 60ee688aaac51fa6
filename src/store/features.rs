//! The volume's feature set: the kinds of record a reader must be able to
//! decode to read this volume, beyond what its tables need.
//!
//! A feature is recorded (the `volume` row `features`, names joined by
//! commas) in the same transaction as the first record that needs it, and
//! the schema version is raised in that transaction to the version that
//! llmfs builds predating the feature refuse. A volume that never stored
//! such a record stays readable by those builds. docs/FORMAT.md, "Schema and
//! versions", is the specification.

use crate::codec::CodecId;

/// The `volume` key holding the feature set.
pub const FEATURES_KEY: &str = "features";

/// One feature a volume's records may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Block records with codec 3 (LZMA2).
    Lzma,
    /// llm records of an integer model (payload versions 3 and 4,
    /// `llmfs-int8-v1`: docs/INTEGER_MODEL.md).
    PortableLlm,
    /// Block records with codec 4 (cm, context mixing without a model).
    Cm,
    /// cm records primed with a volume dictionary (payload flag 1), which
    /// only a reader of the `dictionaries` table can decode.
    CmDictionary,
    /// Block records with codec 5 (media: raw images and PCM audio).
    Media,
    /// cm records of payload version 2 (docs/CM.md).
    CmV2,
    /// media records of payload version 2 (docs/FORMAT.md, "media
    /// payload").
    MediaV2,
    /// cm records of payload version 3 (docs/CM.md).
    CmV3,
    /// media records of payload version 3 (audio: docs/FORMAT.md, "media
    /// payload", "Version 3").
    MediaV3,
    /// llm records of payload version 5 (an integer model's, with a
    /// checksum per wave: docs/FORMAT.md, "llm payload").
    LlmV5,
    /// llm records of payload version 6 (version 5 primed with a volume
    /// dictionary), which only a reader of the `dictionaries` table that
    /// primes llm blocks can decode.
    LlmDictionary,
    /// Block records kept in segment files beside the database (their
    /// rows name an extent; docs/FORMAT.md, "Segment files").
    Segments,
}

impl Feature {
    pub const ALL: [Feature; 12] = [
        Feature::Lzma,
        Feature::PortableLlm,
        Feature::Cm,
        Feature::CmDictionary,
        Feature::Media,
        Feature::CmV2,
        Feature::MediaV2,
        Feature::CmV3,
        Feature::MediaV3,
        Feature::LlmV5,
        Feature::LlmDictionary,
        Feature::Segments,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Lzma => "lzma",
            Feature::PortableLlm => "llm-int8-v1",
            Feature::Cm => "cm",
            Feature::CmDictionary => "cm-dictionary",
            Feature::Media => "media",
            Feature::CmV2 => "cm-v2",
            Feature::MediaV2 => "media-v2",
            Feature::CmV3 => "cm-v3",
            Feature::MediaV3 => "media-v3",
            Feature::LlmV5 => "llm-v5",
            Feature::LlmDictionary => "llm-dictionary",
            Feature::Segments => "segments",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The schema version a store carries once it holds this feature:
    /// llmfs builds older than the feature know only lower versions, and
    /// refuse the store instead of failing reads of its records.
    pub fn schema_version(self) -> u32 {
        match self {
            Feature::Lzma => 3,
            Feature::PortableLlm => 4,
            Feature::Cm => 5,
            Feature::CmDictionary => 6,
            Feature::Media => 7,
            Feature::CmV2 => 8,
            Feature::MediaV2 => 9,
            Feature::CmV3 => 10,
            Feature::MediaV3 => 11,
            Feature::LlmV5 => 12,
            Feature::LlmDictionary => 13,
            Feature::Segments => 14,
        }
    }

    /// The features `record` (of `codec`) needs: its codec's; for an llm
    /// record an integer model's payload version (and version 5's own);
    /// for a cm record its
    /// payload version past 1, and if primed the dictionaries too; for a
    /// media record its payload version past 1.
    pub fn of_record(codec: u8, record: &[u8]) -> Vec<Feature> {
        let payload = record.get(crate::codec::RECORD_HEADER_LEN..).unwrap_or(&[]);
        if codec == CodecId::Llm as u8 {
            let mut out = Vec::new();
            if crate::codec::payload_portable(payload) == Some(true) {
                out.push(Feature::PortableLlm);
            }
            match crate::codec::llm::payload_version(payload) {
                Some(crate::codec::llm::PAYLOAD_MIXED_CHECKED) => out.push(Feature::LlmV5),
                Some(crate::codec::llm::PAYLOAD_MIXED_PRIMED) => out.push(Feature::LlmDictionary),
                _ => {}
            }
            return out;
        }
        let mut out: Vec<Feature> = Feature::of_codec(codec).into_iter().collect();
        if codec == CodecId::Cm as u8 {
            if crate::codec::cm::payload_primed(payload) {
                out.push(Feature::CmDictionary);
            }
            match crate::codec::cm::payload_version(payload) {
                Some(2) => out.push(Feature::CmV2),
                Some(3) => out.push(Feature::CmV3),
                _ => {}
            }
        }
        if codec == CodecId::Media as u8 {
            match crate::codec::media::payload_version(payload) {
                Some(2) => out.push(Feature::MediaV2),
                Some(3) => out.push(Feature::MediaV3),
                _ => {}
            }
        }
        out
    }

    /// The feature a record of `codec` needs, if any, whatever its payload.
    pub fn of_codec(codec: u8) -> Option<Feature> {
        match CodecId::from_u8(codec)? {
            CodecId::Lzma => Some(Feature::Lzma),
            CodecId::Cm => Some(Feature::Cm),
            CodecId::Media => Some(Feature::Media),
            CodecId::Raw | CodecId::Zstd | CodecId::Llm => None,
        }
    }
}

/// The features a volume has recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureSet(Vec<Feature>);

impl FeatureSet {
    pub fn contains(&self, f: Feature) -> bool {
        self.0.contains(&f)
    }

    pub fn insert(&mut self, f: Feature) {
        if !self.contains(f) {
            self.0.push(f);
            self.0.sort();
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Feature> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the stored text; `Err` holds the names this build does not
    /// know.
    pub fn parse(text: &str) -> Result<FeatureSet, Vec<String>> {
        let mut set = FeatureSet::default();
        let mut unknown = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match Feature::from_name(name) {
                Some(f) => set.insert(f),
                None => unknown.push(name.to_string()),
            }
        }
        if unknown.is_empty() {
            Ok(set)
        } else {
            Err(unknown)
        }
    }

    /// The stored text.
    pub fn to_text(&self) -> String {
        self.0
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The schema version a store with these features must carry (at
    /// least `tables`, the version of its tables).
    pub fn schema_version(&self, tables: u32) -> u32 {
        self.iter()
            .map(Feature::schema_version)
            .fold(tables, u32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s = FeatureSet::parse(" lzma,,lzma ").unwrap();
        assert!(s.contains(Feature::Lzma));
        assert_eq!(s.to_text(), "lzma");
        assert_eq!(FeatureSet::parse("").unwrap(), FeatureSet::default());
        assert_eq!(
            FeatureSet::parse("lzma,zpaq,x").unwrap_err(),
            vec!["zpaq".to_string(), "x".to_string()]
        );
        assert_eq!(s.schema_version(2), 3);
        assert_eq!(FeatureSet::default().schema_version(2), 2);
    }

    #[test]
    fn codecs_needing_a_feature() {
        assert_eq!(Feature::of_codec(CodecId::Lzma as u8), Some(Feature::Lzma));
        assert_eq!(Feature::of_codec(CodecId::Cm as u8), Some(Feature::Cm));
        assert_eq!(
            FeatureSet::parse("cm,lzma").unwrap().schema_version(2),
            5,
            "a cm volume is closed to builds before cm"
        );
        for c in [CodecId::Raw, CodecId::Zstd, CodecId::Llm] {
            assert_eq!(Feature::of_codec(c as u8), None);
        }
        assert_eq!(Feature::of_codec(200), None);
    }

    #[test]
    fn cm_payload_versions() {
        let raw = b"a line of a log\n".repeat(100);
        let record = crate::codec::encode_record(&crate::codec::CmCodec, &raw).unwrap();
        let cm = CodecId::Cm as u8;
        assert_eq!(
            Feature::of_record(cm, &record),
            vec![Feature::Cm, Feature::CmV3]
        );
        let mut older = record.clone();
        for (v, f) in [(1, None), (2, Some(Feature::CmV2))] {
            older[crate::codec::RECORD_HEADER_LEN] = v;
            let want: Vec<Feature> = [Feature::Cm].into_iter().chain(f).collect();
            assert_eq!(Feature::of_record(cm, &older), want);
        }
        assert_eq!(FeatureSet::parse("cm,cm-v3").unwrap().schema_version(2), 10);
        assert_eq!(
            FeatureSet::parse("cm,cm-v2,media-v2")
                .unwrap()
                .schema_version(2),
            9
        );
    }

    #[test]
    fn llm_payload_versions() {
        use crate::codec::llm::{
            PAYLOAD_MIXED_CHECKED, PAYLOAD_MIXED_PORTABLE, PAYLOAD_MIXED_PRIMED,
        };
        let llm = CodecId::Llm as u8;
        let mut record = vec![0u8; crate::codec::RECORD_HEADER_LEN + 53];
        let at = crate::codec::RECORD_HEADER_LEN;
        for (v, want) in [
            (1, vec![]),
            (2, vec![]),
            (3, vec![Feature::PortableLlm]),
            (PAYLOAD_MIXED_PORTABLE, vec![Feature::PortableLlm]),
            (
                PAYLOAD_MIXED_CHECKED,
                vec![Feature::PortableLlm, Feature::LlmV5],
            ),
            (
                PAYLOAD_MIXED_PRIMED,
                vec![Feature::PortableLlm, Feature::LlmDictionary],
            ),
            (7, vec![]),
        ] {
            record[at] = v;
            assert_eq!(Feature::of_record(llm, &record), want, "version {v}");
        }
        assert_eq!(
            FeatureSet::parse("llm-int8-v1,llm-v5")
                .unwrap()
                .schema_version(2),
            12
        );
        assert_eq!(
            FeatureSet::parse("llm-int8-v1,llm-v5,llm-dictionary")
                .unwrap()
                .schema_version(2),
            13
        );
    }

    #[test]
    fn media_payload_versions() {
        let raw = crate::codec::media::tests::wav(2000, 1, 16, 1);
        let record = crate::codec::encode_record(&crate::codec::MediaCodec, &raw).unwrap();
        assert_eq!(
            Feature::of_record(CodecId::Media as u8, &record),
            vec![Feature::Media, Feature::MediaV3]
        );
        let mut older = record.clone();
        for (v, f) in [(1, None), (2, Some(Feature::MediaV2))] {
            older[crate::codec::RECORD_HEADER_LEN] = v;
            let want: Vec<Feature> = [Feature::Media].into_iter().chain(f).collect();
            assert_eq!(Feature::of_record(CodecId::Media as u8, &older), want);
        }
        // Images are still written in version 2.
        let image = crate::codec::media::tests::pnm(64, 48, 3, 2);
        let record = crate::codec::encode_record(&crate::codec::MediaCodec, &image).unwrap();
        assert_eq!(
            Feature::of_record(CodecId::Media as u8, &record),
            vec![Feature::Media, Feature::MediaV2]
        );
        assert_eq!(
            FeatureSet::parse("media,media-v2,media-v3")
                .unwrap()
                .schema_version(2),
            11
        );
        assert_eq!(
            FeatureSet::parse("media,media-v2")
                .unwrap()
                .schema_version(2),
            9
        );
    }
}
