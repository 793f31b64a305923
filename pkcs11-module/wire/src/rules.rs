//! What a mechanism requires of its key and its parameter, as the appliance accepts it.
//! Both sides apply these rules: the library at `C_*Init`, where PKCS#11 reports such
//! mistakes and no call is made (a round trip there would halve single-part throughput),
//! and the daemon when it decodes a call, as the authority. One copy keeps them from
//! drifting apart.

use crate::ck::*;
use crate::{Mechanism, Params};

/// The key type a mechanism takes; `None` for one that takes no key (digests) or that
/// the appliance does not know.
pub fn key_type(kind: CK_MECHANISM_TYPE) -> Option<CK_KEY_TYPE> {
    Some(match kind {
        CKM_RSA_PKCS
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
        | CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_RSA_PKCS_OAEP => CKK_RSA,
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => CKK_EC,
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_AES_GCM | CKM_AES_KEY_WRAP
        | CKM_AES_KEY_WRAP_KWP | CKM_AES_KEY_WRAP_PAD => CKK_AES,
        CKM_ML_DSA => CKK_ML_DSA,
        CKM_ML_KEM => CKK_ML_KEM,
        _ => return None,
    })
}

fn is_hash(kind: CK_MECHANISM_TYPE) -> bool {
    matches!(
        kind,
        CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512
    )
}

fn is_mgf(kind: CK_ULONG) -> bool {
    matches!(
        kind,
        CKG_MGF1_SHA1 | CKG_MGF1_SHA224 | CKG_MGF1_SHA256 | CKG_MGF1_SHA384 | CKG_MGF1_SHA512
    )
}

/// The hash a `CKM_SHA*_RSA_PKCS_PSS` mechanism is built on, which its parameter must
/// name; `None` for plain `CKM_RSA_PKCS_PSS` (any hash).
fn pss_own_hash(kind: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_TYPE> {
    Some(match kind {
        CKM_SHA1_RSA_PKCS_PSS => CKM_SHA_1,
        CKM_SHA224_RSA_PKCS_PSS => CKM_SHA224,
        CKM_SHA256_RSA_PKCS_PSS => CKM_SHA256,
        CKM_SHA384_RSA_PKCS_PSS => CKM_SHA384,
        CKM_SHA512_RSA_PKCS_PSS => CKM_SHA512,
        _ => return None,
    })
}

/// Why the appliance refuses a mechanism's parameter (`CKR_MECHANISM_PARAM_INVALID`), or
/// `None`: PSS and OAEP with a hash or MGF that does not exist (or, for
/// `CKM_SHA*_RSA_PKCS_PSS`, another hash than the mechanism's), GCM with a tag other than
/// 96 to 128 bits in whole bytes or an empty IV, CBC-PAD with an IV other than 16 bytes,
/// ML-DSA with a context over 255 bytes or an unknown hedging, and any of these with a
/// parameter of another kind. Mechanisms not named here are not judged.
pub fn param_problem(mechanism: &Mechanism) -> Option<&'static str> {
    let kind = mechanism.kind;
    match (kind, &mechanism.params) {
        (
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS,
            Params::Pss { hash, mgf, .. },
        ) => {
            if !is_hash(*hash) {
                Some("unknown hash")
            } else if pss_own_hash(kind).is_some_and(|own| own != *hash) {
                Some("the hash must be the mechanism's own")
            } else if !is_mgf(*mgf) {
                Some("unknown MGF")
            } else {
                None
            }
        }
        (CKM_RSA_PKCS_OAEP, Params::Oaep { hash, mgf, .. }) => {
            if !is_hash(*hash) {
                Some("unknown hash")
            } else if !is_mgf(*mgf) {
                Some("unknown MGF")
            } else {
                None
            }
        }
        (CKM_AES_GCM, Params::Gcm { iv, tag_bits, .. }) => {
            if !(96..=128).contains(tag_bits) || tag_bits % 8 != 0 {
                Some("the tag is 96 to 128 bits, whole bytes")
            } else if iv.is_empty() {
                Some("the IV is empty")
            } else {
                None
            }
        }
        (CKM_AES_CBC_PAD, Params::Iv(iv)) => (iv.len() != 16).then_some("the IV is 16 bytes"),
        (CKM_ML_DSA, Params::None) => None,
        (CKM_ML_DSA, Params::SignContext { hedge, context }) => {
            if context.len() > 255 {
                Some("the context is at most 255 bytes")
            } else if !matches!(
                *hedge,
                CKH_HEDGE_PREFERRED | CKH_HEDGE_REQUIRED | CKH_DETERMINISTIC_REQUIRED
            ) {
                Some("unknown hedging")
            } else {
                None
            }
        }
        (
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
            | CKM_RSA_PKCS_OAEP
            | CKM_AES_GCM
            | CKM_AES_CBC_PAD
            | CKM_ML_DSA,
            _,
        ) => Some("wrong parameter for this mechanism"),
        _ => None,
    }
}
