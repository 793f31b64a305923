//! The start-up self-test of the BYOK formats: for each key kind and format, the token
//! wraps known material and the result is checked against an independent computation in
//! software (`crate::byok`, RustCrypto), because tokens list mechanisms they get wrong:
//! - RSA-OAEP is randomized, so the token wraps under the public half of a throw-away
//!   software RSA key and the software decrypts;
//! - AES key wrap is deterministic, so the token wraps known bytes under a known AES key
//!   and the bytes must equal RFC 5649's; a 35-byte secret (not a multiple of 8) catches
//!   the zero-padding `CKM_AES_KEY_WRAP_PAD` of SoftHSM2 2.6;
//! - a private key must arrive as a strict PKCS#8 document of that very key: an RSA key
//!   imported from the software key, an EC key generated in the token and compared by its
//!   public point.
//!
//! The table is measured once per open token and logged; `export_support` answers from it.

use std::sync::OnceLock;

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{Oaep, RsaPrivateKey};
use spki::der::asn1::ObjectIdentifier;
use spki::der::Encode;
use zeroize::Zeroizing;

use super::byok::{aes_key_wrap, import_wrapping_key, rsa_aes_key_wrap};
use super::error::describe;
use super::{mechanisms, Pkcs11Root};
use crate::{HashAlg, KeySpec, WrapMechanism};

/// What is wrapped, as the formats see it: 32 raw bytes, or a PKCS#8 document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Aes256,
    Rsa,
    Ec,
}

impl Target {
    const ALL: [Target; 3] = [Target::Aes256, Target::Rsa, Target::Ec];

    pub(super) fn of(spec: KeySpec) -> Target {
        match spec {
            KeySpec::Aes256 => Target::Aes256,
            KeySpec::Rsa(_) => Target::Rsa,
            KeySpec::EcP256 | KeySpec::EcP384 => Target::Ec,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Target::Aes256 => "AES-256",
            Target::Rsa => "RSA (PKCS#8)",
            Target::Ec => "EC (PKCS#8)",
        }
    }
}

/// The AES key-wrap mechanism of a composed RSA-AES wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyWrap {
    /// `CKM_AES_KEY_WRAP_KWP`: RFC 5649 by definition.
    Kwp,
    /// `CKM_AES_KEY_WRAP_PAD`: RFC 5649 on some tokens, zero padding on others.
    Pad,
}

impl KeyWrap {
    pub(super) fn name(self) -> &'static str {
        match self {
            KeyWrap::Kwp => "CKM_AES_KEY_WRAP_KWP",
            KeyWrap::Pad => "CKM_AES_KEY_WRAP_PAD",
        }
    }
}

/// How the token produces a format for a key kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `CKM_RSA_PKCS_OAEP` of the key itself.
    Oaep,
    /// The token's `CKM_RSA_AES_KEY_WRAP`.
    Native,
    /// An ephemeral AES key: the target under it with this mechanism, it under OAEP.
    Composed(KeyWrap),
}

const FORMATS: [WrapMechanism; 4] = [
    WrapMechanism::RsaOaepSha1,
    WrapMechanism::RsaOaepSha256,
    WrapMechanism::RsaAesKeyWrapSha1,
    WrapMechanism::RsaAesKeyWrapSha256,
];

/// What the self-test found, per key kind and format.
pub(super) struct ExportTable {
    entries: Vec<(Target, WrapMechanism, Result<Route, String>)>,
}

impl ExportTable {
    pub(super) fn route(&self, target: Target, format: WrapMechanism) -> Result<Route, String> {
        self.entries
            .iter()
            .find(|(t, f, _)| *t == target && *f == format)
            .map(|(_, _, r)| r.clone())
            .unwrap_or_else(|| Err(format!("{} was not self-tested", format.pkcs11_name())))
    }

    fn log(&self, token: &str) {
        for (target, format, result) in &self.entries {
            match result {
                Ok(route) => {
                    tracing::info!(token = %token, key = target.name(), format = format.pkcs11_name(), route = ?route, "BYOK export format: supported inside the HSM")
                }
                Err(why) => {
                    tracing::info!(token = %token, key = target.name(), format = format.pkcs11_name(), reason = %why, "BYOK export format: not supported inside the HSM")
                }
            }
        }
    }
}

impl Pkcs11Root {
    /// The BYOK formats the token produces correctly; measured once, logged.
    pub(super) fn export_table(&self) -> &ExportTable {
        self.exports.get_or_init(|| {
            let table = self.measure_exports();
            table.log(&self.token_label);
            table
        })
    }

