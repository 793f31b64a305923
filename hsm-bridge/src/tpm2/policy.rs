//! The sealed object's authorisation policy: survives planned PCR changes, and never
//! strands the data when PCRs change unplanned.
//!
//! ```text
//! authPolicy = PolicyOR( PolicyAuthorize(appliance policy key),   -- auto-unseal
//!                        PolicyAuthValue )                        -- recovery
//! ```
//!
//! - Auto-unseal takes the first branch: `PolicyPCR(selection, digest)` for PCR values an
//!   entry of the policy file names, then `PolicyAuthorize` with the appliance's
//!   signature over that PCR policy (checked by the TPM with `TPM2_VerifySignature`).
//!   The appliance signs the PCR values of the next boot before an update
//!   (`sys/seal-policy/authorize-pcrs`), as systemd's signed PCR policies do, so the
//!   update needs no re-seal. The key's private half lives under the barrier (only an
//!   unsealed appliance can sign); its public half and the signatures sit in the policy
//!   file beside the sealed blob, since they are needed before unseal.
//! - Recovery takes the second branch: the object's authValue is derived (HKDF-SHA256)
//!   from the recovery key that the recovery shares reconstruct, so `bao operator unseal`
//!   with the recovery keys opens the sealed object, on this TPM only, whatever the PCRs
//!   hold. An attacker without the recovery keys gains nothing from the branch: the
//!   authValue is 256 bits of HKDF output.

use std::collections::BTreeMap;

use hkdf::Hkdf;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_VERIFIED};
use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    Auth, Digest, DigestList, EccParameter, EccPoint, EccScheme, EccSignature, HashScheme, Name,
    Nonce, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Public, PublicBuilder,
    PublicEccParametersBuilder, Signature as TpmSignature, VerifiedTicket,
};
use tss_esapi::tss2_esys::TPMT_TK_VERIFIED;
use tss_esapi::Context;
use zeroize::Zeroizing;

use super::device;
use super::session::{flush_policy, start_trial};
use crate::BridgeError;

pub(super) fn pcr_slot(index: u8) -> Result<PcrSlot, BridgeError> {
    let bit = 1u32
        .checked_shl(u32::from(index))
        .filter(|_| index < 24)
        .ok_or_else(|| BridgeError::InvalidConfig(format!("PCR {index} is not 0-23")))?;
    PcrSlot::try_from(bit).map_err(|_| BridgeError::InvalidConfig(format!("PCR {index}")))
}

pub(super) fn pcr_selection(pcrs: &[u8]) -> Result<PcrSelectionList, BridgeError> {
    let slots = pcrs
        .iter()
        .map(|p| pcr_slot(*p))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| BridgeError::InvalidConfig(format!("pcrs: {e}")))
}

/// The SHA-256 bank's current values of `pcrs`, one read per PCR (a read answers at most
/// eight digests, and one at a time keeps the index attached to each value).
pub(super) fn read_pcrs(
    ctx: &mut Context,
    pcrs: &[u8],
) -> Result<BTreeMap<u8, Vec<u8>>, BridgeError> {
    let mut out = BTreeMap::new();
    for &p in pcrs {
        let selection = pcr_selection(&[p])?;
        let (_, _, digests) = ctx
            .execute_without_session(|c| c.pcr_read(selection))
            .map_err(|e| device("TPM2_PCR_Read", e))?;
        let value = digests
            .value()
            .first()
            .ok_or_else(|| device_msg(format!("the TPM has no SHA-256 value for PCR {p}")))?;
        out.insert(p, value.value().to_vec());
    }
    Ok(out)
}

fn device_msg(message: String) -> BridgeError {
    BridgeError::Device {
        kind: crate::SealKind::Tpm2,
        message,
    }
}

/// `TPM2_PCR_Extend` in software: what a PCR holds after `digest` is extended into it.
pub(super) fn extend(value: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(value);
    h.update(digest);
    h.finalize().to_vec()
}

/// PolicyPCR's pcrDigest: the hash of the selected values in selection order (ascending).
fn pcr_digest(values: &BTreeMap<u8, Vec<u8>>) -> Result<Digest, BridgeError> {
    let mut h = Sha256::new();
    for v in values.values() {
        h.update(v);
    }
    Digest::try_from(h.finalize().to_vec()).map_err(|e| device("PCR digest", e))
}

