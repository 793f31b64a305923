//! What a managed key is: its algorithm, usage, versions and their states, as stored
//! under the barrier (`keys/meta/<id>`). The key material of each version is stored apart
//! (`keys/material/<id>/<version>`) so that destruction removes exactly it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::KeyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "RSA_3072")]
    Rsa3072,
    #[serde(rename = "RSA_4096")]
    Rsa4096,
    #[serde(rename = "EC_P256")]
    EcP256,
    #[serde(rename = "EC_P384")]
    EcP384,
    #[serde(rename = "AES_256")]
    Aes256,
    #[serde(rename = "ML_DSA_65")]
    MlDsa65,
    #[serde(rename = "ML_KEM_768")]
    MlKem768,
}

pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::Rsa2048,
    Algorithm::Rsa3072,
    Algorithm::Rsa4096,
    Algorithm::EcP256,
    Algorithm::EcP384,
    Algorithm::Aes256,
    Algorithm::MlDsa65,
    Algorithm::MlKem768,
];

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa2048 => "RSA_2048",
            Algorithm::Rsa3072 => "RSA_3072",
            Algorithm::Rsa4096 => "RSA_4096",
            Algorithm::EcP256 => "EC_P256",
            Algorithm::EcP384 => "EC_P384",
            Algorithm::Aes256 => "AES_256",
            Algorithm::MlDsa65 => "ML_DSA_65",
            Algorithm::MlKem768 => "ML_KEM_768",
        }
    }

    pub fn parse(s: &str) -> Result<Self, KeyError> {
        ALGORITHMS
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                KeyError::invalid(
                    "UNKNOWN_ALGORITHM",
                    format!(
                        "unknown algorithm {s:?}: use one of {}",
                        ALGORITHMS
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    /// The usages the algorithm allows; the first is the default.
    pub fn usages(self) -> &'static [Usage] {
        match self {
            Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
                &[Usage::SignVerify, Usage::EncryptDecrypt]
            }
            Algorithm::EcP256 | Algorithm::EcP384 | Algorithm::MlDsa65 => &[Usage::SignVerify],
            Algorithm::Aes256 | Algorithm::MlKem768 => &[Usage::EncryptDecrypt],
        }
    }

    pub fn is_asymmetric(self) -> bool {
        !matches!(self, Algorithm::Aes256)
    }

    pub fn is_post_quantum(self) -> bool {
        matches!(self, Algorithm::MlDsa65 | Algorithm::MlKem768)
    }

    /// What the hardware boundary calls this key type, where it can hold it.
    pub fn spec(self) -> Option<hsm_bridge::KeySpec> {
        use hsm_bridge::KeySpec;
        Some(match self {
            Algorithm::Rsa2048 => KeySpec::Rsa(2048),
            Algorithm::Rsa3072 => KeySpec::Rsa(3072),
            Algorithm::Rsa4096 => KeySpec::Rsa(4096),
            Algorithm::EcP256 => KeySpec::EcP256,
            Algorithm::EcP384 => KeySpec::EcP384,
            Algorithm::Aes256 => KeySpec::Aes256,
            Algorithm::MlDsa65 | Algorithm::MlKem768 => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Usage {
    SignVerify,
    EncryptDecrypt,
}

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::SignVerify => "SIGN_VERIFY",
            Usage::EncryptDecrypt => "ENCRYPT_DECRYPT",
        }
    }

    pub fn parse(s: &str) -> Result<Self, KeyError> {
        match s {
            "SIGN_VERIFY" => Ok(Usage::SignVerify),
            "ENCRYPT_DECRYPT" => Ok(Usage::EncryptDecrypt),
            _ => Err(KeyError::invalid(
                "INVALID_USAGE",
                format!("unknown usage {s:?}: use SIGN_VERIFY or ENCRYPT_DECRYPT"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyState {
    Enabled,
    PendingDestruction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    Enabled,
    Disabled,
}

/// Where a version's private or secret material lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protection {
    /// Generated inside the HSM; stored only wrapped by the HSM root key.
    Hsm,
    /// Generated in (locked) memory; stored under the barrier.
    Software,
}

/// Where a version's material came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Origin {
    /// Generated by the appliance; versions stored before origins were recorded are.
    #[default]
    Generated,
    /// A secret brought in from outside (unwrapped or decapsulated): it existed in the
    /// clear somewhere else, so it is neither always sensitive nor never extractable.
    Imported,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersion {
    pub version: u32,
    pub state: VersionState,
    #[serde(with = "time::serde::rfc3339")]
    pub create_time: OffsetDateTime,
    pub protection: Protection,
    #[serde(default)]
    pub origin: Origin,
    /// RSA/EC: DER SubjectPublicKeyInfo; ML-DSA/ML-KEM: the encoded public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedKey {
    pub id: uuid::Uuid,
    pub name: String,
    pub algorithm: Algorithm,
    pub usage: Usage,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub create_time: OffsetDateTime,
    pub state: KeyState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub destroy_time: Option<OffsetDateTime>,
    pub primary_version: u32,
    pub versions: Vec<KeyVersion>,
    /// Set at creation only: whether the key may be exported to a cloud provider. Keys
    /// stored before the flag existed are not.
    #[serde(default)]
    pub exportable: bool,
    /// Set at creation only, for exportable AES-256 keys: the material may leave the
    /// boundary unwrapped, protected by TLS alone (a provider whose import takes it so).
    #[serde(default)]
    pub allow_unwrapped_export: bool,
}

impl ManagedKey {
    pub fn version(&self, v: u32) -> Result<&KeyVersion, KeyError> {
        self.versions
            .iter()
            .find(|k| k.version == v)
            .ok_or(KeyError::VersionNotFound {
                key: self.name.clone(),
                version: v,
            })
    }

    pub fn version_mut(&mut self, v: u32) -> Result<&mut KeyVersion, KeyError> {
        let name = self.name.clone();
        self.versions
            .iter_mut()
            .find(|k| k.version == v)
            .ok_or(KeyError::VersionNotFound {
                key: name,
                version: v,
            })
    }

    pub fn primary(&self) -> Result<&KeyVersion, KeyError> {
        self.version(self.primary_version)
    }
}

/// A version's secret material as stored: software keys in the clear under the barrier,
/// HSM keys as the blob the HSM wrapped under its root key.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StoredMaterial {
    /// "software" or "hsm".
    pub kind: String,
    /// Base64 of the material (software) or of the wrapped blob (hsm).
    pub material: String,
}

/// `create` parameters, parsed.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub name: String,
    pub algorithm: Algorithm,
    pub usage: Option<Usage>,
    pub labels: BTreeMap<String, String>,
    pub exportable: bool,
    pub allow_unwrapped_export: bool,
}

/// `list` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListKeys {
    pub page_size: usize,
    pub page_token: Option<String>,
    pub name_prefix: Option<String>,
    pub algorithm: Option<Algorithm>,
    pub state: Option<KeyState>,
    /// A label the key must carry: `(name, value)`.
    pub label: Option<(String, String)>,
}

pub struct KeyPage {
    pub keys: Vec<ManagedKey>,
    pub next_page_token: Option<String>,
}