    fn measure_exports(&self) -> ExportTable {
        let Some(software) = probe_key() else {
            return everywhere("the self-test could not make its software RSA key".into());
        };
        let mut table = None;
        let result = self.with_session(|s| {
            table = Some(Probe::run(&self.lib, s, software));
            Ok(())
        });
        match (result, table) {
            (Ok(()), Some(t)) => t,
            (Err(e), _) => everywhere(format!(
                "the self-test could not open a session: {}",
                describe(&e)
            )),
            (Ok(()), None) => everywhere("the self-test did not run".into()),
        }
    }
}

fn everywhere(reason: String) -> ExportTable {
    ExportTable {
        entries: Target::ALL
            .iter()
            .flat_map(|t| FORMATS.iter().map(move |f| (*t, *f)))
            .map(|(t, f)| (t, f, Err(reason.clone())))
            .collect(),
    }
}

/// The software RSA key whose public half the token wraps under: one per process, since
/// making it is the slow part.
pub(super) fn probe_key() -> Option<&'static RsaPrivateKey> {
    static KEY: OnceLock<Option<RsaPrivateKey>> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).ok())
        .as_ref()
}

pub(super) fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut v = Zeroizing::new([0u8; N]);
    crate::fill_random(v.as_mut_slice());
    v
}

/// The known material and the objects the token holds for it.
struct Probe<'a> {
    lib: &'a std::path::Path,
    s: &'a Session,
    software: &'a RsaPrivateKey,
    aes: Zeroizing<[u8; 32]>,
    odd: Zeroizing<[u8; 35]>,
    kek: Zeroizing<[u8; 32]>,
    ec_point: Vec<u8>,
    made: Vec<ObjectHandle>,
}

/// The handles of one run.
struct Objects {
    provider: ObjectHandle,
    aes: ObjectHandle,
    odd: ObjectHandle,
    kek: ObjectHandle,
    rsa: ObjectHandle,
    ec: ObjectHandle,
}

impl<'a> Probe<'a> {
    fn run(lib: &'a std::path::Path, s: &'a Session, software: &'a RsaPrivateKey) -> ExportTable {
        let mut probe = Probe {
            lib,
            s,
            software,
            aes: random(),
            odd: random(),
            kek: random(),
            ec_point: Vec::new(),
            made: Vec::new(),
        };
        let table = match probe.objects() {
            Ok(objects) => probe.table(&objects),
            Err(e) => everywhere(format!(
                "the self-test could not put its known keys into the token: {}",
                describe(&e)
            )),
        };
        for o in probe.made.drain(..) {
            let _ = s.destroy_object(o);
        }
        table
    }

    fn keep(&mut self, o: Result<ObjectHandle, CkError>) -> Result<ObjectHandle, CkError> {
        let o = o?;
        self.made.push(o);
        Ok(o)
    }

