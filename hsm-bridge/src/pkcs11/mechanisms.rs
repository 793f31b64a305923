//! What the token does with the managed keys it holds, found out once per open token:
//! the mechanism list and flags (`C_GetMechanismList`, `C_GetMechanismInfo`) for most,
//! and for RSA-OAEP a round trip per hash on a throw-away key pair, because tokens list
//! `CKM_RSA_PKCS_OAEP` and then refuse some of its parameters (SoftHSM2 2.6 answers
//! `CKR_ARGUMENTS_BAD` to anything but SHA-1, see DESIGN.md).

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;

use super::error::describe;
use super::Pkcs11Root;
use crate::{HashAlg, Mechanisms};

/// The message each OAEP probe encrypts and must read back.
const PROBE: &[u8] = b"ironseal oaep probe";
/// The label of the OAEP label probe.
const PROBE_LABEL: &[u8] = b"ironseal";

pub(super) fn hash_type(hash: HashAlg) -> MechanismType {
    match hash {
        HashAlg::Sha1 => MechanismType::SHA1,
        HashAlg::Sha224 => MechanismType::SHA224,
        HashAlg::Sha256 => MechanismType::SHA256,
        HashAlg::Sha384 => MechanismType::SHA384,
        HashAlg::Sha512 => MechanismType::SHA512,
    }
}

pub(super) fn mgf_type(hash: HashAlg) -> PkcsMgfType {
    match hash {
        HashAlg::Sha1 => PkcsMgfType::MGF1_SHA1,
        HashAlg::Sha224 => PkcsMgfType::MGF1_SHA224,
        HashAlg::Sha256 => PkcsMgfType::MGF1_SHA256,
        HashAlg::Sha384 => PkcsMgfType::MGF1_SHA384,
        HashAlg::Sha512 => PkcsMgfType::MGF1_SHA512,
    }
}

/// `CKM_SHA*_RSA_PKCS` for a hash.
pub(super) fn rsa_pkcs_with(hash: HashAlg) -> Mechanism<'static> {
    match hash {
        HashAlg::Sha1 => Mechanism::Sha1RsaPkcs,
        HashAlg::Sha224 => Mechanism::Sha224RsaPkcs,
        HashAlg::Sha256 => Mechanism::Sha256RsaPkcs,
        HashAlg::Sha384 => Mechanism::Sha384RsaPkcs,
        HashAlg::Sha512 => Mechanism::Sha512RsaPkcs,
    }
}

pub(super) fn oaep(hash: HashAlg, mgf: HashAlg, label: &[u8]) -> Mechanism<'_> {
    let source = if label.is_empty() {
        PkcsOaepSource::empty()
    } else {
        PkcsOaepSource::data_specified(label)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash_type(hash), mgf_type(mgf), source))
}

impl Pkcs11Root {
    /// The token's mechanisms for managed keys; measured on first use, then kept.
    pub(super) fn mechanisms(&self) -> Mechanisms {
        *self.mechanisms.get_or_init(|| {
            let found = self.measure();
            tracing::info!(mechanisms = ?found, token = %self.token_label, "HSM mechanisms for managed keys");
            found
        })
    }

    fn measure(&self) -> Mechanisms {
        let listed = match self.ctx.get_mechanism_list(self.slot) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %describe(&e), "C_GetMechanismList failed: no in-boundary mechanisms");
                return Mechanisms::empty();
            }
        };
        let info = |m: MechanismType| {
            if listed.contains(&m) {
                self.ctx.get_mechanism_info(self.slot, m).ok()
            } else {
                None
            }
        };
        let signs = |m| info(m).is_some_and(|i| i.sign());
        let decrypts = |m| info(m).is_some_and(|i| i.decrypt());
        let both = |m| info(m).is_some_and(|i| i.encrypt() && i.decrypt());
        let mut found = Mechanisms::empty();
        let mut add = |ok: bool, m: Mechanisms| {
            if ok {
                found = found.with(m);
            }
        };
        add(signs(MechanismType::RSA_PKCS), Mechanisms::RSA_PKCS_SIGN);
        for (hash, m) in [
            (HashAlg::Sha1, MechanismType::SHA1_RSA_PKCS),
            (HashAlg::Sha224, MechanismType::SHA224_RSA_PKCS),
            (HashAlg::Sha256, MechanismType::SHA256_RSA_PKCS),
            (HashAlg::Sha384, MechanismType::SHA384_RSA_PKCS),
            (HashAlg::Sha512, MechanismType::SHA512_RSA_PKCS),
        ] {
            add(signs(m), Mechanisms::rsa_pkcs_hash_sign(hash));
        }
        add(signs(MechanismType::RSA_PKCS_PSS), Mechanisms::RSA_PSS_SIGN);
        add(signs(MechanismType::ECDSA), Mechanisms::ECDSA_SIGN);
        add(
            decrypts(MechanismType::RSA_PKCS),
            Mechanisms::RSA_PKCS_DECRYPT,
        );
        add(both(MechanismType::AES_GCM), Mechanisms::AES_GCM);
        add(both(MechanismType::AES_CBC_PAD), Mechanisms::AES_CBC_PAD);
        if decrypts(MechanismType::RSA_PKCS_OAEP) {
            match self.with_session(probe_oaep) {
                Ok(oaep) => found = found.with(oaep),
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "the RSA-OAEP probe failed: OAEP decryption counted as SHA-1 only");
                    found = found.with(Mechanisms::rsa_oaep_decrypt(HashAlg::Sha1));
                }
            }
        }
        found
    }
}

/// Which OAEP parameters survive an encrypt/decrypt round trip on a session key pair.
fn probe_oaep(s: &Session) -> Result<Mechanisms, CkError> {
    let (public, private) = s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(2048u64.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Encrypt(true),
        ],
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
        ],
    )?;
    let round_trip = |m: &Mechanism<'_>| {
        s.encrypt(m, public, PROBE)
            .and_then(|ct| s.decrypt(m, private, &ct))
            .is_ok_and(|plain| plain == PROBE)
    };
    let mut found = Mechanisms::empty();
    for hash in HashAlg::ALL {
        if round_trip(&oaep(hash, hash, &[])) {
            found = found.with(Mechanisms::rsa_oaep_decrypt(hash));
        }
    }
    if round_trip(&oaep(HashAlg::Sha1, HashAlg::Sha1, PROBE_LABEL)) {
        found = found.with(Mechanisms::RSA_OAEP_LABEL);
    }
    destroy(s, [public, private]);
    Ok(found)
}

fn destroy(s: &Session, objects: impl IntoIterator<Item = ObjectHandle>) {
    for o in objects {
        let _ = s.destroy_object(o);
    }
}
