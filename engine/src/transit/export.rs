//! `export/:type/:name(/:version)`: key material in Vault's encodings. Private material
//! leaves only for keys created (or configured) `exportable`; public keys always may.

use std::collections::BTreeMap;

use ::rsa::pkcs1::EncodeRsaPrivateKey;
use ::rsa::pkcs8::{EncodePrivateKey, LineEnding};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::{TransitError, TransitResult};
use super::key_policy::{Key, Version};
use super::material::{Material, SecretBytes};
use crate::crypto::rsa;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    EncryptionKey,
    SigningKey,
    HmacKey,
    PublicKey,
}

impl ExportType {
    pub fn parse(s: &str) -> TransitResult<ExportType> {
        match s {
            "encryption-key" => Ok(ExportType::EncryptionKey),
            "signing-key" => Ok(ExportType::SigningKey),
            "hmac-key" => Ok(ExportType::HmacKey),
            "public-key" => Ok(ExportType::PublicKey),
            other => Err(TransitError::invalid(format!(
                "invalid export type: {other}"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ExportType::EncryptionKey => "encryption-key",
            ExportType::SigningKey => "signing-key",
            ExportType::HmacKey => "hmac-key",
            ExportType::PublicKey => "public-key",
        }
    }
}

/// `format`: the default differs per key type as in Vault (PKCS#1 for RSA private keys,
/// SEC 1 for EC private keys, raw base64 for symmetric and Ed25519 keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Default,
    Raw,
    Der,
    Pem,
}

impl ExportFormat {
    pub fn parse(s: &str) -> TransitResult<ExportFormat> {
        match s {
            "" => Ok(ExportFormat::Default),
            "raw" => Ok(ExportFormat::Raw),
            "der" => Ok(ExportFormat::Der),
            "pem" => Ok(ExportFormat::Pem),
            other => Err(TransitError::invalid(format!("invalid format: {other}"))),
        }
    }
}

/// How a PEM answer ends. Vault's exports keep the final newline for RSA keys and drop
/// it for EC and Ed25519 keys; clients compare the strings, so each follows Vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PemEnd {
    Newline,
    Trimmed,
}

fn pem(label: &str, der: &[u8], end: PemEnd) -> TransitResult<Zeroizing<String>> {
    let s = crate::crypto::pem(label, der).map_err(TransitError::internal)?;
    let s = Zeroizing::new(s);
    Ok(match end {
        PemEnd::Newline => s,
        PemEnd::Trimmed => Zeroizing::new(s.trim_end().to_string()),
    })
}

fn b64(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(bytes))
}

impl Key {
    /// The requested material of every held version (`version` None), the latest
    /// (`"latest"`) or one version (`"3"` or `"v3"`).
    pub fn export(
        &self,
        what: ExportType,
        format: ExportFormat,
        version: Option<&str>,
    ) -> TransitResult<BTreeMap<u32, Zeroizing<String>>> {
        let kind = self.config.kind;
        if !self.config.exportable && what != ExportType::PublicKey {
            return Err(TransitError::invalid(
                "private key material is not exportable",
            ));
        }
        match what {
            ExportType::EncryptionKey if !kind.supports_encryption() => {
                return Err(TransitError::invalid(
                    "encryption not supported for the key",
                ))
            }
            ExportType::SigningKey if !kind.supports_signing() => {
                return Err(TransitError::invalid("signing not supported for the key"))
            }
            _ => {}
        }
        let mut out = BTreeMap::new();
        match version.filter(|v| !v.is_empty()) {
            None => {
                for v in self.versions() {
                    out.insert(v.number, self.export_version(v, what, format)?);
                }
            }
            Some(sel) => {
                let n = if sel == "latest" {
                    self.config.latest_version
                } else {
                    sel.trim_start_matches('v')
                        .parse::<u32>()
                        .map_err(|_| TransitError::invalid("invalid key version"))?
                };
                if n < self.config.min_decryption_version {
                    return Err(TransitError::invalid(
                        "version for export is below minimum decryption version",
                    ));
                }
                let v = self.version(n).ok_or_else(|| {
                    TransitError::invalid("version does not exist or cannot be found")
                })?;
                out.insert(n, self.export_version(v, what, format)?);
            }
        }
        Ok(out)
    }