    fn secret(
        &mut self,
        key_type: KeyType,
        value: &[u8],
        wrap: bool,
    ) -> Result<ObjectHandle, CkError> {
        let o = self.s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(!wrap),
            Attribute::Wrap(wrap),
            Attribute::Value(value.to_vec()),
        ]);
        self.keep(o)
    }

    fn objects(&mut self) -> Result<Objects, CkError> {
        let provider = import_wrapping_key(self.s, &self.software.to_public_key());
        let provider = self.keep(provider)?;
        let aes = self.aes.clone();
        let aes = self.secret(KeyType::AES, aes.as_slice(), false)?;
        let odd = self.odd.clone();
        let odd = self.secret(KeyType::GENERIC_SECRET, odd.as_slice(), false)?;
        let kek = self.kek.clone();
        let kek = self.secret(KeyType::AES, kek.as_slice(), true)?;
        let rsa = self.import_rsa()?;
        let ec = self.generate_ec()?;
        Ok(Objects {
            provider,
            aes,
            odd,
            kek,
            rsa,
            ec,
        })
    }

    fn import_rsa(&mut self) -> Result<ObjectHandle, CkError> {
        let k = self.software;
        let [p, q] = k.primes() else {
            return Err(CkError::InvalidValue);
        };
        let crt = |v: Option<&rsa::BigUint>| v.map(|v| v.to_bytes_be()).unwrap_or_default();
        let qinv = k
            .crt_coefficient()
            .map(|c| c.to_bytes_be())
            .unwrap_or_default();
        let o = self.s.create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Modulus(k.n().to_bytes_be()),
            Attribute::PublicExponent(k.e().to_bytes_be()),
            Attribute::PrivateExponent(k.d().to_bytes_be()),
            Attribute::Prime1(p.to_bytes_be()),
            Attribute::Prime2(q.to_bytes_be()),
            Attribute::Exponent1(crt(k.dp())),
            Attribute::Exponent2(crt(k.dq())),
            Attribute::Coefficient(qinv),
        ]);
        self.keep(o)
    }

    fn generate_ec(&mut self) -> Result<ObjectHandle, CkError> {
        const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        let params = SECP256R1.to_der().map_err(|_| CkError::InvalidValue)?;
        let (public, private) = self.s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(params),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Sign(true),
            ],
        )?;
        self.made.extend([public, private]);
        for a in self.s.get_attributes(public, &[AttributeType::EcPoint])? {
            if let Attribute::EcPoint(mut point) = a {
                // A DER OCTET STRING around the point, or (some tokens) the bare point.
                if point.len() == 67 {
                    point.drain(..2);
                }
                self.ec_point = point;
            }
        }
        Ok(private)
    }

    fn table(&self, o: &Objects) -> ExportTable {
        let oaep = |hash| self.oaep(o, hash);
        let oaep_sha1 = oaep(HashAlg::Sha1);
        let oaep_sha256 = oaep(HashAlg::Sha256);
        let mut entries = Vec::new();
        for target in Target::ALL {
            let handle = match target {
                Target::Aes256 => o.aes,
                Target::Rsa => o.rsa,
                Target::Ec => o.ec,
            };
            let key_wraps: Vec<(KeyWrap, Result<(), String>)> = [KeyWrap::Kwp, KeyWrap::Pad]
                .into_iter()
                .map(|kind| (kind, self.key_wrap(o, kind, target, handle)))
                .collect();
            for format in FORMATS {
                let oaep = if format.oaep_hash() == HashAlg::Sha1 {
                    &oaep_sha1
                } else {
                    &oaep_sha256
                };
                let result = if !format.is_rsa_aes() {
                    match (target, oaep) {
                        (Target::Aes256, Ok(())) => Ok(Route::Oaep),
                        (Target::Aes256, Err(why)) => Err(why.clone()),
                        _ => Err(format!(
                            "{} carries the key itself and fits only AES-256 keys; an RSA or EC key needs an RSA-AES format",
                            format.pkcs11_name()
                        )),
                    }
                } else {
                    self.rsa_aes(o, format, target, handle, oaep, &key_wraps)
                };
                entries.push((target, format, result));
            }
        }
        ExportTable { entries }
    }

    /// `CKM_RSA_PKCS_OAEP` of the known AES key under the software key's public half.
    fn oaep(&self, o: &Objects, hash: HashAlg) -> Result<(), String> {
        let name = format!("CKM_RSA_PKCS_OAEP with {}", hash_name(hash));
        let wrapped = self
            .s
            .wrap_key(&mechanisms::oaep(hash, hash, &[]), o.provider, o.aes)
            .map_err(|e| format!("{name} answers {}", ckr(&e)))?;
        match self.software.decrypt(software_oaep(hash), &wrapped) {
            Ok(plain) if plain == self.aes.as_slice() => Ok(()),
            _ => Err(format!(
                "{name} wraps to bytes that do not decrypt to the key"
            )),
        }
    }

    /// An AES key wrap of `target` under the known AES key, against RFC 5649.
    fn key_wrap(
        &self,
        o: &Objects,
        kind: KeyWrap,
        target: Target,
        handle: ObjectHandle,
    ) -> Result<(), String> {
        let name = kind.name();
        let wrap = |key| {
            aes_key_wrap(self.lib, self.s, kind, o.kek, key)
                .map_err(|e| format!("{name} answers {}", ckr(&e)))
        };
        let expect = |plain: &[u8], got: &[u8]| {
            let want =
                crate::byok::kwp_wrap(self.kek.as_slice(), plain).map_err(|e| e.to_string())?;
            if want == got {
                return Ok(());
            }
            let opened =
                aes_kw::KekAes256::new(self.kek.as_slice().into()).unwrap_with_padding_vec(got);
            match opened {
                Ok(v) if v.len() > plain.len() && v.starts_with(plain) && v[plain.len()..].iter().all(|b| *b == 0) => Err(format!(
                    "{name} is not RFC 5649: it zero-pads to a multiple of 8, so a PKCS#8 key would arrive with trailing zeros"
                )),
                _ => Err(format!("{name} does not produce RFC 5649 (AES key wrap with padding)")),
            }
        };
        if target == Target::Aes256 {
            return expect(self.aes.as_slice(), &wrap(handle)?);
        }
        // A private key's PKCS#8 length varies: the mechanism must be RFC 5649 for a
        // length that is not a multiple of 8 before its private-key output counts.
        expect(self.odd.as_slice(), &wrap(o.odd)?)?;
        let got = wrap(handle)?;
        let opened = aes_kw::KekAes256::new(self.kek.as_slice().into())
            .unwrap_with_padding_vec(&got)
            .map_err(|_| format!("{name} output does not open with RFC 5649"))?;
        self.private_key_matches(target, &opened)
            .map_err(|why| format!("{name}: {why}"))
    }

    /// A strict PKCS#8 document of the very key the token holds.
    fn private_key_matches(&self, target: Target, pkcs8: &[u8]) -> Result<(), String> {
        let matches = match target {
            Target::Rsa => RsaPrivateKey::from_pkcs8_der(pkcs8)
                .map(|k| k.n() == self.software.n() && k.d() == self.software.d())
                .map_err(|e| e.to_string()),
            Target::Ec => p256::SecretKey::from_pkcs8_der(pkcs8)
                .map(|k| k.public_key().to_encoded_point(false).as_bytes() == self.ec_point)
                .map_err(|e| e.to_string()),
            Target::Aes256 => Ok(pkcs8 == self.aes.as_slice()),
        };
        match matches {
            Ok(true) => Ok(()),
            Ok(false) => Err("the wrapped key is another key".into()),
            Err(e) => Err(format!(
                "the wrapped key is not a strict PKCS#8 document ({e})"
            )),
        }
    }

    /// An RSA-AES format: the token's own mechanism if it gets it right, else composed.
    fn rsa_aes(
        &self,
        o: &Objects,
        format: WrapMechanism,
        target: Target,
        handle: ObjectHandle,
        oaep: &Result<(), String>,
        key_wraps: &[(KeyWrap, Result<(), String>)],
    ) -> Result<Route, String> {
        let native = self.native(o, format, target, handle);
        if native.is_ok() {
            return Ok(Route::Native);
        }
        if oaep.is_ok() {
            if let Some((kind, _)) = key_wraps.iter().find(|(_, r)| r.is_ok()) {
                return Ok(Route::Composed(*kind));
            }
        }
        let mut why = vec![native.err().unwrap_or_default()];
        if let Err(e) = oaep {
            why.push(e.clone());
        }
        why.extend(key_wraps.iter().filter_map(|(_, r)| r.clone().err()));
        Err(format!(
            "{} cannot be produced inside this HSM: {}",
            format.pkcs11_name(),
            why.join("; ")
        ))
    }

    /// The token's `CKM_RSA_AES_KEY_WRAP`, opened in software.
    fn native(
        &self,
        o: &Objects,
        format: WrapMechanism,
        target: Target,
        handle: ObjectHandle,
    ) -> Result<(), String> {
        let hash = format.oaep_hash();
        let name = format!("CKM_RSA_AES_KEY_WRAP with OAEP {}", hash_name(hash));
        let got = rsa_aes_key_wrap(self.lib, self.s, format, o.provider, handle)
            .map_err(|e| format!("{name} answers {}", ckr(&e)))?;
        let size = self.software.size();
        if got.len() <= size {
            return Err(format!("{name} output is too short"));
        }
        let (rsa_part, kwp_part) = got.split_at(size);
        let ephemeral = Zeroizing::new(
            self.software
                .decrypt(software_oaep(hash), rsa_part)
                .map_err(|_| format!("{name}: the RSA part does not decrypt with OAEP"))?,
        );
        if ephemeral.len() != 32 {
            return Err(format!("{name}: the ephemeral key is not AES-256"));
        }
        let opened = aes_kw::KekAes256::new(ephemeral.as_slice().into())
            .unwrap_with_padding_vec(kwp_part)
            .map_err(|_| format!("{name}: the AES part does not open with RFC 5649"))?;
        self.private_key_matches(target, &opened)
            .map_err(|why| format!("{name}: {why}"))
    }
}

fn software_oaep(hash: HashAlg) -> Oaep {
    match hash {
        HashAlg::Sha1 => Oaep::new::<sha1::Sha1>(),
        _ => Oaep::new::<sha2::Sha256>(),
    }
}

pub(super) fn hash_name(hash: HashAlg) -> &'static str {
    match hash {
        HashAlg::Sha1 => "SHA-1",
        HashAlg::Sha224 => "SHA-224",
        HashAlg::Sha256 => "SHA-256",
        HashAlg::Sha384 => "SHA-384",
        HashAlg::Sha512 => "SHA-512",
    }
}

/// The `CKR_*` of a failed call, without the function name.
pub(super) fn ckr(e: &CkError) -> String {
    let d = describe(e);
    match d.split_once(" returned ") {
        Some((_, rv)) => rv.to_string(),
        None => d,
    }
}
