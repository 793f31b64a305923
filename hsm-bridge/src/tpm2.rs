//! The TPM 2.0 root of trust (tss-esapi): a 32-byte root secret sealed to the TPM as a
//! keyed-hash data object under a storage primary key, optionally bound to PCR values.
//!
//! - The primary is an ECC P-256 restricted decryption key from the TCG default SRK
//!   template; the TPM derives it again from its owner seed at each open, so only the
//!   sealed object's public and private blobs are kept, in the data dir
//!   (`tpm2-root.pub`, `tpm2-root.priv`). The private blob is encrypted by the primary:
//!   it opens only on the same TPM (another TPM, or a cleared one, cannot load it).
//! - With `pcrs`, the object's auth policy is `TPM2_PolicyPCR` over those SHA-256 PCRs as
//!   they were at init; unsealing then needs the same PCR values.
//! - `open` unseals the secret into zeroized memory; wrap/unwrap use it with
//!   XChaCha20-Poly1305. Every transient handle is flushed (swtpm has no resource manager).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use parking_lot::Mutex;
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData,
    SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::random::mix_hardware_entropy;
use crate::{BridgeError, Capabilities, RootOfTrust, SealDevice, SealKind};

const SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const BLOB_VERSION: u8 = 1;
pub const PUBLIC_FILE: &str = "tpm2-root.pub";
pub const PRIVATE_FILE: &str = "tpm2-root.priv";

/// `seal "tpm2" { tcti, pcrs }`.
#[derive(Debug, Clone)]
pub struct Tpm2Config {
    /// e.g. `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`, `tabrmd`.
    pub tcti: String,
    /// SHA-256 PCR indexes the root secret is bound to; empty: no PCR policy.
    pub pcrs: Vec<u8>,
    /// Where the sealed object's blobs live (the data dir).
    pub dir: PathBuf,
}

fn unavailable(message: impl Into<String>) -> BridgeError {
    BridgeError::Unavailable {
        kind: SealKind::Tpm2,
        message: message.into(),
    }
}

fn device(op: &str, e: tss_esapi::Error) -> BridgeError {
    BridgeError::Device {
        kind: SealKind::Tpm2,
        message: format!("{op}: {e}"),
    }
}

pub struct Tpm2Device {
    config: Tpm2Config,
}

impl Tpm2Device {
    pub fn new(config: Tpm2Config) -> Result<Self, BridgeError> {
        TctiNameConf::from_str(&config.tcti)
            .map_err(|e| BridgeError::InvalidConfig(format!("tcti {:?}: {e}", config.tcti)))?;
        for p in &config.pcrs {
            pcr_slot(*p)?;
        }
        Ok(Tpm2Device { config })
    }

    fn connect(&self) -> Result<Context, BridgeError> {
        let tcti = TctiNameConf::from_str(&self.config.tcti)
            .map_err(|e| BridgeError::InvalidConfig(format!("tcti {:?}: {e}", self.config.tcti)))?;
        Context::new(tcti).map_err(|e| {
            unavailable(format!(
                "cannot reach the TPM at {:?} ({e}): is the TPM (or swtpm) running?",
                self.config.tcti
            ))
        })
    }
}

fn pcr_slot(index: u8) -> Result<PcrSlot, BridgeError> {
    let bit = 1u32
        .checked_shl(u32::from(index))
        .filter(|_| index < 24)
        .ok_or_else(|| BridgeError::InvalidConfig(format!("PCR {index} is not 0-23")))?;
    PcrSlot::try_from(bit).map_err(|_| BridgeError::InvalidConfig(format!("PCR {index}")))
}

fn pcr_selection(pcrs: &[u8]) -> Result<PcrSelectionList, BridgeError> {
    let slots = pcrs
        .iter()
        .map(|p| pcr_slot(*p))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| BridgeError::InvalidConfig(format!("pcrs: {e}")))
}

/// The TCG default ECC storage root key template: the TPM makes the same key from its
/// owner seed every time.
fn primary_template() -> Result<Public, tss_esapi::Error> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

