//! Managed-key versions as PKCS#11 objects.
//!
//! Each version is a public and a private object (RSA, EC, ML-DSA, ML-KEM) or one secret
//! object (AES). Identity: a key's base id is the `CKA_ID` given at generation (its
//! `pkcs11.id` label, lowercase hex), else the 16 bytes of its UUID. The primary
//! version's objects carry the base id and the key's name as `CKA_LABEL`; every other
//! version's carry `base id || "#" || version` and `name || "#" || version`, so an id
//! found once names one fixed version, whatever rotations follow.

use ::rsa::pkcs8::DecodePublicKey;
use ::rsa::traits::PublicKeyParts;
use cryptoki_sys::*;
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::Encode;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::{date, Attr, Handle, KeyClass, Object};
use crate::error::{EngineError, Result};
use crate::managed_keys::{Algorithm, KeyState, KeyVersion, ManagedKey, Origin, Usage};

/// The label holding the `CKA_ID` an application gave at generation.
pub const ID_LABEL: &str = "pkcs11.id";

/// DER OIDs of the curves (`CKA_EC_PARAMS`).
pub const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// id-ml-dsa-65 (FIPS 204) and id-alg-ml-kem-768 (FIPS 203), for `CKA_PUBLIC_KEY_INFO`.
const ML_DSA_65_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
const ML_KEM_768_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.2");

/// The key's base `CKA_ID`.
pub fn base_id(key: &ManagedKey) -> Vec<u8> {
    key.labels
        .get(ID_LABEL)
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_else(|| key.id.as_bytes().to_vec())
}

/// `CKA_ID` and `CKA_LABEL` of a version's objects.
pub fn version_identity(key: &ManagedKey, version: u32) -> (Vec<u8>, String) {
    let mut id = base_id(key);
    if version == key.primary_version {
        return (id, key.name.clone());
    }
    id.extend(format!("#{version}").bytes());
    (id, format!("{}#{version}", key.name))
}

/// The classes of objects each version of `algorithm` shows.
pub fn classes(algorithm: Algorithm) -> &'static [KeyClass] {
    if algorithm.is_asymmetric() {
        &[KeyClass::Public, KeyClass::Private]
    } else {
        &[KeyClass::Secret]
    }
}

pub fn key_type(algorithm: Algorithm) -> CK_KEY_TYPE {
    match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => CKK_RSA,
        Algorithm::EcP256 | Algorithm::EcP384 => CKK_EC,
        Algorithm::Aes256 => CKK_AES,
        Algorithm::MlDsa65 => CKK_ML_DSA,
        Algorithm::MlKem768 => CKK_ML_KEM,
    }
}

pub fn generation_mechanism(algorithm: Algorithm) -> CK_MECHANISM_TYPE {
    match algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => CKM_RSA_PKCS_KEY_PAIR_GEN,
        Algorithm::EcP256 | Algorithm::EcP384 => CKM_EC_KEY_PAIR_GEN,
        Algorithm::Aes256 => CKM_AES_KEY_GEN,
        Algorithm::MlDsa65 => CKM_ML_DSA_KEY_PAIR_GEN,
        Algorithm::MlKem768 => CKM_ML_KEM_KEY_PAIR_GEN,
    }
}

