//! Key-share rotation, OpenBao's `sys/rotate/root/*` and `sys/rotate/recovery/*` (the
//! old rekey): a quorum of the current operator keys authorises new ones, with a new
//! share count and threshold. With the Shamir seal the root key itself is replaced (a new
//! one is split, the keyring rewrapped under it); with a hardware seal the recovery key is.
//!
//! Nothing is written until the quorum is complete and, if the operator asked for it,
//! the new keys were presented back: the attempt lives in memory, like an unseal in
//! progress, and a crash or a seal simply forgets it. The switch is one storage
//! transaction (the rewrapped keyring or the new recovery key, with the new seal
//! configuration), so an interrupted rotation leaves the old keys valid and a completed
//! one only the new.

use std::sync::Arc;

use hsm_bridge::{SealKind, ShamirRoot, UnsealShare};
use serde::Serialize;

use super::{SealConfig, RECOVERY_KEY_PATH, SEAL_CONFIG_PATH};
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::storage::Batch;

/// Which operator keys a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateTarget {
    /// `sys/rotate/root`: the unseal keys of the Shamir seal.
    Root,
    /// `sys/rotate/recovery`: the recovery keys of a hardware seal.
    Recovery,
}

/// What `sys/rotate/*/init` starts, in OpenBao's names.
#[derive(Debug, Clone, Copy)]
pub struct RotateConfig {
    pub secret_shares: u8,
    pub secret_threshold: u8,
    /// The new keys take effect only once a threshold of them is presented back.
    pub require_verification: bool,
}

/// An attempt in progress: the current keys given so far, and once they made a quorum
/// and verification was asked for, the new key waiting for its shares.
pub(crate) struct Rotation {
    nonce: String,
    /// The stored seal when the attempt started ([`Core::seal_state`]).
    under: Vec<Option<Vec<u8>>>,
    config: RotateConfig,
    progress: Vec<UnsealShare>,
    pending: Option<Pending>,
}

/// New keys handed out, not in effect until a threshold of them comes back.
struct Pending {
    nonce: String,
    key: ShamirRoot,
    progress: Vec<UnsealShare>,
}

/// The attempts, one per target, as OpenBao keeps them.
#[derive(Default)]
pub(crate) struct Rotations {
    root: Option<Rotation>,
    recovery: Option<Rotation>,
}

impl Rotations {
    fn slot(&mut self, target: RotateTarget) -> &mut Option<Rotation> {
        match target {
            RotateTarget::Root => &mut self.root,
            RotateTarget::Recovery => &mut self.recovery,
        }
    }
}

/// `sys/rotate/*/init`, in OpenBao's field names.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RotateStatus {
    pub started: bool,
    pub nonce: String,
    /// The new threshold and share count.
    pub t: u8,
    pub n: u8,
    pub progress: usize,
    /// How many current keys the quorum takes.
    pub required: u8,
    pub verification_required: bool,
    pub verification_nonce: String,
}

/// The new keys, shown once, by the call that completed the quorum.
pub struct RotateKeys {
    pub nonce: String,
    pub keys: Vec<UnsealShare>,
    pub verification_required: bool,
    pub verification_nonce: String,
}

pub enum RotateUpdate {
    Progress(RotateStatus),
    Complete(RotateKeys),
}

/// `sys/rotate/*/verify`, in OpenBao's field names.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyStatus {
    pub nonce: String,
    pub started: bool,
    pub t: u8,
    pub n: u8,
    pub progress: usize,
}