/// The policy digest `PolicyPCR` gives for these PCR values: what the appliance signs.
/// A trial session takes the given pcrDigest without comparing it to the PCRs, so this
/// works for the values of a boot that has not happened yet.
pub(super) fn pcr_policy(
    ctx: &mut Context,
    values: &BTreeMap<u8, Vec<u8>>,
) -> Result<Digest, BridgeError> {
    let pcrs: Vec<u8> = values.keys().copied().collect();
    let selection = pcr_selection(&pcrs)?;
    let digest = pcr_digest(values)?;
    let trial = start_trial(ctx)?;
    let out = ctx
        .policy_pcr(trial, digest, selection)
        .and_then(|_| ctx.policy_get_digest(trial))
        .map_err(|e| device("TPM2_PolicyPCR (trial)", e));
    flush_policy(ctx, trial);
    out
}

pub(super) fn signing_key(bytes: &[u8]) -> Result<SigningKey, BridgeError> {
    SigningKey::from_slice(bytes).map_err(|_| {
        BridgeError::InvalidConfig("the stored seal policy key is not a P-256 key".into())
    })
}

/// A new appliance policy key (the P-256 scalar), to be kept under the barrier.
pub(super) fn generate_key() -> Zeroizing<Vec<u8>> {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    Zeroizing::new(key.to_bytes().to_vec())
}