    fn export_version(
        &self,
        v: &Version,
        what: ExportType,
        format: ExportFormat,
    ) -> TransitResult<Zeroizing<String>> {
        use ExportFormat::*;
        let kind = self.config.kind;
        let unsupported = || {
            TransitError::invalid(format!(
                "unsupported format for a {} of a {kind} key",
                what.as_str()
            ))
        };
        match (what, &v.material) {
            (ExportType::HmacKey, m) => {
                if matches!(format, Der | Pem) {
                    return Err(TransitError::invalid(
                        "unknown format for HMAC key; supported values are `` or `raw`",
                    ));
                }
                let key: &SecretBytes = if matches!(m, Material::Hmac) {
                    &v.secret
                } else {
                    &v.hmac_key
                };
                Ok(b64(key.as_slice()))
            }
            (ExportType::EncryptionKey, Material::Aead(_)) => match format {
                Default | Raw => Ok(b64(v.secret.as_slice())),
                _ => Err(unsupported()),
            },
            (ExportType::EncryptionKey | ExportType::SigningKey, Material::Rsa(k)) => {
                match format {
                    Default => k
                        .private
                        .to_pkcs1_pem(LineEnding::LF)
                        .map(|s| Zeroizing::new(s.to_string()))
                        .map_err(TransitError::internal),
                    Der => Ok(b64(&k.to_pkcs8_der().map_err(TransitError::internal)?)),
                    Pem => pem(
                        "PRIVATE KEY",
                        &k.to_pkcs8_der().map_err(TransitError::internal)?,
                        PemEnd::Newline,
                    ),
                    Raw => Err(unsupported()),
                }
            }
            (ExportType::SigningKey, Material::Ec(k)) => match format {
                Default => Ok(Zeroizing::new(k.private_sec1_pem()?.trim_end().to_string())),
                Der => Ok(b64(&k.private_pkcs8_der()?)),
                Pem => pem("PRIVATE KEY", &k.private_pkcs8_der()?, PemEnd::Trimmed),
                Raw => Err(unsupported()),
            },
            (ExportType::SigningKey, Material::Ed25519(k)) => match format {
                Default | Raw => Ok(b64(&k.go_private_bytes())),
                Der | Pem => {
                    let der = k.signing.to_pkcs8_der().map_err(TransitError::internal)?;
                    if format == Der {
                        Ok(b64(der.as_bytes()))
                    } else {
                        pem("PRIVATE KEY", der.as_bytes(), PemEnd::Trimmed)
                    }
                }
            },
            (ExportType::PublicKey, Material::Rsa(k)) => {
                let der = rsa::public_to_der(&k.public).map_err(TransitError::internal)?;
                match format {
                    Default | Pem => pem("PUBLIC KEY", &der, PemEnd::Newline),
                    Der => Ok(b64(&der)),
                    Raw => Err(unsupported()),
                }
            }
            (ExportType::PublicKey, Material::Ec(k)) => match format {
                Default | Pem => pem("PUBLIC KEY", &k.public_key().to_der()?, PemEnd::Trimmed),
                Der => Ok(b64(&k.public_key().to_der()?)),
                Raw => Err(unsupported()),
            },
            (ExportType::PublicKey, Material::Ed25519(k)) => {
                let vk = k.signing.verifying_key();
                match format {
                    Default | Raw => Ok(b64(vk.as_bytes())),
                    Der | Pem => {
                        let der = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_der(&vk)
                            .map_err(TransitError::internal)?;
                        if format == Der {
                            Ok(b64(der.as_bytes()))
                        } else {
                            pem("PUBLIC KEY", der.as_bytes(), PemEnd::Trimmed)
                        }
                    }
                }
            }
            _ => Err(TransitError::invalid(format!(
                "unknown key type {kind} for export type {}",
                what.as_str()
            ))),
        }
    }
}
