//! The root key: found by label and checked before use, or made inside the token.
//!
//! A root key found by label is checked before use: exactly one object under the label,
//! an AES-256 secret key, `CKA_SENSITIVE` and `CKA_ALWAYS_SENSITIVE`, not
//! `CKA_EXTRACTABLE` and `CKA_NEVER_EXTRACTABLE`; anything else is refused with a seal
//! error (never used, never shadowed by a second key), so an init run again after a crash
//! reuses the key the first attempt made, and a key planted under the label is refused.

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::config::Pkcs11Config;
use super::error::{describe, device, refused, unavailable};
use super::raw::{
    generate_root_with_unwrap_template, unwrap_template, FORCED_ON_EXPORT_UNWRAP, FORCED_ON_UNWRAP,
};
use crate::{BridgeError, OpenMode, SealFault};

/// The root key on `token_label`, made there when it is missing and `mode` and the
/// configuration allow it.
pub(super) fn find_or_create(
    session: &Session,
    config: &Pkcs11Config,
    token_label: &str,
    mode: OpenMode,
) -> Result<ObjectHandle, BridgeError> {
    let key = match find_root_key(session, &config.key_label, token_label, "root key")? {
        Some(k) => k,
        None if mode == OpenMode::CreateIfMissing && config.generate_key => {
            let k = generate_root_key(&config.lib, session, &config.key_label)?;
            tracing::info!(token = %token_label, key_label = %config.key_label, "generated the root key inside the HSM");
            k
        }
        None if mode == OpenMode::CreateIfMissing => {
            return Err(refused(
                SealFault::DeviceMismatch,
                format!(
                    "no AES key labelled {:?} on token {token_label:?} and generate_key is false: create it in the HSM or set generate_key = true",
                    config.key_label
                ),
            ))
        }
        None => {
            return Err(refused(
                SealFault::DeviceMismatch,
                format!(
                    "no AES key labelled {:?} on token {token_label:?}: this data dir was sealed by another HSM token, or the root key was deleted; restore the token or use the recovery keys",
                    config.key_label
                ),
            ))
        }
    };
    log_unwrap_template(&config.lib, session, key);
    Ok(key)
}

/// The root key's handle, for re-finding it on a fresh session (already verified).
pub(super) fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, CkError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    Ok(found.into_iter().next())
}

/// Finds the root key by label and checks it is one the appliance may trust. Every object
/// under the label counts, whatever its class: a second object would make "the root key"
/// ambiguous (an init killed after generating one and retried must reuse it, never add
/// another), and an object someone else created there with unsafe attributes must be
/// refused, not used nor shadowed by a fresh key.
fn find_root_key(
    session: &Session,
    label: &str,
    token: &str,
    role: &str,
) -> Result<Option<ObjectHandle>, BridgeError> {
    let found = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(|e| unavailable(format!("C_FindObjects failed: {}", describe(&e))))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => {
            check_root_key(session, *one, label, token, role)?;
            Ok(Some(*one))
        }
        more => Err(refused(
            SealFault::RootKeyAmbiguous,
            format!(
                "{} objects on token {token:?} carry the {role} label {label:?}, so which one is the appliance's is ambiguous: remove the ones that are not its {role} (or configure another key_label)",
                more.len()
            ),
        )),
    }
}