pub enum VerifyUpdate {
    Progress(VerifyStatus),
    /// The new keys are in effect.
    Complete {
        nonce: String,
    },
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether this very key was given already. As OpenBao, a different key with the same
/// index is not refused here: it counts, and the quorum it completes fails its check.
fn given_before(progress: &[UnsealShare], share: &UnsealShare) -> bool {
    progress
        .iter()
        .any(|s| super::constant_time_eq(s.as_bytes(), share.as_bytes()))
}

fn no_rotation() -> EngineError {
    EngineError::bad("no rotation in progress")
}

/// OpenBao's checks of a new share configuration, in its words.
fn validate(config: &RotateConfig) -> Result<()> {
    let (n, t) = (config.secret_shares, config.secret_threshold);
    let why = if n < 1 {
        "shares must be at least one"
    } else if t < 1 {
        "threshold must be at least one"
    } else if n > 1 && t < 2 {
        "threshold must be greater than one for multiple shares"
    } else if t > n {
        "threshold cannot be larger than shares"
    } else {
        return Ok(());
    };
    Err(EngineError::bad(format!(
        "invalid rotate seal configuration: {why}"
    )))
}

impl Core {
    /// The seal configuration, checked to have the keys `target` rotates.
    fn rotation_config(&self, target: RotateTarget) -> Result<SealConfig> {
        let config = self.seal_config()?.ok_or(EngineError::NotInitialized)?;
        let kind = config.kind()?;
        match (target, kind) {
            (RotateTarget::Root, SealKind::Shamir) => Ok(config),
            (RotateTarget::Recovery, SealKind::Shamir) => Err(EngineError::bad(
                "recovery keys not supported: the shamir seal has unseal keys, rotate them with sys/rotate/root (bao operator rotate-keys)",
            )),
            (RotateTarget::Root, hw) => Err(EngineError::bad(format!(
                "the {hw} seal's root key is held inside the device and cannot be split into shares or replaced from here: rotate the recovery keys with sys/rotate/recovery (bao operator rotate-keys -target=recovery), and the encryption keyring with sys/rotate/keyring (bao operator rotate)"
            ))),
            (RotateTarget::Recovery, SealKind::Tpm2) => Err(EngineError::bad(
                "rotating the recovery keys of the tpm2 seal is not supported: the TPM binds the recovery key into its sealed object, which cannot be replaced in the same transaction as the stored key",
            )),
            (RotateTarget::Recovery, _) => Ok(config),
        }
    }

    fn rotation_view(&self, target: RotateTarget, required: u8) -> RotateStatus {
        let mut rotations = self.rotations.lock();
        match rotations.slot(target) {
            Some(r) => RotateStatus {
                started: true,
                nonce: r.nonce.clone(),
                t: r.config.secret_threshold,
                n: r.config.secret_shares,
                progress: r.progress.len(),
                required,
                verification_required: r.config.require_verification,
                verification_nonce: r
                    .pending
                    .as_ref()
                    .map(|p| p.nonce.clone())
                    .unwrap_or_default(),
            },
            None => RotateStatus {
                required,
                ..Default::default()
            },
        }
    }

    /// What the stored seal is now, as far as a rotation of `target` replaces it: its
    /// configuration, and for the recovery keys the recovery key.
    fn seal_state(&self, target: RotateTarget) -> Result<Vec<Option<Vec<u8>>>> {
        let mut state = vec![self.storage.get(SEAL_CONFIG_PATH)?];
        if target == RotateTarget::Recovery {
            state.push(self.storage.get(RECOVERY_KEY_PATH)?);
        }
        Ok(state)
    }

    /// Ends the attempt when another node changed the seal since it started: the keys
    /// given to it would count against a seal they may not open, and its new keys would
    /// replace the ones handed out there. Returns the seal the attempt started under.
    fn check_unchanged(&self, target: RotateTarget) -> Result<Vec<Option<Vec<u8>>>> {
        let now = self.seal_state(target)?;
        let mut rotations = self.rotations.lock();
        let slot = rotations.slot(target);
        match slot.as_ref() {
            Some(r) if r.under != now => {
                *slot = None;
                tracing::info!(target = ?target, "key rotation ended: another node changed the seal");
                Err(super::seal_changed_elsewhere())
            }
            Some(r) => Ok(r.under.clone()),
            None => Err(no_rotation()),
        }
    }

    pub(crate) fn rotation_status(&self, target: RotateTarget) -> Result<RotateStatus> {
        let config = self.rotation_config(target)?;
        Ok(self.rotation_view(target, config.key_threshold()))
    }

    /// Starts an attempt; only one per target at a time, as OpenBao.
    pub(crate) async fn rotation_init(
        &self,
        target: RotateTarget,
        new: RotateConfig,
    ) -> Result<RotateStatus> {
        let _l = self.lifecycle.lock().await;
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let config = self.rotation_config(target)?;
        validate(&new)?;
        let under = self.seal_state(target)?;
        {
            let mut rotations = self.rotations.lock();
            let slot = rotations.slot(target);
            if slot.is_some() {
                return Err(EngineError::bad("rotation already in progress"));
            }
            *slot = Some(Rotation {
                nonce: new_nonce(),
                under,
                config: new,
                progress: Vec::new(),
                pending: None,
            });
        }
        tracing::info!(
            target = ?target,
            shares = new.secret_shares,
            threshold = new.secret_threshold,
            verification = new.require_verification,
            "key rotation started"
        );
        Ok(self.rotation_view(target, config.key_threshold()))
    }