fn sealed_template(policy: Option<Digest>) -> Result<Public, tss_esapi::Error> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_admin_with_policy(true)
        .with_user_with_auth(policy.is_none())
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy.unwrap_or_default())
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
}

/// Runs `f` with the primary loaded, flushing it afterwards whatever happens.
fn with_primary<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, BridgeError>,
) -> Result<T, BridgeError> {
    let template = primary_template().map_err(|e| device("primary template", e))?;
    let primary = ctx
        .execute_with_nullauth_session(|c| {
            c.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map_err(|e| device("TPM2_CreatePrimary", e))?
        .key_handle;
    let out = f(ctx, primary);
    let _ = ctx.flush_context(ObjectHandle::from(primary));
    out
}

/// A policy session with `PolicyPCR` applied (trial: to compute the digest at init).
fn pcr_policy_session(
    ctx: &mut Context,
    pcrs: &PcrSelectionList,
    trial: bool,
) -> Result<PolicySession, BridgeError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            if trial {
                SessionType::Trial
            } else {
                SessionType::Policy
            },
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| device("TPM2_StartAuthSession", e))?
        .ok_or_else(|| unavailable("the TPM returned no session"))?;
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    let policy = PolicySession::try_from(session).map_err(|e| device("policy session", e))?;
    let applied = ctx
        .tr_sess_set_attributes(session, attrs, mask)
        .and_then(|_| ctx.policy_pcr(policy, Digest::default(), pcrs.clone()));
    if let Err(e) = applied {
        let _ = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
            policy,
        )));
        return Err(device("TPM2_PolicyPCR", e));
    }
    Ok(policy)
}

fn flush_session(ctx: &mut Context, s: PolicySession) {
    let _ = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
        s,
    )));
}

impl Tpm2Device {
    fn public_path(&self) -> PathBuf {
        self.config.dir.join(PUBLIC_FILE)
    }

    fn private_path(&self) -> PathBuf {
        self.config.dir.join(PRIVATE_FILE)
    }

