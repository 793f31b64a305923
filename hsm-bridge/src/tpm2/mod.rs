//! The TPM 2.0 root of trust (tss-esapi): a 32-byte root secret sealed to the TPM as a
//! keyed-hash data object under the storage primary key (SRK).
//!
//! - The SRK is an ECC P-256 restricted decryption key from the TCG default template; the
//!   TPM derives it again from its owner seed at each open. The sealed object's blobs, the
//!   SRK's name and the PCR policy live in one file in the data dir, `tpm2-seal.json`,
//!   replaced atomically. The private blob is encrypted by the SRK: it opens only on the
//!   same TPM (another TPM, or a cleared one, has another SRK name and cannot load it).
//! - The secret never crosses the bus in clear: the session that creates the object and
//!   the one that unseals it are salted to the SRK and encrypt that parameter
//!   ([`session`]). The SRK's name is recorded at creation and checked before each unseal,
//!   so a TPM (or interposer) answering with another SRK is not sent a salt.
//! - With `pcrs`, the object's policy is `PolicyOR(PolicyAuthorize(appliance policy key),
//!   PolicyAuthValue(recovery))` ([`policy`]): it unseals when the PCRs hold values the
//!   appliance signed, or with the recovery keys. Without `pcrs` the object has no policy
//!   and an empty authValue (any process that can reach the TPM's owner hierarchy on this
//!   machine can unseal; the PCR binding is what stops another boot chain).
//! - Data dirs made before the signed policy (`tpm2-root.pub` + `tpm2-root.priv`, raw
//!   PolicyPCR) still unseal; `ironseal operator reseal` moves them to the new format.
//! - `open` unseals the secret into zeroized memory; wrap/unwrap use it with
//!   the software AEAD blob the Shamir root uses too (`soft_aead`). Every transient handle is flushed (swtpm has no resource manager).

mod policy;
mod session;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    Digest, KeyedHashScheme, Name, Private, Public, PublicBuilder, PublicKeyedHashParameters,
    SensitiveData,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::random::mix_hardware_entropy;
use crate::{
    BridgeError, Capabilities, OpenMode, PcrTarget, RootOfTrust, SealBinding, SealDevice, SealKind,
    SealPolicyReport,
};
use session::Protect;

const SECRET_LEN: usize = 32;
const SEAL_FILE_VERSION: u8 = 2;
/// Signed PCR policies kept: the current boot's and a few authorised ahead of updates.
const MAX_AUTHORIZED: usize = 8;
pub const SEAL_FILE: &str = "tpm2-seal.json";
/// The blobs of data dirs sealed before `tpm2-seal.json` (raw PolicyPCR, unsalted).
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

fn corrupt(what: &str) -> BridgeError {
    BridgeError::Device {
        kind: SealKind::Tpm2,
        message: format!("{SEAL_FILE} is damaged ({what}): restore it from a backup of the data dir, or use the recovery keys"),
    }
}

/// `tpm2-seal.json`: everything needed before unseal, none of it secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealFile {
    version: u8,
    /// TPM2B_PUBLIC of the sealed object, marshalled, hex.
    public: String,
    /// TPM2B_PRIVATE (encrypted by the SRK), hex.
    private: String,
    /// The SRK's name when the object was made, hex.
    srk_name: String,
    /// The appliance policy key's public half (SEC1 uncompressed, hex); absent without
    /// PCR binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_key: Option<String>,
    /// PCR values the appliance signed, newest last.
    #[serde(default)]
    authorized: Vec<Authorized>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Authorized {
    /// SHA-256 bank: PCR index -> value (hex).
    pcrs: BTreeMap<u8, String>,
    /// ECDSA P-256 over H(PolicyPCR digest || empty policyRef), r || s, hex.
    signature: String,
}

impl Authorized {
    fn values(&self) -> Result<BTreeMap<u8, Vec<u8>>, BridgeError> {
        self.pcrs
            .iter()
            .map(|(k, v)| {
                hex::decode(v)
                    .map(|v| (*k, v))
                    .map_err(|_| corrupt("a PCR value"))
            })
            .collect()
    }
}

fn to_hex_map(values: &BTreeMap<u8, Vec<u8>>) -> BTreeMap<u8, String> {
    values.iter().map(|(k, v)| (*k, hex::encode(v))).collect()
}

enum Stored {
    Sealed(SealFile),
    Legacy { public: Vec<u8>, private: Vec<u8> },
    Missing,
}