/// The public half, SEC1 uncompressed, as the policy file keeps it.
pub(super) fn public_point(key: &SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

/// aHash of `TPM2_PolicyAuthorize`: H(approvedPolicy || policyRef); policyRef is empty.
fn authorize_hash(approved: &Digest) -> Vec<u8> {
    Sha256::digest(approved.value()).to_vec()
}

/// Signs an approved policy (r || s, 64 bytes).
pub(super) fn sign(key: &SigningKey, approved: &Digest) -> Result<Vec<u8>, BridgeError> {
    let sig: Signature = key
        .sign_prehash(&authorize_hash(approved))
        .map_err(|_| BridgeError::Random)?;
    Ok(sig.to_bytes().to_vec())
}

/// The policy key's public half as a TPM public area (ECDSA-SHA256 only).
fn tpm_public(sec1: &[u8]) -> Result<Public, BridgeError> {
    let bad =
        || BridgeError::InvalidConfig("the seal policy file's public key is malformed".into());
    if sec1.len() != 65 || sec1[0] != 4 {
        return Err(bad());
    }
    let x = EccParameter::try_from(sec1[1..33].to_vec()).map_err(|_| bad())?;
    let y = EccParameter::try_from(sec1[33..].to_vec()).map_err(|_| bad())?;
    let attrs = ObjectAttributesBuilder::new()
        .with_sign_encrypt(true)
        .with_user_with_auth(true)
        .build()
        .map_err(|e| device("policy key attributes", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(
                EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
                EccCurve::NistP256,
            )
            .build()
            .map_err(|e| device("policy key parameters", e))?,
        )
        .with_ecc_unique_identifier(EccPoint::new(x, y))
        .build()
        .map_err(|e| device("policy key public", e))
}

/// The policy key, loaded (public half only) in the owner hierarchy: a key loaded in the
/// null hierarchy would get null tickets from VerifySignature, which PolicyAuthorize
/// refuses. Flush the handle after use.
pub(super) struct LoadedPolicyKey {
    pub handle: KeyHandle,
    pub name: Name,
}

pub(super) fn load_policy_key(
    ctx: &mut Context,
    sec1: &[u8],
) -> Result<LoadedPolicyKey, BridgeError> {
    let public = tpm_public(sec1)?;
    let handle = ctx
        .execute_without_session(|c| c.load_external_public(public, Hierarchy::Owner))
        .map_err(|e| device("TPM2_LoadExternal (policy key)", e))?;
    match ctx.tr_get_name(ObjectHandle::from(handle)) {
        Ok(name) => Ok(LoadedPolicyKey { handle, name }),
        Err(e) => {
            let _ = ctx.flush_context(ObjectHandle::from(handle));
            Err(device("policy key name", e))
        }
    }
}

pub(super) fn unload(ctx: &mut Context, key: LoadedPolicyKey) {
    let _ = ctx.flush_context(ObjectHandle::from(key.handle));
}

/// The sealed object's authValue: only the recovery key (reconstructed from the recovery
/// shares) yields it.
pub(super) fn recovery_auth(recovery_key: &[u8]) -> Result<Auth, BridgeError> {
    let hk = Hkdf::<Sha256>::new(Some(b"ironseal tpm2 seal"), recovery_key);
    let mut okm = Zeroizing::new(vec![0u8; 32]);
    hk.expand(b"sealed object authValue from the recovery key", &mut okm)
        .map_err(|_| BridgeError::Random)?;
    Auth::try_from(okm.to_vec()).map_err(|e| device("recovery auth", e))
}

/// The two branch digests of the object's PolicyOR.
pub(super) struct Branches {
    authorize: Digest,
    auth_value: Digest,
}

impl Branches {
    fn list(&self) -> Result<DigestList, BridgeError> {
        let mut list = DigestList::new();
        list.add(self.authorize.clone())
            .and_then(|_| list.add(self.auth_value.clone()))
            .map_err(|e| device("policy digests", e))?;
        Ok(list)
    }
}

fn null_ticket() -> Result<VerifiedTicket, BridgeError> {
    VerifiedTicket::try_from(TPMT_TK_VERIFIED {
        tag: TPM2_ST_VERIFIED,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| device("ticket", e))
}

/// Runs `apply` on a fresh trial session and returns the resulting digest.
fn trial(
    ctx: &mut Context,
    apply: impl FnOnce(&mut Context, PolicySession) -> tss_esapi::Result<()>,
    what: &str,
) -> Result<Digest, BridgeError> {
    let s = start_trial(ctx)?;
    let out = apply(ctx, s)
        .and_then(|_| ctx.policy_get_digest(s))
        .map_err(|e| device(what, e));
    flush_policy(ctx, s);
    out
}

/// Computes both branches on the TPM (trial sessions: the TPM does the policy hashing,
/// so the digests are exactly what it will compare at unseal).
pub(super) fn branches(ctx: &mut Context, key_name: &Name) -> Result<Branches, BridgeError> {
    let ticket = null_ticket()?;
    let authorize = trial(
        ctx,
        |c, s| c.policy_authorize(s, Digest::default(), Nonce::default(), key_name, ticket),
        "TPM2_PolicyAuthorize (trial)",
    )?;
    let auth_value = trial(
        ctx,
        |c, s| c.policy_auth_value(s),
        "TPM2_PolicyAuthValue (trial)",
    )?;
    Ok(Branches {
        authorize,
        auth_value,
    })
}

/// The sealed object's authPolicy.
pub(super) fn object_policy(ctx: &mut Context, b: &Branches) -> Result<Digest, BridgeError> {
    let list = b.list()?;
    trial(ctx, |c, s| c.policy_or(s, list), "TPM2_PolicyOR (trial)")
}

/// Satisfies the auto-unseal branch on `session`: the PCRs must hold `values` now, and
/// `signature` must be the policy key's over that PCR policy.
pub(super) fn satisfy_authorized(
    ctx: &mut Context,
    session: PolicySession,
    key: &LoadedPolicyKey,
    values: &BTreeMap<u8, Vec<u8>>,
    signature: &[u8],
    b: &Branches,
) -> Result<(), BridgeError> {
    let pcrs: Vec<u8> = values.keys().copied().collect();
    ctx.policy_pcr(session, pcr_digest(values)?, pcr_selection(&pcrs)?)
        .map_err(|e| device("TPM2_PolicyPCR", e))?;
    let approved = ctx
        .policy_get_digest(session)
        .map_err(|e| device("TPM2_PolicyGetDigest", e))?;
    if signature.len() != 64 {
        return Err(device_msg(
            "a signature in the seal policy file is malformed".into(),
        ));
    }
    let r = EccParameter::try_from(signature[..32].to_vec()).map_err(|e| device("signature", e))?;
    let s = EccParameter::try_from(signature[32..].to_vec()).map_err(|e| device("signature", e))?;
    let sig = TpmSignature::EcDsa(
        EccSignature::create(HashingAlgorithm::Sha256, r, s).map_err(|e| device("signature", e))?,
    );
    let ahash =
        Digest::try_from(authorize_hash(&approved)).map_err(|e| device("policy hash", e))?;
    let ticket = ctx
        .execute_without_session(|c| c.verify_signature(key.handle, ahash, sig))
        .map_err(|e| device("TPM2_VerifySignature (signed PCR policy)", e))?;
    ctx.policy_authorize(session, approved, Nonce::default(), &key.name, ticket)
        .map_err(|e| device("TPM2_PolicyAuthorize", e))?;
    ctx.policy_or(session, b.list()?)
        .map_err(|e| device("TPM2_PolicyOR", e))
}

/// Satisfies the recovery branch; the caller sets the object's authValue with
/// `tr_set_auth` so the ESAPI mixes it into the session HMAC.
pub(super) fn satisfy_recovery(
    ctx: &mut Context,
    session: PolicySession,
    b: &Branches,
) -> Result<(), BridgeError> {
    ctx.policy_auth_value(session)
        .map_err(|e| device("TPM2_PolicyAuthValue", e))?;
    ctx.policy_or(session, b.list()?)
        .map_err(|e| device("TPM2_PolicyOR", e))
}
