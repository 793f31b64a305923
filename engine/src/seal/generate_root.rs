//! `sys/generate-root`: a new root token from a quorum of unseal keys (Shamir) or
//! recovery keys (hardware seal), in Vault's OTP flow. The token is handed out XORed with
//! a one-time password the operator holds (`encoded_token`, base64 without padding), so
//! whoever sees the answer without the OTP learns nothing.

use base64::Engine;
use hsm_bridge::{RootOfTrust, SealKind, ShamirRoot, UnsealShare};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::core::Core;
use crate::error::{EngineError, Result};

/// Length of the OTP and of the root tokens generate-root makes: "s." and 24 base62.
pub const OTP_LENGTH: usize = 26;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) struct Attempt {
    nonce: String,
    otp: Zeroizing<String>,
    /// Shown once, in the answer to the call that started the attempt.
    generated_otp: bool,
    shares: Vec<UnsealShare>,
}

/// What `sys/generate-root/attempt` and `update` answer, in Vault's field names.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GenerateRootStatus {
    pub started: bool,
    pub nonce: String,
    pub progress: usize,
    pub required: u8,
    pub complete: bool,
    pub encoded_token: String,
    pub encoded_root_token: String,
    pub pgp_fingerprint: String,
    pub otp: String,
    pub otp_length: usize,
}

fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut buf = [0u8; 32];
        hsm_bridge::fill_random(&mut buf);
        for b in buf {
            // 248 = 4 * 62: reject the top values so every character is equally likely.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

fn xor_encode(token: &str, otp: &str) -> Result<String> {
    if token.len() != otp.len() {
        return Err(EngineError::Internal(
            "root token and OTP lengths differ".into(),
        ));
    }
    let mixed: Zeroizing<Vec<u8>> =
        Zeroizing::new(token.bytes().zip(otp.bytes()).map(|(t, o)| t ^ o).collect());
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&*mixed))
}

impl Core {
    /// How many operator keys an attempt needs.
    fn key_threshold(&self) -> Result<u8> {
        Ok(self
            .seal_config()?
            .ok_or(EngineError::NotInitialized)?
            .key_threshold())
    }

    /// Checks a full set of unseal keys (Shamir) or recovery keys (hardware seal); the
    /// appliance must be unsealed.
    pub(super) fn verify_operator_keys(&self, shares: &[UnsealShare]) -> Result<()> {
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        let combined = ShamirRoot::combine(shares, config.key_threshold())?;
        let root = self.root()?;
        match config.kind()? {
            SealKind::Shamir => {
                let blob = self
                    .storage
                    .get(crate::barrier::KEYRING_PATH)?
                    .ok_or(EngineError::NotInitialized)?;
                combined
                    .unwrap(crate::barrier::KEYRING_PATH.as_bytes(), &blob)
                    .map(|_| ())
                    .map_err(|_| {
                        EngineError::bad(
                            "the unseal keys do not match this appliance: progress was reset",
                        )
                    })
            }
            _ => self.check_recovery_key(root.as_ref(), &combined),
        }
    }

    fn generate_root_view(&self, attempt: Option<&Attempt>) -> Result<GenerateRootStatus> {
        let required = self.key_threshold()?;
        Ok(match attempt {
            Some(a) => GenerateRootStatus {
                started: true,
                nonce: a.nonce.clone(),
                progress: a.shares.len(),
                required,
                otp_length: OTP_LENGTH,
                ..Default::default()
            },
            None => GenerateRootStatus {
                required,
                otp_length: OTP_LENGTH,
                ..Default::default()
            },
        })
    }

    pub(crate) fn generate_root_status(&self) -> Result<GenerateRootStatus> {
        let attempt = self.generate_root.lock();
        self.generate_root_view(attempt.as_ref())
    }

    /// Starts an attempt. Without an OTP one is generated and returned (once).
    pub(crate) fn generate_root_init(
        &self,
        otp: Option<String>,
        pgp_key: Option<String>,
    ) -> Result<GenerateRootStatus> {
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        if pgp_key.is_some_and(|k| !k.is_empty()) {
            return Err(EngineError::bad(
                "pgp_key is not supported on this appliance: use the OTP flow",
            ));
        }
        let mut slot = self.generate_root.lock();
        if slot.is_some() {
            return Err(EngineError::bad("root generation already in progress"));
        }
        let (otp, generated) = match otp.filter(|o| !o.is_empty()) {
            Some(o) if o.len() == OTP_LENGTH => (Zeroizing::new(o), false),
            Some(_) => {
                return Err(EngineError::bad(format!(
                    "OTP string is wrong length: it must be {OTP_LENGTH} characters"
                )))
            }
            None => (Zeroizing::new(random_base62(OTP_LENGTH)), true),
        };
        let attempt = Attempt {
            nonce: uuid::Uuid::new_v4().to_string(),
            otp,
            generated_otp: generated,
            shares: Vec::new(),
        };
        let mut view = self.generate_root_view(Some(&attempt))?;
        if attempt.generated_otp {
            view.otp = attempt.otp.to_string();
        }
        *slot = Some(attempt);
        Ok(view)
    }

    pub(crate) fn generate_root_cancel(&self) {
        self.generate_root.lock().take();
    }

    /// Adds one key; at the threshold checks the keys and mints the root token.
    pub(crate) async fn generate_root_update(
        &self,
        share: UnsealShare,
        nonce: &str,
    ) -> Result<GenerateRootStatus> {
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let required = self.key_threshold()? as usize;
        let (shares, otp, nonce_out) = {
            let mut slot = self.generate_root.lock();
            let attempt = slot
                .as_mut()
                .ok_or_else(|| EngineError::bad("no root generation in progress"))?;
            if attempt.nonce != nonce {
                return Err(EngineError::bad(format!(
                    "incorrect nonce supplied; nonce for this root generation operation is {}",
                    attempt.nonce
                )));
            }
            if !attempt.shares.iter().any(|s| s.index() == share.index()) {
                attempt.shares.push(share);
            }
            if attempt.shares.len() < required {
                return self.generate_root_view(Some(attempt));
            }
            // Threshold reached: the attempt ends here, whatever the outcome.
            let done = slot
                .take()
                .ok_or(EngineError::Internal("attempt vanished".into()))?;
            (done.shares.clone(), done.otp.clone(), done.nonce.clone())
        };
        self.verify_operator_keys(&shares)?;
        let id = Zeroizing::new(format!("s.{}", random_base62(OTP_LENGTH - 2)));
        let token = self.create_root_token(id.to_string()).await?;
        let encoded = xor_encode(&token, &otp)?;
        tracing::info!("root token generated with the operator keys");
        Ok(GenerateRootStatus {
            started: true,
            nonce: nonce_out,
            progress: shares.len(),
            required: required as u8,
            complete: true,
            encoded_token: encoded.clone(),
            encoded_root_token: encoded,
            otp_length: OTP_LENGTH,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_roundtrip() {
        let otp = random_base62(OTP_LENGTH);
        let token = format!("s.{}", random_base62(OTP_LENGTH - 2));
        let enc = xor_encode(&token, &otp).unwrap();
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(enc)
            .unwrap();
        let back: String = raw
            .iter()
            .zip(otp.bytes())
            .map(|(a, b)| (a ^ b) as char)
            .collect();
        assert_eq!(back, token);
    }
}