pub struct Tpm2Device {
    config: Tpm2Config,
}

impl Tpm2Device {
    pub fn new(config: Tpm2Config) -> Result<Self, BridgeError> {
        TctiNameConf::from_str(&config.tcti)
            .map_err(|e| BridgeError::InvalidConfig(format!("tcti {:?}: {e}", config.tcti)))?;
        for p in &config.pcrs {
            policy::pcr_slot(*p)?;
        }
        Ok(Tpm2Device { config })
    }

    fn connect(&self) -> Result<Context, BridgeError> {
        connect(&self.config)
    }
}

fn connect(config: &Tpm2Config) -> Result<Context, BridgeError> {
    let tcti = TctiNameConf::from_str(&config.tcti)
        .map_err(|e| BridgeError::InvalidConfig(format!("tcti {:?}: {e}", config.tcti)))?;
    Context::new(tcti).map_err(|e| {
        unavailable(format!(
            "cannot reach the TPM at {:?} ({e}): is the TPM (or swtpm) running?",
            config.tcti
        ))
    })
}

fn read_stored(dir: &Path) -> Result<Stored, BridgeError> {
    match std::fs::read(dir.join(SEAL_FILE)) {
        Ok(bytes) => {
            let file: SealFile =
                serde_json::from_slice(&bytes).map_err(|_| corrupt("not the expected JSON"))?;
            if file.version != SEAL_FILE_VERSION {
                return Err(corrupt("unknown version"));
            }
            return Ok(Stored::Sealed(file));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(unavailable(format!(
                "cannot read {}: {e}",
                dir.join(SEAL_FILE).display()
            )))
        }
    }
    match (
        std::fs::read(dir.join(PUBLIC_FILE)),
        std::fs::read(dir.join(PRIVATE_FILE)),
    ) {
        (Ok(public), Ok(private)) => Ok(Stored::Legacy { public, private }),
        _ => Ok(Stored::Missing),
    }
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

/// Seals `secret` to this TPM in a new object and returns its file, with the current
/// PCR values signed. The secret travels as TPM2_Create's first parameter, encrypted by
/// a session salted to the SRK.
fn seal_secret(
    ctx: &mut Context,
    config: &Tpm2Config,
    secret: &[u8],
    binding: Option<&SealBinding<'_>>,
) -> Result<SealFile, BridgeError> {
    let pcr_bound = !config.pcrs.is_empty();
    let signer = match (pcr_bound, binding.and_then(|b| b.policy_key)) {
        (false, _) => None,
        (true, Some(k)) => Some(policy::signing_key(k)?),
        (true, None) => {
            return Err(BridgeError::InvalidConfig(
                "sealing to PCRs needs the appliance policy key, which only the engine holds"
                    .into(),
            ))
        }
    };
    let auth = match (pcr_bound, binding) {
        (true, Some(b)) => Some(policy::recovery_auth(b.recovery_key)?),
        _ => None,
    };
    let data = SensitiveData::try_from(secret.to_vec()).map_err(|e| device("sensitive data", e))?;
    session::with_primary(ctx, |ctx, srk, srk_name| {
        let (template, policy_public, approved) = match &signer {
            None => (
                sealed_template(None).map_err(|e| device("sealed template", e))?,
                None,
                None,
            ),
            Some(signer) => {
                let public = policy::public_point(signer);
                let key = policy::load_policy_key(ctx, &public)?;
                let computed =
                    policy::branches(ctx, &key.name).and_then(|b| policy::object_policy(ctx, &b));
                policy::unload(ctx, key);
                let digest = computed?;
                let current = policy::read_pcrs(ctx, &config.pcrs)?;
                let approved = sign_values(ctx, signer, &current)?;
                (
                    sealed_template(Some(digest)).map_err(|e| device("sealed template", e))?,
                    Some(hex::encode(public)),
                    Some(approved),
                )
            }
        };
        let s = session::start_salted(ctx, srk, SessionType::Hmac, Protect::Command)?;
        let created = ctx
            .execute_with_session(Some(s), |c| {
                c.create(srk, template, auth.clone(), Some(data), None, None)
            })
            .map_err(|e| device("TPM2_Create (sealed root secret)", e));
        session::flush(ctx, s);
        let created = created?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| device("marshal public", e))?;
        Ok(SealFile {
            version: SEAL_FILE_VERSION,
            public: hex::encode(public),
            private: hex::encode(created.out_private.value()),
            srk_name: hex::encode(srk_name.value()),
            policy_key: policy_public,
            authorized: approved.into_iter().collect(),
        })
    })
}