/// Every object of every version of a key that is not pending destruction.
pub fn key_objects(key: &ManagedKey) -> Result<Vec<Object>> {
    if key.state != KeyState::Enabled {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for v in &key.versions {
        for class in classes(key.algorithm) {
            out.push(version_object(key, v, *class)?);
        }
    }
    Ok(out)
}

/// One object of a key; a key pending destruction has none (`C_DestroyObject` took it).
pub fn key_object(key: &ManagedKey, version: u32, class: KeyClass) -> Result<Object> {
    let gone = || EngineError::NotFound(format!("no object {class:?} of {} v{version}", key.id));
    if key.state != KeyState::Enabled || !classes(key.algorithm).contains(&class) {
        return Err(gone());
    }
    let v = key.version(version).map_err(|_| gone())?;
    version_object(key, v, class)
}

/// What a version's public key says, decoded once for its attributes.
enum PublicParts {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    Ec {
        params: &'static [u8],
        point: Vec<u8>,
    },
    Pq {
        value: Vec<u8>,
        parameter_set: CK_ULONG,
    },
    None,
}

fn corrupt(key: &ManagedKey) -> EngineError {
    EngineError::Corrupt(format!("keys/meta/{}", key.id))
}

fn public_parts(key: &ManagedKey, public: Option<&[u8]>) -> Result<PublicParts> {
    let Some(public) = public else {
        return Ok(PublicParts::None);
    };
    Ok(match key.algorithm {
        Algorithm::Rsa2048 | Algorithm::Rsa3072 | Algorithm::Rsa4096 => {
            let pk = ::rsa::RsaPublicKey::from_public_key_der(public).map_err(|_| corrupt(key))?;
            PublicParts::Rsa {
                modulus: pk.n().to_bytes_be(),
                exponent: pk.e().to_bytes_be(),
            }
        }
        Algorithm::EcP256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p256::PublicKey::from_public_key_der(public).map_err(|_| corrupt(key))?;
            PublicParts::Ec {
                params: P256_OID,
                point: pk.to_encoded_point(false).as_bytes().to_vec(),
            }
        }
        Algorithm::EcP384 => {
            use p384::elliptic_curve::sec1::ToEncodedPoint;
            let pk = p384::PublicKey::from_public_key_der(public).map_err(|_| corrupt(key))?;
            PublicParts::Ec {
                params: P384_OID,
                point: pk.to_encoded_point(false).as_bytes().to_vec(),
            }
        }
        Algorithm::MlDsa65 => PublicParts::Pq {
            value: public.to_vec(),
            parameter_set: CKP_ML_DSA_65,
        },
        Algorithm::MlKem768 => PublicParts::Pq {
            value: public.to_vec(),
            parameter_set: CKP_ML_KEM_768,
        },
        Algorithm::Aes256 => PublicParts::None,
    })
}

/// `CKA_PUBLIC_KEY_INFO`: the stored SubjectPublicKeyInfo (RSA, EC) or one made for the
/// encoded post-quantum key.
fn public_key_info(key: &ManagedKey, public: &[u8]) -> Result<Vec<u8>> {
    let oid = match key.algorithm {
        Algorithm::MlDsa65 => ML_DSA_65_OID,
        Algorithm::MlKem768 => ML_KEM_768_OID,
        _ => return Ok(public.to_vec()),
    };
    let info = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: None,
        },
        subject_public_key: BitString::from_bytes(public).map_err(|_| corrupt(key))?,
    };
    info.to_der().map_err(|_| corrupt(key))
}

