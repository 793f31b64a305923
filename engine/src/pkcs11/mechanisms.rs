//! The mechanisms the token offers, computed from what the open boundary can do: a
//! signing or encryption mechanism is listed when [`can_sign`]/[`can_cipher`] holds for
//! at least one key algorithm as new keys are held (inside the HSM when the boundary keeps
//! keys, in software otherwise), with the key sizes of those algorithms. Key generation
//! and digests need nothing of the boundary.
//!
//! Key sizes are in bits for RSA and EC, in bytes for AES, and the parameter set
//! (`CKP_*`) for ML-DSA and ML-KEM, as PKCS#11 3.2 counts them.

use cryptoki_sys::*;
use hsm_bridge::Capabilities;

use crate::core::Core;
use crate::managed_keys::scheme::{
    can_cipher, can_sign, can_wrap, CipherScheme, Hash, SignScheme, WrapScheme,
};
use crate::managed_keys::{Algorithm, Protection};

/// One mechanism, as `C_GetMechanismInfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MechanismInfo {
    pub kind: CK_MECHANISM_TYPE,
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
}

const RSA: &[Algorithm] = &[Algorithm::Rsa2048, Algorithm::Rsa3072, Algorithm::Rsa4096];
const EC: &[Algorithm] = &[Algorithm::EcP256, Algorithm::EcP384];
const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

fn key_size(algorithm: Algorithm) -> CK_ULONG {
    match algorithm {
        Algorithm::Rsa2048 => 2048,
        Algorithm::Rsa3072 => 3072,
        Algorithm::Rsa4096 => 4096,
        Algorithm::EcP256 => 256,
        Algorithm::EcP384 => 384,
        Algorithm::Aes256 => 32,
        Algorithm::MlDsa65 => CKP_ML_DSA_65,
        Algorithm::MlKem768 => CKP_ML_KEM_768,
    }
}

/// How new keys of `algorithm` are held on a boundary with `capabilities`.
fn protection(algorithm: Algorithm, capabilities: &Capabilities) -> Protection {
    if capabilities.in_boundary_keys && algorithm.spec().is_some() {
        Protection::Hsm
    } else {
        Protection::Software
    }
}

fn pss(hash: Option<Hash>, digest: Hash) -> SignScheme {
    let salt_len = match digest {
        Hash::Sha1 => 20,
        Hash::Sha224 => 28,
        Hash::Sha256 => 32,
        Hash::Sha384 => 48,
        Hash::Sha512 => 64,
    };
    SignScheme::RsaPss {
        hash,
        digest,
        mgf: digest,
        salt_len,
    }
}

/// Sizes over the algorithms for which `usable` holds, and flags; `None` if none.
fn sized(
    kind: CK_MECHANISM_TYPE,
    algorithms: &[Algorithm],
    flags: CK_FLAGS,
    usable: impl Fn(Algorithm) -> bool,
) -> Option<MechanismInfo> {
    let sizes: Vec<CK_ULONG> = algorithms
        .iter()
        .filter(|a| usable(**a))
        .map(|a| key_size(*a))
        .collect();
    Some(MechanismInfo {
        kind,
        min_key_size: *sizes.iter().min()?,
        max_key_size: *sizes.iter().max()?,
        flags,
    })
}