    fn create_sealed(&self, ctx: &mut Context) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
        crate::fill_random(&mut secret);
        let hw = ctx
            .get_random(SECRET_LEN)
            .map_err(|e| device("TPM2_GetRandom", e))?;
        for (s, h) in secret.iter_mut().zip(hw.value()) {
            *s ^= h;
        }
        let policy = if self.config.pcrs.is_empty() {
            None
        } else {
            let sel = pcr_selection(&self.config.pcrs)?;
            let trial = pcr_policy_session(ctx, &sel, true)?;
            let digest = ctx.policy_get_digest(trial);
            flush_session(ctx, trial);
            Some(digest.map_err(|e| device("TPM2_PolicyGetDigest", e))?)
        };
        let template = sealed_template(policy).map_err(|e| device("sealed template", e))?;
        let data =
            SensitiveData::try_from(secret.to_vec()).map_err(|e| device("sensitive data", e))?;
        let created = with_primary(ctx, |ctx, primary| {
            ctx.execute_with_nullauth_session(|c| {
                c.create(primary, template, None, Some(data), None, None)
            })
            .map_err(|e| device("TPM2_Create (sealed root secret)", e))
        })?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| device("marshal public", e))?;
        write_atomic(&self.public_path(), &public)?;
        write_atomic(&self.private_path(), created.out_private.value())?;
        tracing::info!(dir = %self.config.dir.display(), pcrs = ?self.config.pcrs, "sealed a new root secret to the TPM");
        Ok(secret)
    }

    fn unseal_existing(
        &self,
        ctx: &mut Context,
        public: &[u8],
        private: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        let public =
            Public::unmarshall(public).map_err(|_| BridgeError::ForeignKeyring(SealKind::Tpm2))?;
        let private = Private::try_from(private.to_vec())
            .map_err(|_| BridgeError::ForeignKeyring(SealKind::Tpm2))?;
        with_primary(ctx, |ctx, primary| {
            let loaded = ctx
                .execute_with_nullauth_session(|c| c.load(primary, private, public))
                .map_err(|e| {
                    tracing::warn!(error = %e, "TPM2_Load of the sealed root secret failed");
                    BridgeError::ForeignKeyring(SealKind::Tpm2)
                })?;
            let out = if self.config.pcrs.is_empty() {
                ctx.execute_with_nullauth_session(|c| c.unseal(loaded.into()))
                    .map_err(|e| device("TPM2_Unseal", e))
            } else {
                let sel = pcr_selection(&self.config.pcrs)?;
                let session = pcr_policy_session(ctx, &sel, false)?;
                let r = ctx
                    .execute_with_session(Some(session.into()), |c| c.unseal(loaded.into()))
                    .map_err(|e| BridgeError::Device {
                        kind: SealKind::Tpm2,
                        message: format!(
                            "TPM2_Unseal refused ({e}): the PCRs {:?} no longer hold the values the root secret was sealed to",
                            self.config.pcrs
                        ),
                    });
                flush_session(ctx, session);
                r
            };
            let _ = ctx.flush_context(ObjectHandle::from(loaded));
            out.map(|d| Zeroizing::new(d.value().to_vec()))
        })
    }
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), BridgeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| BridgeError::Device {
        kind: SealKind::Tpm2,
        message: format!("cannot write {}: {e}", path.display()),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl SealDevice for Tpm2Device {
    fn kind(&self) -> SealKind {
        SealKind::Tpm2
    }

    fn open(&self, create: bool) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        let public = std::fs::read(self.public_path()).ok();
        let private = std::fs::read(self.private_path()).ok();
        let mut ctx = self.connect()?;
        if let Ok(hw) = ctx.get_random(SECRET_LEN) {
            let mut seed = Zeroizing::new([0u8; SECRET_LEN]);
            seed.copy_from_slice(&hw.value()[..SECRET_LEN.min(hw.value().len())]);
            mix_hardware_entropy(&seed);
        }
        let secret = match (public, private) {
            (Some(p), Some(s)) => self.unseal_existing(&mut ctx, &p, &s)?,
            _ if create => self.create_sealed(&mut ctx)?,
            _ => {
                return Err(unavailable(format!(
                    "the sealed root secret ({} and {}) is missing from {}: restore them from a backup of the data dir, or use the recovery keys",
                    PUBLIC_FILE,
                    PRIVATE_FILE,
                    self.config.dir.display()
                )))
            }
        };
        if secret.len() != SECRET_LEN {
            return Err(BridgeError::ForeignKeyring(SealKind::Tpm2));
        }
        let mut key = Zeroizing::new([0u8; SECRET_LEN]);
        key.copy_from_slice(&secret);
        Ok(Arc::new(Tpm2Root {
            key,
            ctx: Mutex::new(ctx),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "TCTI {}, pcrs {:?}, blobs in {}",
            self.config.tcti,
            self.config.pcrs,
            self.config.dir.display()
        )
    }
}

/// The unsealed root secret, and the TPM connection for its RNG.
pub struct Tpm2Root {
    key: Zeroizing<[u8; SECRET_LEN]>,
    ctx: Mutex<Context>,
}

impl Tpm2Root {
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }
}

impl RootOfTrust for Tpm2Root {
    fn kind(&self) -> SealKind {
        SealKind::Tpm2
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hardware: true,
            in_boundary_keys: false,
            hardware_rng: true,
        }
    }

    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::fill_random(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| BridgeError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(BLOB_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        if blob.len() < 1 + NONCE_LEN || blob[0] != BLOB_VERSION {
            return Err(BridgeError::ForeignKeyring(SealKind::Tpm2));
        }
        let (nonce, ct) = blob[1..].split_at(NONCE_LEN);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| BridgeError::ForeignKeyring(SealKind::Tpm2))
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), BridgeError> {
        crate::fill_random(buf);
        let mut ctx = self.ctx.lock();
        let mut filled = 0;
        while filled < buf.len() {
            let want = (buf.len() - filled).min(32);
            let hw = ctx
                .get_random(want)
                .map_err(|e| device("TPM2_GetRandom", e))?;
            for (b, h) in buf[filled..].iter_mut().zip(hw.value()) {
                *b ^= h;
            }
            filled += hw.value().len().max(1);
        }
        Ok(())
    }
}
