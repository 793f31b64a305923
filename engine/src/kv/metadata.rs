use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::DEFAULT_MAX_VERSIONS;

/// The mount-wide settings of `<mount>/config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvConfig {
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; 0 keeps versions forever.
    pub delete_version_after: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionMeta {
    #[serde(with = "time::serde::rfc3339")]
    pub created_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deletion_time: Option<OffsetDateTime>,
    pub destroyed: bool,
}

impl VersionMeta {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        !self.destroyed && self.deletion_time.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMetadata {
    #[serde(with = "time::serde::rfc3339")]
    pub created_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_time: OffsetDateTime,
    pub current_version: u64,
    pub oldest_version: u64,
    pub max_versions: u64,
    pub cas_required: bool,
    pub delete_version_after: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMetadata {
    pub fn new(now: OffsetDateTime) -> Self {
        KeyMetadata {
            created_time: now,
            updated_time: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: None,
            versions: BTreeMap::new(),
        }
    }

    pub fn latest_live(&self, now: OffsetDateTime) -> Option<u64> {
        self.versions
            .iter()
            .rev()
            .find(|(_, v)| v.is_live(now))
            .map(|(n, _)| *n)
    }

    pub fn effective_max_versions(&self, config: &KvConfig) -> u64 {
        [self.max_versions, config.max_versions]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS)
    }
}

/// The fields `metadata/<path>` accepts; None leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MetadataUpdate {
    pub max_versions: Option<u64>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<u64>,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

impl MetadataUpdate {
    pub(super) fn apply(self, meta: &mut KeyMetadata, now: OffsetDateTime) {
        if let Some(m) = self.max_versions {
            meta.max_versions = m;
        }
        if let Some(c) = self.cas_required {
            meta.cas_required = c;
        }
        if let Some(d) = self.delete_version_after {
            meta.delete_version_after = d;
        }
        if let Some(c) = self.custom_metadata {
            meta.custom_metadata = Some(c);
        }
        meta.updated_time = now;
    }
}