fn sign_values(
    ctx: &mut Context,
    signer: &p256::ecdsa::SigningKey,
    values: &BTreeMap<u8, Vec<u8>>,
) -> Result<Authorized, BridgeError> {
    let approved = policy::pcr_policy(ctx, values)?;
    Ok(Authorized {
        pcrs: to_hex_map(values),
        signature: hex::encode(policy::sign(signer, &approved)?),
    })
}

/// How the unseal is authorised.
#[derive(Clone, Copy)]
enum Route<'a> {
    /// Signed PCR policies (or no policy at all).
    Auto,
    /// The recovery branch, with the recovery key.
    Recovery(&'a [u8]),
}

/// `TPM2_Unseal` of an object with no policy, through a session salted to the SRK that
/// encrypts the answer, so the secret never crosses the bus in clear.
fn unseal_unbound(
    ctx: &mut Context,
    srk: KeyHandle,
    object: KeyHandle,
) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    let s = session::start_salted(ctx, srk, SessionType::Hmac, Protect::Response)?;
    let r = ctx
        .execute_with_session(Some(s), |c| c.unseal(object.into()))
        .map_err(|e| device("TPM2_Unseal", e))
        .map(|d| Zeroizing::new(d.value().to_vec()));
    session::flush(ctx, s);
    r
}

fn load_object(
    ctx: &mut Context,
    srk: KeyHandle,
    public: &[u8],
    private: &[u8],
) -> Result<KeyHandle, BridgeError> {
    let public =
        Public::unmarshall(public).map_err(|_| BridgeError::ForeignKeyring(SealKind::Tpm2))?;
    let private = Private::try_from(private.to_vec())
        .map_err(|_| BridgeError::ForeignKeyring(SealKind::Tpm2))?;
    ctx.execute_with_nullauth_session(|c| c.load(srk, private, public))
        .map_err(|e| {
            tracing::warn!(error = %e, "TPM2_Load of the sealed root secret failed");
            BridgeError::ForeignKeyring(SealKind::Tpm2)
        })
}

/// TPM2_Unseal authorised by a policy session, its response encrypted by a second
/// session salted to the SRK. That second session authorises nothing, so the TPM keys its
/// encryption with the session key alone (an authorisation session's would include the
/// object's authValue, the recovery-derived secret auto-unseal does not have).
fn unseal_with_policy(
    ctx: &mut Context,
    srk: KeyHandle,
    object: KeyHandle,
    satisfy: impl FnOnce(&mut Context, PolicySession) -> Result<(), BridgeError>,
) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    let s = session::start_salted(ctx, srk, SessionType::Policy, Protect::Nothing)?;
    let enc = match session::start_salted(ctx, srk, SessionType::Hmac, Protect::Response) {
        Ok(e) => e,
        Err(e) => {
            session::flush(ctx, s);
            return Err(e);
        }
    };
    let out = PolicySession::try_from(s)
        .map_err(|e| device("policy session", e))
        .and_then(|p| satisfy(ctx, p))
        .and_then(|_| {
            ctx.execute_with_sessions((Some(s), Some(enc), None), |c| c.unseal(object.into()))
                .map_err(|e| device("TPM2_Unseal", e))
        })
        .map(|d| Zeroizing::new(d.value().to_vec()));
    session::flush(ctx, enc);
    session::flush(ctx, s);
    out
}

fn unseal_file(
    ctx: &mut Context,
    file: &SealFile,
    route: Route<'_>,
) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    let public = hex::decode(&file.public).map_err(|_| corrupt("public"))?;
    let private = hex::decode(&file.private).map_err(|_| corrupt("private"))?;
    let expected_srk = hex::decode(&file.srk_name).map_err(|_| corrupt("srk_name"))?;
    session::with_primary(ctx, |ctx, srk, srk_name: &Name| {
        if srk_name.value() != expected_srk.as_slice() {
            tracing::warn!(
                "the TPM's storage root key is not the one the root secret was sealed under"
            );
            return Err(BridgeError::ForeignKeyring(SealKind::Tpm2));
        }
        let object = load_object(ctx, srk, &public, &private)?;
        let out = match (&file.policy_key, route) {
            (None, _) => unseal_unbound(ctx, srk, object),
            (Some(key), route) => {
                let key = hex::decode(key).map_err(|_| corrupt("policy_key"))?;
                unseal_policy_bound(ctx, srk, object, &key, &file.authorized, route)
            }
        };
        let _ = ctx.flush_context(ObjectHandle::from(object));
        out
    })
}