/// Refuses a root key whose value is, or once was, readable or movable out of the token.
fn check_root_key(
    session: &Session,
    key: ObjectHandle,
    label: &str,
    token: &str,
    role: &str,
) -> Result<(), BridgeError> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| device("C_GetAttributeValue (root key)", e))?;
    let (mut class, mut key_type, mut len) = (None, None, None);
    let mut flags = std::collections::HashMap::new();
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::ValueLen(l) => len = Some(u64::from(l)),
            Attribute::Sensitive(b) => {
                flags.insert("CKA_SENSITIVE", b);
            }
            Attribute::Extractable(b) => {
                flags.insert("CKA_EXTRACTABLE", b);
            }
            Attribute::AlwaysSensitive(b) => {
                flags.insert("CKA_ALWAYS_SENSITIVE", b);
            }
            Attribute::NeverExtractable(b) => {
                flags.insert("CKA_NEVER_EXTRACTABLE", b);
            }
            Attribute::Encrypt(b) => {
                flags.insert("CKA_ENCRYPT", b);
            }
            Attribute::Decrypt(b) => {
                flags.insert("CKA_DECRYPT", b);
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    if class != Some(ObjectClass::SECRET_KEY) || key_type != Some(KeyType::AES) {
        problems.push("it is not an AES secret key".to_string());
    } else if len != Some(32) {
        problems.push(format!(
            "it is AES-{} rather than AES-256",
            len.map_or_else(|| "?".into(), |l| (l * 8).to_string())
        ));
    }
    // ALWAYS_SENSITIVE and NEVER_EXTRACTABLE: a key that was readable or extractable
    // once may have a copy outside the token, whatever its flags say now.
    for (name, want) in [
        ("CKA_SENSITIVE", true),
        ("CKA_EXTRACTABLE", false),
        ("CKA_ALWAYS_SENSITIVE", true),
        ("CKA_NEVER_EXTRACTABLE", true),
        ("CKA_ENCRYPT", true),
        ("CKA_DECRYPT", true),
    ] {
        if class == Some(ObjectClass::SECRET_KEY) && flags.get(name) != Some(&want) {
            problems.push(format!("{name} is not {want}"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(refused(
        SealFault::RootKeyUnsafe,
        format!(
            "the object labelled {label:?} on token {token:?} is not a safe {role} ({}): the appliance will not use it; generate a non-extractable, sensitive AES-256 key under this label, or configure another key_label",
            problems.join(", ")
        ),
    ))
}

/// Says in the log whether the root key forces safe attributes on what it unwraps.
fn log_unwrap_template(lib: &std::path::Path, session: &Session, key: ObjectHandle) {
    match unwrap_template(lib, session.handle(), key.handle()) {
        Ok(Some(t)) if FORCED_ON_UNWRAP.iter().all(|f| t.contains(f)) => {
            tracing::debug!(
                capability = "unwrap_template",
                supported = true,
                "the HSM root key's CKA_UNWRAP_TEMPLATE forces CKA_SENSITIVE and non-extractable"
            );
        }
        Ok(_) => {
            tracing::warn!(capability = "unwrap_template", supported = false, "the HSM root key has no CKA_UNWRAP_TEMPLATE forcing CKA_SENSITIVE and non-extractable (made elsewhere, or the token does not keep it): keys it unwraps rely on the appliance's own template");
        }
        Err(e) => {
            tracing::warn!(capability = "unwrap_template", error = %e, "cannot read the HSM root key's CKA_UNWRAP_TEMPLATE");
        }
    }
}

/// The export key beside the root key (label `<key_label>-export`), checked like the root
/// key, made when missing if the configuration lets the appliance make keys. It wraps the
/// managed keys created exportable; its `CKA_UNWRAP_TEMPLATE` forces only
/// `CKA_SENSITIVE`, so their blobs can be unwrapped extractable (never readable) for a
/// BYOK wrap, while the root key keeps every other managed key unextractable.
pub(super) fn find_or_create_export_key(
    lib: &std::path::Path,
    session: &Session,
    config_label: &str,
    generate: bool,
    token: &str,
) -> Result<ObjectHandle, BridgeError> {
    let label = format!("{config_label}-export");
    if let Some(k) = find_root_key(session, &label, token, "export key")? {
        return Ok(k);
    }
    if !generate {
        return Err(refused(
            SealFault::DeviceMismatch,
            format!(
                "no AES key labelled {label:?} on token {token:?} and generate_key is false: create a non-extractable, sensitive AES-256 key with CKA_WRAP and CKA_UNWRAP under that label for exportable managed keys, or set generate_key = true"
            ),
        ));
    }
    let key = match generate_root_with_unwrap_template(
        lib,
        session.handle(),
        label.as_bytes(),
        &FORCED_ON_EXPORT_UNWRAP,
    ) {
        Ok(k) => k,
        Err(why) => {
            tracing::warn!(capability = "unwrap_template", supported = false, reason = %why, "the HSM did not take CKA_UNWRAP_TEMPLATE on the export key; keys it unwraps rely on the appliance's own template");
            plain_wrapping_key(session, &label)?
        }
    };
    tracing::info!(token = %token, key_label = %label, "generated the export key inside the HSM");
    Ok(key)
}

/// Makes the root key. Where the token takes `CKA_UNWRAP_TEMPLATE`, the key forces
/// `CKA_SENSITIVE=true, CKA_EXTRACTABLE=false` on everything unwrapped with it, so even a
/// stolen PIN cannot unwrap a stored managed-key blob into a key that could be wrapped
/// out; where it does not, the key is made without and the log says so.
fn generate_root_key(
    lib: &std::path::Path,
    session: &Session,
    label: &str,
) -> Result<ObjectHandle, BridgeError> {
    match generate_root_with_unwrap_template(
        lib,
        session.handle(),
        label.as_bytes(),
        &FORCED_ON_UNWRAP,
    ) {
        Ok(key) => {
            tracing::info!(
                capability = "unwrap_template",
                supported = true,
                "the HSM root key forces CKA_SENSITIVE and non-extractable on every key it unwraps"
            );
            Ok(key)
        }
        Err(why) => {
            tracing::warn!(capability = "unwrap_template", supported = false, reason = %why, "the HSM did not take CKA_UNWRAP_TEMPLATE on the root key; keys it unwraps rely on the appliance's own unwrap template");
            plain_wrapping_key(session, label)
        }
    }
}

/// An AES-256 wrapping key on the token without `CKA_UNWRAP_TEMPLATE`.
fn plain_wrapping_key(session: &Session, label: &str) -> Result<ObjectHandle, BridgeError> {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Modifiable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                // Managed-key blobs are stored wrapped by the root key (C_WrapKey).
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(label.as_bytes().to_vec()),
            ],
        )
        .map_err(|e| device("C_GenerateKey (AES-256 wrapping key)", e))
}