    /// Forgets the attempt and everything given to it; the current keys stay valid.
    pub(crate) async fn rotation_cancel(&self, target: RotateTarget) {
        let _l = self.lifecycle.lock().await;
        if self.rotations.lock().slot(target).take().is_some() {
            tracing::info!(target = ?target, "key rotation cancelled");
        }
    }

    /// Adds one current key. At the threshold the keys are checked (wrong ones reset the
    /// progress, the attempt stays), new ones are made, and unless verification was asked
    /// for, they take effect at once; either way they are returned, this once.
    pub(crate) async fn rotation_update(
        &self,
        target: RotateTarget,
        share: UnsealShare,
        nonce: &str,
    ) -> Result<RotateUpdate> {
        let _l = self.lifecycle.lock().await;
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let under = self.check_unchanged(target)?;
        let config = self.rotation_config(target)?;
        let required = config.key_threshold();
        let (quorum, new) = {
            let mut rotations = self.rotations.lock();
            let r = rotations.slot(target).as_mut().ok_or_else(no_rotation)?;
            if let Some(p) = &r.pending {
                return Err(EngineError::bad(format!(
                    "rotation already finished; verification must be performed; nonce for the verification operation is {:?}",
                    p.nonce
                )));
            }
            if r.nonce != nonce {
                return Err(EngineError::bad(format!(
                    "incorrect nonce supplied; nonce for rotation is {:?}",
                    r.nonce
                )));
            }
            if given_before(&r.progress, &share) {
                return Err(EngineError::bad(
                    "given key has already been provided during this rotation",
                ));
            }
            r.progress.push(share);
            if r.progress.len() < required as usize {
                drop(rotations);
                return Ok(RotateUpdate::Progress(self.rotation_view(target, required)));
            }
            // The quorum is complete: whatever the check finds, these keys are used up.
            (std::mem::take(&mut r.progress), r.config)
        };
        if let Err(e) = self.verify_operator_keys(&quorum) {
            // Keys checked against a seal another node replaced since this attempt
            // started do not open it: say so, rather than that they are wrong.
            self.check_unchanged(target)?;
            return Err(e);
        }
        crate::failpoint::crash_at("rotate:quorum");
        let (key, keys) = ShamirRoot::generate(new.secret_shares, new.secret_threshold)?;
        let nonce = nonce.to_string();
        if new.require_verification {
            let verification_nonce = new_nonce();
            let mut rotations = self.rotations.lock();
            let r = rotations.slot(target).as_mut().ok_or_else(no_rotation)?;
            r.pending = Some(Pending {
                nonce: verification_nonce.clone(),
                key,
                progress: Vec::new(),
            });
            tracing::info!(target = ?target, "new keys handed out, waiting for their verification");
            return Ok(RotateUpdate::Complete(RotateKeys {
                nonce,
                keys,
                verification_required: true,
                verification_nonce,
            }));
        }
        self.switch_keys(target, &config, &under, new, key).await?;
        self.rotations.lock().slot(target).take();
        Ok(RotateUpdate::Complete(RotateKeys {
            nonce,
            keys,
            verification_required: false,
            verification_nonce: String::new(),
        }))
    }

    pub(crate) fn rotation_verify_status(&self, target: RotateTarget) -> Result<VerifyStatus> {
        let mut rotations = self.rotations.lock();
        let r = rotations
            .slot(target)
            .as_ref()
            .ok_or_else(|| EngineError::bad("no rotation configuration found"))?;
        Ok(verify_view(r))
    }

    /// Starts the verification over: the new keys given so far are forgotten and the
    /// verification gets a new nonce; the attempt and its new keys stay.
    pub(crate) async fn rotation_verify_restart(
        &self,
        target: RotateTarget,
    ) -> Result<VerifyStatus> {
        let _l = self.lifecycle.lock().await;
        let mut rotations = self.rotations.lock();
        let r = rotations
            .slot(target)
            .as_mut()
            .ok_or_else(|| EngineError::bad("no rotation configuration found"))?;
        if let Some(p) = r.pending.as_mut() {
            p.progress.clear();
            p.nonce = new_nonce();
        }
        Ok(verify_view(r))
    }

