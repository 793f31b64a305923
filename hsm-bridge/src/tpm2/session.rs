//! Sessions with the TPM: every session that carries the root secret is salted to the
//! storage primary (SRK) and encrypts that secret as a command or response parameter, so
//! a sniffer on the bus between CPU and a discrete TPM sees only ciphertext.
//!
//! A salted session's key comes from a salt the ESAPI encrypts to the SRK's public key
//! (ECDH for this ECC SRK): only the TPM holding the SRK can derive it. The session is
//! not bound (binding adds an object's authValue to the key, which the SRK has none of).
//! Parameter encryption is AES-128-CFB with that session key: `decrypt` covers the first
//! command parameter (TPM2_Create's sensitive data), `encrypt` the first response
//! parameter (TPM2_Unseal's output).

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributes, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    EccPoint, Name, Public, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinition,
    SymmetricDefinitionObject,
};
use tss_esapi::Context;

use super::device;
use crate::BridgeError;

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

/// Runs `f` with the primary (SRK) loaded and its name, flushing it afterwards whatever
/// happens (swtpm and bare /dev/tpm0 have no resource manager).
pub(super) fn with_primary<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context, KeyHandle, &Name) -> Result<T, BridgeError>,
) -> Result<T, BridgeError> {
    let template = primary_template().map_err(|e| device("primary template", e))?;
    let primary = ctx
        .execute_with_nullauth_session(|c| {
            c.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map_err(|e| device("TPM2_CreatePrimary", e))?
        .key_handle;
    let out = ctx
        .tr_get_name(ObjectHandle::from(primary))
        .map_err(|e| device("SRK name", e))
        .and_then(|name| f(ctx, primary, &name));
    let _ = ctx.flush_context(ObjectHandle::from(primary));
    out
}

/// Which way the root secret crosses the bus in the command the session authorises.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Protect {
    /// The secret is the first command parameter (TPM2_Create).
    Command,
    /// The secret is the first response parameter (TPM2_Unseal).
    Response,
    /// Nothing: a policy session that only authorises. The TPM keys a session's parameter
    /// encryption with the authorised object's authValue too, which auto-unseal does not
    /// know (it is the recovery secret's), so the encryption rides on a second session.
    Nothing,
}

fn attributes(
    protect: Protect,
) -> (
    SessionAttributes,
    tss_esapi::attributes::SessionAttributesMask,
) {
    let b = SessionAttributesBuilder::new().with_continue_session(true);
    match protect {
        // TPM2_Create's first response parameter (outPrivate) is a TPM2B too.
        Protect::Command => b.with_decrypt(true).with_encrypt(true).build(),
        // TPM2_Unseal has no command parameters: `decrypt` there is TPM_RC_ATTRIBUTES.
        Protect::Response => b.with_encrypt(true).build(),
        Protect::Nothing => b.build(),
    }
}

/// Starts a session salted to `srk`, AES-128-CFB, SHA-256, with parameter encryption set
/// for `protect`. Flush it with [`flush`].
pub(super) fn start_salted(
    ctx: &mut Context,
    srk: KeyHandle,
    kind: SessionType,
    protect: Protect,
) -> Result<AuthSession, BridgeError> {
    let session = ctx
        .start_auth_session(
            Some(srk),
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| device("TPM2_StartAuthSession (salted)", e))?
        .ok_or_else(|| super::unavailable("the TPM returned no session"))?;
    let (attrs, mask) = attributes(protect);
    if let Err(e) = ctx.tr_sess_set_attributes(session, attrs, mask) {
        flush(ctx, session);
        return Err(device("session attributes", e));
    }
    Ok(session)
}

/// A trial policy session: only computes a policy digest, authorises nothing. It carries
/// no secret, so it needs no salt.
pub(super) fn start_trial(ctx: &mut Context) -> Result<PolicySession, BridgeError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| device("TPM2_StartAuthSession (trial)", e))?
        .ok_or_else(|| super::unavailable("the TPM returned no session"))?;
    PolicySession::try_from(session).map_err(|e| device("trial session", e))
}

pub(super) fn flush(ctx: &mut Context, session: AuthSession) {
    let _ = ctx.flush_context(ObjectHandle::from(SessionHandle::from(session)));
}

pub(super) fn flush_policy(ctx: &mut Context, session: PolicySession) {
    let _ = ctx.flush_context(ObjectHandle::from(SessionHandle::from(session)));
}