fn unseal_policy_bound(
    ctx: &mut Context,
    srk: KeyHandle,
    object: KeyHandle,
    policy_key: &[u8],
    authorized: &[Authorized],
    route: Route<'_>,
) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    let key = policy::load_policy_key(ctx, policy_key)?;
    let out = policy::branches(ctx, &key.name).and_then(|branches| match route {
        Route::Recovery(recovery_key) => {
            let auth = policy::recovery_auth(recovery_key)?;
            ctx.tr_set_auth(ObjectHandle::from(object), auth)
                .map_err(|e| device("object auth", e))?;
            unseal_with_policy(ctx, srk, object, |c, s| {
                policy::satisfy_recovery(c, s, &branches)
            })
            .map_err(|e| {
                tracing::warn!(error = %e, "the recovery branch of the TPM policy refused");
                BridgeError::WrongRootKey
            })
        }
        Route::Auto => {
            // Decide in software which signed entry the PCRs satisfy, so that a plain
            // mismatch is reported as such and not as a TPM failure.
            let mut pcrs: Vec<u8> = authorized
                .iter()
                .flat_map(|a| a.pcrs.keys().copied())
                .collect();
            pcrs.sort_unstable();
            pcrs.dedup();
            let current = policy::read_pcrs(ctx, &pcrs)?;
            let matching = authorized
                .iter()
                .rev()
                .map(|a| a.values().map(|v| (a, v)))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .find(|(_, v)| v.iter().all(|(k, val)| current.get(k) == Some(val)));
            let Some((entry, values)) = matching else {
                return Err(BridgeError::PolicyMismatch {
                    kind: SealKind::Tpm2,
                    message: format!(
                        "PCRs {pcrs:?} hold values no signed policy authorises (a firmware, boot or Secure Boot change that was not authorised with `ironseal operator authorize-pcrs`): unseal with the recovery keys, then run `ironseal operator reseal`"
                    ),
                });
            };
            let signature = hex::decode(&entry.signature).map_err(|_| corrupt("signature"))?;
            unseal_with_policy(ctx, srk, object, |c, s| {
                policy::satisfy_authorized(c, s, &key, &values, &signature, &branches)
            })
        }
    });
    policy::unload(ctx, key);
    out
}