    /// Adds one of the new keys. At their threshold they must rebuild the new key: then
    /// it takes effect; else the verification starts over with a new nonce.
    pub(crate) async fn rotation_verify(
        &self,
        target: RotateTarget,
        share: UnsealShare,
        nonce: &str,
    ) -> Result<VerifyUpdate> {
        let _l = self.lifecycle.lock().await;
        if self.is_sealed() {
            return Err(EngineError::Sealed);
        }
        let under = self.check_unchanged(target)?;
        let config = self.rotation_config(target)?;
        let (verified, new) = {
            let mut rotations = self.rotations.lock();
            let r = rotations.slot(target).as_mut().ok_or_else(no_rotation)?;
            let new = r.config;
            let p = r
                .pending
                .as_mut()
                .ok_or_else(|| EngineError::bad("no rotation verification in progress"))?;
            if p.nonce != nonce {
                return Err(EngineError::bad(format!(
                    "incorrect nonce supplied; nonce for this verify operation is {:?}",
                    p.nonce
                )));
            }
            if given_before(&p.progress, &share) {
                return Err(EngineError::bad(
                    "given key has already been provided during this verify operation",
                ));
            }
            p.progress.push(share);
            if p.progress.len() < new.secret_threshold as usize {
                return Ok(VerifyUpdate::Progress(verify_view(r)));
            }
            let given = std::mem::take(&mut p.progress);
            let matches = ShamirRoot::combine(&given, new.secret_threshold)
                .is_ok_and(|k| super::constant_time_eq(k.key_bytes(), p.key.key_bytes()));
            if !matches {
                p.nonce = new_nonce();
                return Err(EngineError::bad(
                    "rotation verification failed; incorrect key shares supplied",
                ));
            }
            let verified = r
                .pending
                .take()
                .ok_or_else(|| EngineError::internal("verification vanished"))?;
            (verified, new)
        };
        crate::failpoint::crash_at("rotate:verified");
        let nonce = verified.nonce.clone();
        if let Err(e) = self
            .switch_keys(target, &config, &under, new, verified.key)
            .await
        {
            // The new keys were not stored: the old ones stay valid, and the attempt goes
            // back to collecting a quorum of them.
            let mut rotations = self.rotations.lock();
            if let Some(r) = rotations.slot(target).as_mut() {
                r.pending = None;
            }
            return Err(e);
        }
        self.rotations.lock().slot(target).take();
        Ok(VerifyUpdate::Complete { nonce })
    }

    /// Puts `key` in effect, split as `new` says: one transaction holds what the old keys
    /// no longer open (the keyring rewrapped, or the recovery key) and the seal
    /// configuration that describes the new keys.
    async fn switch_keys(
        &self,
        target: RotateTarget,
        current: &SealConfig,
        under: &[Option<Vec<u8>>],
        new: RotateConfig,
        key: ShamirRoot,
    ) -> Result<()> {
        let mut batch = Batch::new();
        self.expect_seal_config(current, &mut batch)?;
        if target == RotateTarget::Recovery {
            // Another node's rotation to the same shares leaves the configuration as it
            // was: the recovery key it wrote is what tells.
            batch.check(RECOVERY_KEY_PATH, under.get(1).cloned().flatten());
        }
        let config = match target {
            RotateTarget::Root => {
                self.barrier.rewrap_keyring_into(&key, &mut batch)?;
                SealConfig::shamir(new.secret_shares, new.secret_threshold)
            }
            RotateTarget::Recovery => {
                let root = self.root()?;
                batch.put(
                    RECOVERY_KEY_PATH,
                    root.wrap(RECOVERY_KEY_PATH.as_bytes(), key.key_bytes())?,
                );
                SealConfig {
                    recovery_shares: new.secret_shares,
                    recovery_threshold: new.secret_threshold,
                    ..current.clone()
                }
            }
        };
        batch.put(SEAL_CONFIG_PATH, config.encode()?);
        crate::failpoint::crash_at("rotate:commit");
        self.commit_seal_change(batch).await?;
        crate::failpoint::crash_at("rotate:committed");
        if target == RotateTarget::Root {
            // The keyring is wrapped under the new root key from now on (`sys/rotate`
            // rewraps it with what this holds).
            *self.root.write() = Some(Arc::new(key));
        }
        tracing::info!(
            target = ?target,
            shares = new.secret_shares,
            threshold = new.secret_threshold,
            "key rotation complete: the new keys are in effect, the old ones no longer work"
        );
        Ok(())
    }
}

fn verify_view(r: &Rotation) -> VerifyStatus {
    VerifyStatus {
        nonce: r
            .pending
            .as_ref()
            .map(|p| p.nonce.clone())
            .unwrap_or_default(),
        started: r.pending.is_some(),
        t: r.config.secret_threshold,
        n: r.config.secret_shares,
        progress: r.pending.as_ref().map_or(0, |p| p.progress.len()),
    }
}
