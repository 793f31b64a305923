//! `hmac` and HMAC `verify` on a loaded key. Every version of every key type carries an
//! HMAC key (for `hmac` keys it is the key itself), as in Vault.

use hmac::{Hmac, Mac};

use super::decode_base64;
use super::encryption::format_versioned;
use super::error::{TransitError, TransitResult};
use super::hash::{with_digest, HashAlgorithm};
use super::key_policy::{Key, Version};
use super::keytype::KeyType;

fn unsupported(algo: HashAlgorithm) -> TransitError {
    TransitError::invalid(format!("unsupported algorithm \"{}\"", algo.as_str()))
}

fn mac_key(v: &Version, kind: KeyType) -> &[u8] {
    if kind == KeyType::Hmac {
        v.secret.as_slice()
    } else {
        v.hmac_key.as_slice()
    }
}

fn compute(key: &[u8], algo: HashAlgorithm, input: &[u8]) -> TransitResult<Vec<u8>> {
    with_digest!(algo, D => {
        let mut mac = <Hmac<D> as Mac>::new_from_slice(key).map_err(TransitError::internal)?;
        mac.update(input);
        Ok(mac.finalize().into_bytes().to_vec())
    }, none => Err(unsupported(algo)))
}

fn verify(key: &[u8], algo: HashAlgorithm, input: &[u8], tag: &[u8]) -> TransitResult<bool> {
    with_digest!(algo, D => {
        let mut mac = <Hmac<D> as Mac>::new_from_slice(key).map_err(TransitError::internal)?;
        mac.update(input);
        Ok(mac.verify_slice(tag).is_ok())
    }, none => Err(unsupported(algo)))
}

impl Key {
    /// The version an HMAC is made with (0: the latest), with Vault's checks.
    pub fn hmac_version(&self, version: i64) -> TransitResult<&Version> {
        let latest = i64::from(self.config.latest_version);
        let n = match version {
            0 => latest,
            v if v < 0 => {
                return Err(TransitError::invalid(
                    "key version does not exist (cannot be negative)",
                ))
            }
            v if v > latest => {
                return Err(TransitError::invalid(format!(
                    "key version does not exist; latest key version is {latest}"
                )))
            }
            v if v != latest
                && self.config.min_encryption_version > 0
                && v < i64::from(self.config.min_encryption_version) =>
            {
                return Err(TransitError::invalid(
                    "cannot generate HMAC: version is too old (disallowed by policy)",
                ))
            }
            v => v,
        };
        u32::try_from(n)
            .ok()
            .and_then(|n| self.version(n))
            .map(|v| v.as_ref())
            .ok_or_else(|| TransitError::invalid("no such key version"))
    }

    /// `vault:v<N>:<base64 HMAC>` of `input` under `version` (0: the latest).
    pub fn hmac(
        &self,
        version: i64,
        algo: HashAlgorithm,
        input: &[u8],
    ) -> TransitResult<(String, u32)> {
        let v = self.hmac_version(version)?;
        let tag = compute(mac_key(v, self.config.kind), algo, input)?;
        Ok((format_versioned(v.number, &tag), v.number))
    }

    /// Checks a `vault:v<N>:` HMAC in constant time.
    pub fn verify_hmac(
        &self,
        algo: HashAlgorithm,
        input: &[u8],
        hmac: &str,
    ) -> TransitResult<bool> {
        let rest = hmac
            .strip_prefix("vault:v")
            .ok_or_else(|| TransitError::invalid("invalid HMAC to verify: no prefix"))?;
        let (version, encoded) = rest
            .split_once(':')
            .ok_or_else(|| TransitError::invalid("invalid HMAC: wrong number of fields"))?;
        let version: u32 = version.parse().map_err(|_| {
            TransitError::invalid("invalid HMAC: version number could not be decoded")
        })?;
        let tag = decode_base64(encoded).map_err(|e| {
            TransitError::invalid(format!(
                "unable to decode verification HMAC as base64: {}",
                super::base64_error(&e)
            ))
        })?;
        if version > self.config.latest_version {
            return Err(TransitError::invalid("invalid HMAC: version is too new"));
        }
        if self.config.min_decryption_version > 0 && version < self.config.min_decryption_version {
            return Err(TransitError::invalid(
                "cannot verify HMAC: version is too old (disallowed by policy)",
            ));
        }
        let v = self
            .version(version)
            .ok_or_else(|| TransitError::invalid("no such key version"))?;
        verify(mac_key(v, self.config.kind), algo, input, &tag)
    }
}