/// Data dirs sealed before the signed policy: no policy, or a raw PolicyPCR over the
/// configured PCRs as they were at init.
fn unseal_legacy(
    ctx: &mut Context,
    config: &Tpm2Config,
    public: &[u8],
    private: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    session::with_primary(ctx, |ctx, srk, _| {
        let object = load_object(ctx, srk, public, private)?;
        let out = if config.pcrs.is_empty() {
            unseal_unbound(ctx, srk, object)
        } else {
            let selection = policy::pcr_selection(&config.pcrs)?;
            unseal_with_policy(ctx, srk, object, |c, s| {
                c.policy_pcr(s, Digest::default(), selection)
                    .map_err(|e| device("TPM2_PolicyPCR", e))
            })
            .map_err(|e| BridgeError::PolicyMismatch {
                kind: SealKind::Tpm2,
                message: format!(
                    "the root secret was sealed (before signed PCR policies) to PCRs {:?} as they were at init, and they changed ({e}): unseal with the recovery keys, then run `ironseal operator reseal`",
                    config.pcrs
                ),
            })
        };
        let _ = ctx.flush_context(ObjectHandle::from(object));
        out
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BridgeError> {
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

fn write_file(dir: &Path, file: &SealFile) -> Result<(), BridgeError> {
    let bytes = serde_json::to_vec_pretty(file).map_err(|_| corrupt("cannot encode"))?;
    write_atomic(&dir.join(SEAL_FILE), &bytes)?;
    // The legacy blobs are superseded once the new file is durable.
    for old in [PUBLIC_FILE, PRIVATE_FILE] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(())
}

fn fresh_secret(ctx: &mut Context) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    crate::fill_random(&mut secret);
    let hw = ctx
        .get_random(SECRET_LEN)
        .map_err(|e| device("TPM2_GetRandom", e))?;
    for (s, h) in secret.iter_mut().zip(hw.value()) {
        *s ^= h;
    }
    Ok(secret)
}

impl Tpm2Device {
    /// Connects and mixes the TPM's RNG into the process's.
    fn session_start(&self) -> Result<Context, BridgeError> {
        let mut ctx = self.connect()?;
        if let Ok(hw) = ctx.get_random(SECRET_LEN) {
            let mut seed = Zeroizing::new([0u8; SECRET_LEN]);
            seed.copy_from_slice(&hw.value()[..SECRET_LEN.min(hw.value().len())]);
            mix_hardware_entropy(&seed);
        }
        Ok(ctx)
    }

    fn root(
        &self,
        ctx: Context,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        if secret.len() != SECRET_LEN {
            return Err(BridgeError::ForeignKeyring(SealKind::Tpm2));
        }
        let mut key = Zeroizing::new([0u8; SECRET_LEN]);
        key.copy_from_slice(&secret);
        Ok(Arc::new(Tpm2Root {
            key,
            ctx: Mutex::new(ctx),
            config: self.config.clone(),
        }))
    }

    fn create_new(
        &self,
        binding: Option<&SealBinding<'_>>,
    ) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        let mut ctx = self.session_start()?;
        let secret = fresh_secret(&mut ctx)?;
        let file = seal_secret(&mut ctx, &self.config, &secret, binding)?;
        write_file(&self.config.dir, &file)?;
        tracing::info!(dir = %self.config.dir.display(), pcrs = ?self.config.pcrs, "sealed a new root secret to the TPM");
        self.root(ctx, secret)
    }

    fn open_route(&self, route: Route<'_>) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        let stored = read_stored(&self.config.dir)?;
        let mut ctx = self.session_start()?;
        let secret = match stored {
            Stored::Sealed(file) => match (unseal_file(&mut ctx, &file, Route::Auto), route) {
                (Ok(s), _) => s,
                // The recovery branch also stands in when the signed policies do not
                // work for another reason (a damaged policy file); not when the TPM is
                // away or is another TPM.
                (
                    Err(
                        BridgeError::PolicyMismatch { .. }
                        | BridgeError::Device { .. }
                        | BridgeError::InvalidConfig(_),
                    ),
                    Route::Recovery(_),
                ) => {
                    let s = unseal_file(&mut ctx, &file, route)?;
                    tracing::warn!("the TPM released the root secret through the recovery keys: the PCRs are not authorised; run `ironseal operator reseal` once this boot state is trusted");
                    s
                }
                (Err(e), _) => return Err(e),
            },
            Stored::Legacy { public, private } => {
                unseal_legacy(&mut ctx, &self.config, &public, &private)?
            }
            Stored::Missing => {
                return Err(unavailable(format!(
                    "the sealed root secret ({SEAL_FILE}) is missing from {}: restore it from a backup of the data dir",
                    self.config.dir.display()
                )))
            }
        };
        self.root(ctx, secret)
    }
}

impl SealDevice for Tpm2Device {
    fn kind(&self) -> SealKind {
        SealKind::Tpm2
    }

    /// Creating without a binding can only make an object without PCR policy; the engine
    /// uses [`SealDevice::create`].
    fn open(&self, mode: OpenMode) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        match self.open_route(Route::Auto) {
            Err(BridgeError::Unavailable { .. })
                if mode == OpenMode::CreateIfMissing
                    && matches!(read_stored(&self.config.dir), Ok(Stored::Missing)) =>
            {
                self.create_new(None)
            }
            other => other,
        }
    }

    fn new_policy_key(&self) -> Option<Zeroizing<Vec<u8>>> {
        Some(policy::generate_key())
    }

    fn create(&self, binding: &SealBinding<'_>) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        self.create_new(Some(binding))
    }

    fn open_with_recovery(&self, recovery_key: &[u8]) -> Result<Arc<dyn RootOfTrust>, BridgeError> {
        self.open_route(Route::Recovery(recovery_key))
    }

    fn describe(&self) -> String {
        format!(
            "TCTI {}, pcrs {:?}, sealed object in {}",
            self.config.tcti,
            self.config.pcrs,
            self.config.dir.join(SEAL_FILE).display()
        )
    }
}

/// The unsealed root secret, the TPM connection (for its RNG and policy updates) and
/// where the sealed object lives.
pub struct Tpm2Root {
    key: Zeroizing<[u8; SECRET_LEN]>,
    ctx: Mutex<Context>,
    config: Tpm2Config,
}

impl Tpm2Root {
    fn report(
        &self,
        ctx: &mut Context,
        file: Option<&SealFile>,
    ) -> Result<SealPolicyReport, BridgeError> {
        let current = policy::read_pcrs(ctx, &self.config.pcrs)?;
        let (authorized, signed) = match file {
            Some(f) => (
                f.authorized
                    .iter()
                    .map(|a| a.pcrs.clone())
                    .collect::<Vec<_>>(),
                f.policy_key.is_some(),
            ),
            None => (Vec::new(), false),
        };
        let current_hex = to_hex_map(&current);
        Ok(SealPolicyReport {
            pcrs: self.config.pcrs.clone(),
            signed_policy: signed,
            current_authorized: !signed
                || authorized
                    .iter()
                    .any(|a| a.iter().all(|(k, v)| current_hex.get(k) == Some(v))),
            current: current_hex,
            authorized,
        })
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
            ..Capabilities::default()
        }
    }

    fn seal_policy(&self) -> Result<SealPolicyReport, BridgeError> {
        let file = match read_stored(&self.config.dir)? {
            Stored::Sealed(f) => Some(f),
            _ => None,
        };
        let mut ctx = self.ctx.lock();
        self.report(&mut ctx, file.as_ref())
    }

    fn authorize_pcrs(
        &self,
        policy_key: &[u8],
        targets: &BTreeMap<u8, PcrTarget>,
    ) -> Result<SealPolicyReport, BridgeError> {
        let Stored::Sealed(mut file) = read_stored(&self.config.dir)? else {
            return Err(BridgeError::BadInput(
                "this root secret was sealed without a signed PCR policy: run `ironseal operator reseal` first",
            ));
        };
        let signer = policy::signing_key(policy_key)?;
        if file.policy_key.as_deref() != Some(hex::encode(policy::public_point(&signer)).as_str()) {
            return Err(BridgeError::BadInput(
                "the sealed object is not bound to the appliance policy key (no PCRs configured when it was sealed?): run `ironseal operator reseal` first",
            ));
        }
        if self.config.pcrs.is_empty() {
            return Err(BridgeError::BadInput(
                "the tpm2 seal has no pcrs configured: there is nothing to authorise",
            ));
        }
        if let Some(p) = targets.keys().find(|p| !self.config.pcrs.contains(p)) {
            return Err(BridgeError::InvalidConfig(format!(
                "PCR {p} is not one of the seal's pcrs {:?}",
                self.config.pcrs
            )));
        }
        let mut ctx = self.ctx.lock();
        let mut values = policy::read_pcrs(&mut ctx, &self.config.pcrs)?;
        for (p, target) in targets {
            let v = values
                .get_mut(p)
                .ok_or(BridgeError::BadInput("unknown PCR"))?;
            match target {
                PcrTarget::Value(x) => *v = x.clone(),
                PcrTarget::Extend(digests) => {
                    for d in digests {
                        *v = policy::extend(v, d);
                    }
                }
            }
        }
        let entry = sign_values(&mut ctx, &signer, &values)?;
        file.authorized.retain(|a| a.pcrs != entry.pcrs);
        file.authorized.push(entry);
        let excess = file.authorized.len().saturating_sub(MAX_AUTHORIZED);
        file.authorized.drain(..excess);
        write_file(&self.config.dir, &file)?;
        tracing::info!(pcrs = ?to_hex_map(&values), "authorised PCR values for the TPM seal");
        self.report(&mut ctx, Some(&file))
    }

    fn reseal(&self, binding: &SealBinding<'_>) -> Result<SealPolicyReport, BridgeError> {
        let mut ctx = self.ctx.lock();
        let file = seal_secret(&mut ctx, &self.config, self.key.as_ref(), Some(binding))?;
        // The new object must open before it replaces the old one.
        let check = unseal_file(&mut ctx, &file, Route::Auto)?;
        if check.as_slice() != self.key.as_ref() {
            return Err(BridgeError::Device {
                kind: SealKind::Tpm2,
                message:
                    "the re-sealed object did not give the root secret back; the old one was kept"
                        .into(),
            });
        }
        write_file(&self.config.dir, &file)?;
        tracing::info!(pcrs = ?self.config.pcrs, "re-sealed the root secret to the TPM for the current PCR values");
        self.report(&mut ctx, Some(&file))
    }

    fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BridgeError> {
        crate::soft_aead::seal(&self.key, aad, plaintext)
    }

    fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, BridgeError> {
        crate::soft_aead::open(&self.key, aad, blob)
            .ok_or(BridgeError::ForeignKeyring(SealKind::Tpm2))
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