/// The mechanisms of a boundary with `capabilities`.
pub fn mechanisms(capabilities: &Capabilities) -> Vec<MechanismInfo> {
    let signs = |scheme: SignScheme| {
        move |a: Algorithm| can_sign(a, protection(a, capabilities), capabilities, &scheme)
    };
    let ciphers = |scheme: CipherScheme| {
        move |a: Algorithm| can_cipher(a, protection(a, capabilities), capabilities, &scheme)
    };
    let wraps = |scheme: WrapScheme| {
        move |a: Algorithm| can_wrap(a, protection(a, capabilities), capabilities, scheme)
    };
    let sign = CKF_SIGN | CKF_VERIFY;
    let cipher = CKF_ENCRYPT | CKF_DECRYPT;
    let mut out: Vec<MechanismInfo> = [
        sized(
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            RSA,
            CKF_GENERATE_KEY_PAIR,
            |_| true,
        ),
        sized(
            CKM_EC_KEY_PAIR_GEN,
            EC,
            CKF_GENERATE_KEY_PAIR | EC_FLAGS,
            |_| true,
        ),
        sized(CKM_AES_KEY_GEN, &[Algorithm::Aes256], CKF_GENERATE, |_| {
            true
        }),
        sized(
            CKM_ML_DSA_KEY_PAIR_GEN,
            &[Algorithm::MlDsa65],
            CKF_GENERATE_KEY_PAIR,
            |_| true,
        ),
        sized(
            CKM_ML_KEM_KEY_PAIR_GEN,
            &[Algorithm::MlKem768],
            CKF_GENERATE_KEY_PAIR,
            |_| true,
        ),
        sized(
            CKM_SHA256_RSA_PKCS,
            RSA,
            sign,
            signs(SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha256),
            }),
        ),
        sized(
            CKM_SHA384_RSA_PKCS,
            RSA,
            sign,
            signs(SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha384),
            }),
        ),
        sized(
            CKM_SHA512_RSA_PKCS,
            RSA,
            sign,
            signs(SignScheme::RsaPkcs1 {
                hash: Some(Hash::Sha512),
            }),
        ),
        sized(CKM_RSA_PKCS_PSS, RSA, sign, signs(pss(None, Hash::Sha256))),
        sized(
            CKM_SHA256_RSA_PKCS_PSS,
            RSA,
            sign,
            signs(pss(Some(Hash::Sha256), Hash::Sha256)),
        ),
        sized(
            CKM_SHA384_RSA_PKCS_PSS,
            RSA,
            sign,
            signs(pss(Some(Hash::Sha384), Hash::Sha384)),
        ),
        sized(
            CKM_SHA512_RSA_PKCS_PSS,
            RSA,
            sign,
            signs(pss(Some(Hash::Sha512), Hash::Sha512)),
        ),
        sized(
            CKM_ECDSA,
            EC,
            sign | EC_FLAGS,
            signs(SignScheme::EcdsaRaw { hash: None }),
        ),
        sized(
            CKM_ECDSA_SHA256,
            EC,
            sign | EC_FLAGS,
            signs(SignScheme::EcdsaRaw {
                hash: Some(Hash::Sha256),
            }),
        ),
        sized(
            CKM_ECDSA_SHA384,
            EC,
            sign | EC_FLAGS,
            signs(SignScheme::EcdsaRaw {
                hash: Some(Hash::Sha384),
            }),
        ),
        sized(
            CKM_ECDSA_SHA512,
            EC,
            sign | EC_FLAGS,
            signs(SignScheme::EcdsaRaw {
                hash: Some(Hash::Sha512),
            }),
        ),
        sized(
            CKM_ML_DSA,
            &[Algorithm::MlDsa65],
            sign,
            signs(SignScheme::MlDsa {
                context: Vec::new(),
                deterministic: false,
            }),
        ),
        // Unwrapping with OAEP is decrypting the secret: the same boundary check.
        sized(CKM_RSA_PKCS_OAEP, RSA, cipher | CKF_UNWRAP, |a| {
            [Hash::Sha1, Hash::Sha256].into_iter().any(|h| {
                ciphers(CipherScheme::RsaOaep {
                    hash: h,
                    mgf: h,
                    label: Vec::new(),
                })(a)
            })
        }),
        // Never CKF_WRAP: no appliance key is extractable.
        sized(
            CKM_AES_KEY_WRAP,
            &[Algorithm::Aes256],
            CKF_UNWRAP,
            wraps(WrapScheme::AesKeyWrap),
        ),
        sized(
            CKM_AES_KEY_WRAP_KWP,
            &[Algorithm::Aes256],
            CKF_UNWRAP,
            wraps(WrapScheme::AesKeyWrapPad),
        ),
        // ML-KEM keys are always held in software.
        sized(
            CKM_ML_KEM,
            &[Algorithm::MlKem768],
            CKF_ENCAPSULATE | CKF_DECAPSULATE,
            |_| true,
        ),
        sized(
            CKM_AES_GCM,
            &[Algorithm::Aes256],
            cipher,
            ciphers(CipherScheme::AesGcm {
                iv: vec![0; 12],
                aad: Vec::new(),
                tag_len: 16,
            }),
        ),
        sized(
            CKM_AES_CBC_PAD,
            &[Algorithm::Aes256],
            cipher,
            ciphers(CipherScheme::AesCbcPad { iv: [0; 16] }),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    // CKM_RSA_PKCS both signs (a DigestInfo the caller made) and encrypts.
    let raw_sign = sized(
        CKM_RSA_PKCS,
        RSA,
        sign,
        signs(SignScheme::RsaPkcs1 { hash: None }),
    );
    let raw_cipher = sized(CKM_RSA_PKCS, RSA, cipher, ciphers(CipherScheme::RsaPkcs1));
    if let Some(m) = match (raw_sign, raw_cipher) {
        (Some(s), Some(c)) => Some(MechanismInfo {
            flags: s.flags | c.flags,
            min_key_size: s.min_key_size.min(c.min_key_size),
            max_key_size: s.max_key_size.max(c.max_key_size),
            ..s
        }),
        (s, c) => s.or(c),
    } {
        out.push(m);
    }
    for kind in [CKM_SHA256, CKM_SHA384, CKM_SHA512] {
        out.push(MechanismInfo {
            kind,
            min_key_size: 0,
            max_key_size: 0,
            flags: CKF_DIGEST,
        });
    }
    out.sort_by_key(|m| m.kind);
    out
}

impl Core {
    /// The PKCS#11 token's mechanisms now: none while sealed (there is no token).
    pub fn pkcs11_mechanisms(&self) -> Vec<MechanismInfo> {
        match self.root() {
            Ok(root) => mechanisms(&root.capabilities()),
            Err(_) => Vec::new(),
        }
    }
}