fn version_object(key: &ManagedKey, v: &KeyVersion, class: KeyClass) -> Result<Object> {
    let (id, label) = version_identity(key, v.version);
    let object_class = match class {
        KeyClass::Public => CKO_PUBLIC_KEY,
        KeyClass::Private => CKO_PRIVATE_KEY,
        KeyClass::Secret => CKO_SECRET_KEY,
    };
    // An imported secret existed in the clear outside the appliance.
    let local = v.origin == Origin::Generated;
    let generated_by = if local {
        generation_mechanism(key.algorithm)
    } else {
        CK_UNAVAILABLE_INFORMATION
    };
    let end = match (key.state, key.destroy_time) {
        (KeyState::PendingDestruction, Some(t)) => date(t),
        _ => Vec::new(),
    };
    let mut a = vec![
        Attr::ulong(CKA_CLASS, object_class),
        Attr::ulong(CKA_KEY_TYPE, key_type(key.algorithm)),
        Attr::bytes(CKA_ID, id),
        Attr::bytes(CKA_LABEL, label),
        Attr::bool(CKA_TOKEN, true),
        Attr::bool(CKA_PRIVATE, true),
        Attr::bool(CKA_MODIFIABLE, false),
        Attr::bool(CKA_COPYABLE, false),
        // The public half goes with its key: destroying the private or secret object
        // schedules the key's destruction.
        Attr::bool(CKA_DESTROYABLE, class != KeyClass::Public),
        Attr::bytes(CKA_START_DATE, date(v.create_time)),
        Attr::bytes(CKA_END_DATE, end),
        Attr::bool(CKA_DERIVE, false),
        Attr::bool(CKA_LOCAL, local),
        Attr::ulong(CKA_KEY_GEN_MECHANISM, generated_by),
    ];
    let signs = key.usage == Usage::SignVerify;
    let ciphers = key.usage == Usage::EncryptDecrypt && key.algorithm != Algorithm::MlKem768;
    let kem = key.algorithm == Algorithm::MlKem768;
    match class {
        KeyClass::Public => a.extend([
            Attr::bool(CKA_VERIFY, signs),
            Attr::bool(CKA_VERIFY_RECOVER, false),
            Attr::bool(CKA_ENCRYPT, ciphers),
            Attr::bool(CKA_WRAP, ciphers),
            Attr::bool(CKA_ENCAPSULATE, kem),
            Attr::bool(CKA_TRUSTED, false),
            Attr::bytes(CKA_SUBJECT, Vec::new()),
        ]),
        KeyClass::Private | KeyClass::Secret => a.extend([
            Attr::bool(CKA_SIGN, signs),
            Attr::bool(CKA_SIGN_RECOVER, false),
            Attr::bool(CKA_DECRYPT, ciphers),
            Attr::bool(CKA_UNWRAP, ciphers),
            Attr::bool(CKA_DECAPSULATE, kem),
            Attr::bool(CKA_SENSITIVE, true),
            Attr::bool(CKA_ALWAYS_SENSITIVE, local),
            Attr::bool(CKA_EXTRACTABLE, false),
            Attr::bool(CKA_NEVER_EXTRACTABLE, local),
            Attr::bool(CKA_WRAP_WITH_TRUSTED, false),
            Attr::bool(CKA_ALWAYS_AUTHENTICATE, false),
        ]),
    }
    if class == KeyClass::Secret {
        a.extend([
            Attr::bool(CKA_ENCRYPT, ciphers),
            Attr::bool(CKA_WRAP, ciphers),
            Attr::bool(CKA_VERIFY, false),
            Attr::bool(CKA_TRUSTED, false),
            Attr::ulong(CKA_VALUE_LEN, 32),
        ]);
        return Ok(Object {
            handle: handle(key, v, class),
            attributes: a,
            sensitive: vec![CKA_VALUE],
        });
    }
    if class == KeyClass::Private {
        a.push(Attr::bytes(CKA_SUBJECT, Vec::new()));
    }
    if let Some(public) = v.public_key.as_deref() {
        a.push(Attr::bytes(
            CKA_PUBLIC_KEY_INFO,
            public_key_info(key, public)?,
        ));
    }
    let sensitive = match public_parts(key, v.public_key.as_deref())? {
        PublicParts::Rsa { modulus, exponent } => {
            a.push(Attr::ulong(
                CKA_MODULUS_BITS,
                (modulus.len() * 8) as CK_ULONG,
            ));
            a.push(Attr::bytes(CKA_MODULUS, modulus));
            a.push(Attr::bytes(CKA_PUBLIC_EXPONENT, exponent));
            vec![
                CKA_PRIVATE_EXPONENT,
                CKA_PRIME_1,
                CKA_PRIME_2,
                CKA_EXPONENT_1,
                CKA_EXPONENT_2,
                CKA_COEFFICIENT,
            ]
        }
        PublicParts::Ec { params, point } => {
            a.push(Attr::bytes(CKA_EC_PARAMS, params));
            if class == KeyClass::Public {
                let point = OctetString::new(point)
                    .and_then(|p| p.to_der())
                    .map_err(|_| corrupt(key))?;
                a.push(Attr::bytes(CKA_EC_POINT, point));
            }
            vec![CKA_VALUE]
        }
        PublicParts::Pq {
            value,
            parameter_set,
        } => {
            a.push(Attr::ulong(CKA_PARAMETER_SET, parameter_set));
            if class == KeyClass::Public {
                a.push(Attr::bytes(CKA_VALUE, value));
                Vec::new()
            } else {
                vec![CKA_VALUE, CKA_SEED]
            }
        }
        PublicParts::None => vec![CKA_VALUE],
    };
    Ok(Object {
        handle: handle(key, v, class),
        attributes: a,
        sensitive: if class == KeyClass::Public {
            Vec::new()
        } else {
            sensitive
        },
    })
}

fn handle(key: &ManagedKey, v: &KeyVersion, class: KeyClass) -> Handle {
    Handle::Key {
        key: key.id,
        version: v.version,
        class,
    }
}
