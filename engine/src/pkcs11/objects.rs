//! Objects applications create: X.509 certificates, data objects and public keys. Token
//! objects (`CKA_TOKEN` true) are stored under the barrier at `pkcs11/objects/<uuid>`;
//! the others live in memory for their library instance ([`super::session`]).
//!
//! A template is read attribute by attribute: each attribute of the class is taken with
//! its type checked, defaults fill the rest, attributes the object computes itself
//! (`CKA_MODULUS_BITS`, `CKA_PUBLIC_KEY_INFO`, a certificate's subject, issuer and serial
//! number when not given) must match if given, and an attribute the class does not take
//! is `CKR_ATTRIBUTE_TYPE_INVALID`. Private and secret keys are never imported this way.
//!
//! `CKA_PRIVATE` false is accepted (pkcs11-tool sets it on certificates) and the object
//! shows true: no object of this token is visible without a login.

use ::rsa::pkcs8::EncodePublicKey;
use cryptoki_sys::*;
use der::asn1::OctetString;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::keys::{P256_OID, P384_OID};
use super::{code, refuse, Attr, Handle, Object, Value};
use crate::barrier::Barrier;
use crate::error::{EngineError, Result};
use crate::managed_keys::Algorithm;

const PREFIX: &str = "pkcs11/objects/";
/// The most attribute bytes one object may hold.
pub const MAX_OBJECT_BYTES: usize = 64 * 1024;
/// Attributes an application may change on the objects it created.
const SETTABLE: &[CK_ATTRIBUTE_TYPE] = &[CKA_LABEL, CKA_ID, CKA_START_DATE, CKA_END_DATE];

/// An object read from a template: where it lives and what it holds.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub token: bool,
    pub attributes: Vec<Attr>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    attributes: Vec<Attr>,
}

fn invalid(message: impl Into<String>) -> EngineError {
    refuse(code::ATTRIBUTE_VALUE_INVALID, message)
}

/// A template being read: what was taken, and the object's attributes so far.
struct Build<'a> {
    template: &'a [Attr],
    taken: Vec<bool>,
    out: Vec<Attr>,
}

impl<'a> Build<'a> {
    fn new(template: &'a [Attr]) -> Result<Self> {
        for (i, a) in template.iter().enumerate() {
            if template[..i].iter().any(|b| b.kind == a.kind) {
                return Err(refuse(
                    code::TEMPLATE_INCONSISTENT,
                    format!("attribute {:#x} is given twice", a.kind),
                ));
            }
        }
        Ok(Build {
            template,
            taken: vec![false; template.len()],
            out: Vec::new(),
        })
    }

    fn take(&mut self, kind: CK_ATTRIBUTE_TYPE) -> Option<&'a Value> {
        let i = self.template.iter().position(|a| a.kind == kind)?;
        self.taken[i] = true;
        Some(&self.template[i].value)
    }

    fn push(&mut self, kind: CK_ATTRIBUTE_TYPE, value: Value) {
        self.out.push(Attr { kind, value });
    }

    /// An attribute the object computes: given, it must say the same.
    fn fixed(&mut self, kind: CK_ATTRIBUTE_TYPE, value: Value) -> Result<()> {
        if let Some(given) = self.take(kind) {
            if *given != value {
                return Err(invalid(format!(
                    "attribute {kind:#x} cannot take this value on this object"
                )));
            }
        }
        self.push(kind, value);
        Ok(())
    }

    fn bool(&mut self, kind: CK_ATTRIBUTE_TYPE, default: bool) -> Result<bool> {
        let v = match self.take(kind) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid(format!("attribute {kind:#x} must be a CK_BBOOL"))),
        };
        self.push(kind, Value::Bool(v));
        Ok(v)
    }

    fn ulong(&mut self, kind: CK_ATTRIBUTE_TYPE, default: Option<CK_ULONG>) -> Result<CK_ULONG> {
        let v = match (self.take(kind), default) {
            (Some(Value::Ulong(v)), _) => *v,
            (None, Some(d)) => d,
            (None, None) => return Err(incomplete(kind)),
            (Some(_), _) => return Err(invalid(format!("attribute {kind:#x} must be a CK_ULONG"))),
        };
        self.push(kind, Value::Ulong(v));
        Ok(v)
    }

    /// Bytes, not yet pushed (the caller may normalise them first).
    fn bytes_opt(&mut self, kind: CK_ATTRIBUTE_TYPE) -> Result<Option<Vec<u8>>> {
        match self.take(kind) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(_) => Err(invalid(format!("attribute {kind:#x} must be bytes"))),
        }
    }

    fn bytes(&mut self, kind: CK_ATTRIBUTE_TYPE, default: Vec<u8>) -> Result<Vec<u8>> {
        let v = self.bytes_opt(kind)?.unwrap_or(default);
        self.push(kind, Value::Bytes(v.clone()));
        Ok(v)
    }

    fn required(&mut self, kind: CK_ATTRIBUTE_TYPE) -> Result<Vec<u8>> {
        let v = self.bytes_opt(kind)?.ok_or_else(|| incomplete(kind))?;
        self.push(kind, Value::Bytes(v.clone()));
        Ok(v)
    }

    fn date(&mut self, kind: CK_ATTRIBUTE_TYPE) -> Result<()> {
        let v = self.bytes(kind, Vec::new())?;
        if !valid_date(&v) {
            return Err(invalid(format!(
                "attribute {kind:#x} is a date: 8 digits YYYYMMDD, or empty"
            )));
        }
        Ok(())
    }

    /// What every object this module makes carries; the token flag.
    fn common(&mut self, class: CK_OBJECT_CLASS) -> Result<bool> {
        self.fixed(CKA_CLASS, Value::Ulong(class))?;
        let token = self.bool(CKA_TOKEN, false)?;
        match self.take(CKA_PRIVATE) {
            None | Some(Value::Bool(_)) => self.push(CKA_PRIVATE, Value::Bool(true)),
            Some(_) => return Err(invalid("CKA_PRIVATE must be a CK_BBOOL")),
        }
        self.bool(CKA_MODIFIABLE, true)?;
        self.bool(CKA_COPYABLE, true)?;
        self.fixed(CKA_DESTROYABLE, Value::Bool(true))?;
        self.bytes(CKA_LABEL, Vec::new())?;
        Ok(token)
    }

    fn finish(self, token: bool) -> Result<NewObject> {
        if let Some(i) = self.taken.iter().position(|t| !t) {
            return Err(refuse(
                code::ATTRIBUTE_TYPE_INVALID,
                format!(
                    "attribute {:#x} is not one this object takes",
                    self.template[i].kind
                ),
            ));
        }
        let size: usize = self
            .out
            .iter()
            .map(|a| match &a.value {
                Value::Bytes(b) => b.len(),
                Value::Ulongs(v) => v.len() * 8,
                _ => 8,
            })
            .sum();
        if size > MAX_OBJECT_BYTES {
            return Err(invalid(format!(
                "an object holds at most {MAX_OBJECT_BYTES} bytes of attributes"
            )));
        }
        Ok(NewObject {
            token,
            attributes: self.out,
        })
    }
}

fn valid_date(d: &[u8]) -> bool {
    d.is_empty() || (d.len() == 8 && d.iter().all(u8::is_ascii_digit))
}

fn incomplete(kind: CK_ATTRIBUTE_TYPE) -> EngineError {
    refuse(
        code::TEMPLATE_INCOMPLETE,
        format!("the template needs attribute {kind:#x}"),
    )
}

/// The object `template` describes (`C_CreateObject`).
pub fn new_object(template: &[Attr]) -> Result<NewObject> {
    let class = match template.iter().find(|a| a.kind == CKA_CLASS) {
        None => return Err(incomplete(CKA_CLASS)),
        Some(Attr {
            value: Value::Ulong(c),
            ..
        }) => *c,
        Some(_) => return Err(invalid("CKA_CLASS must be a CK_ULONG")),
    };
    let mut b = Build::new(template)?;
    let token = b.common(class)?;
    match class {
        CKO_CERTIFICATE => certificate(&mut b)?,
        CKO_DATA => {
            b.bytes(CKA_APPLICATION, Vec::new())?;
            b.bytes(CKA_OBJECT_ID, Vec::new())?;
            b.bytes(CKA_VALUE, Vec::new())?;
        }
        CKO_PUBLIC_KEY => public_key_object(&mut b)?,
        CKO_PRIVATE_KEY | CKO_SECRET_KEY => {
            return Err(invalid(
                "private and secret keys are generated or unwrapped inside the appliance, \
                 never imported in the clear",
            ))
        }
        _ => {
            return Err(invalid(format!(
                "objects of class {class:#x} cannot be created"
            )))
        }
    }
    b.finish(token)
}

fn certificate(b: &mut Build<'_>) -> Result<()> {
    if b.ulong(CKA_CERTIFICATE_TYPE, None)? != CKC_X_509 {
        return Err(invalid("only X.509 certificates (CKC_X_509) are stored"));
    }
    let value = b.required(CKA_VALUE)?;
    let not_certificate = |_| invalid("CKA_VALUE is not a DER X.509 certificate");
    let tbs = x509_cert::Certificate::from_der(&value)
        .map_err(not_certificate)?
        .tbs_certificate;
    // CKA_SERIAL_NUMBER holds the DER INTEGER, tag and length included.
    let (subject, issuer, serial) = (
        tbs.subject.to_der().map_err(not_certificate)?,
        tbs.issuer.to_der().map_err(not_certificate)?,
        tbs.serial_number.to_der().map_err(not_certificate)?,
    );
    b.bytes(CKA_SUBJECT, subject)?;
    b.bytes(CKA_ISSUER, issuer)?;
    b.bytes(CKA_SERIAL_NUMBER, serial)?;
    b.bytes(CKA_ID, Vec::new())?;
    b.fixed(CKA_TRUSTED, Value::Bool(false))?;
    if b.ulong(CKA_CERTIFICATE_CATEGORY, Some(0))? > 3 {
        return Err(invalid("CKA_CERTIFICATE_CATEGORY is 0 to 3"));
    }
    b.ulong(CKA_JAVA_MIDP_SECURITY_DOMAIN, Some(0))?;
    b.bytes(CKA_URL, Vec::new())?;
    b.bytes(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new())?;
    b.bytes(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new())?;
    b.date(CKA_START_DATE)?;
    b.date(CKA_END_DATE)
}

fn public_key_object(b: &mut Build<'_>) -> Result<()> {
    let key_type = b.ulong(CKA_KEY_TYPE, None)?;
    b.bytes(CKA_ID, Vec::new())?;
    b.bytes(CKA_SUBJECT, Vec::new())?;
    b.date(CKA_START_DATE)?;
    b.date(CKA_END_DATE)?;
    b.fixed(CKA_DERIVE, Value::Bool(false))?;
    b.fixed(CKA_LOCAL, Value::Bool(false))?;
    b.fixed(CKA_KEY_GEN_MECHANISM, Value::Ulong(CK_ULONG::MAX))?;
    b.fixed(CKA_VERIFY_RECOVER, Value::Bool(false))?;
    b.fixed(CKA_TRUSTED, Value::Bool(false))?;
    b.fixed(CKA_WRAP, Value::Bool(false))?;
    b.bool(CKA_VERIFY, true)?;
    let spki = match key_type {
        CKK_RSA => {
            b.bool(CKA_ENCRYPT, true)?;
            let modulus = b.required(CKA_MODULUS)?;
            let exponent = b.required(CKA_PUBLIC_EXPONENT)?;
            let pk = ::rsa::RsaPublicKey::new(
                ::rsa::BigUint::from_bytes_be(&modulus),
                ::rsa::BigUint::from_bytes_be(&exponent),
            )
            .map_err(|_| invalid("CKA_MODULUS and CKA_PUBLIC_EXPONENT are not an RSA key"))?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            b.fixed(CKA_MODULUS_BITS, Value::Ulong(bits as CK_ULONG))?;
            pk.to_public_key_der()
                .map_err(|_| invalid("the RSA key cannot be encoded"))?
                .into_vec()
        }
        CKK_EC => {
            b.fixed(CKA_ENCRYPT, Value::Bool(false))?;
            let params = b.required(CKA_EC_PARAMS)?;
            let given = b
                .bytes_opt(CKA_EC_POINT)?
                .ok_or_else(|| incomplete(CKA_EC_POINT))?;
            // PKCS#11 2.40 says DER OCTET STRING; some applications send the bare point. A
            // bare point can also read as an OCTET STRING (its first byte, 0x04, is that
            // tag), so the bare reading wins when it is a point of the curve.
            let (spki, point) = match ec_spki(&params, &given) {
                Ok(spki) => (spki, given),
                Err(bare) => match OctetString::from_der(&given) {
                    Ok(wrapped) => {
                        let point = wrapped.into_bytes();
                        (ec_spki(&params, &point)?, point)
                    }
                    Err(_) => return Err(bare),
                },
            };
            let point = OctetString::new(point)
                .and_then(|p| p.to_der())
                .map_err(|_| invalid("CKA_EC_POINT is too long"))?;
            b.push(CKA_EC_POINT, Value::Bytes(point));
            spki
        }
        _ => {
            return Err(invalid(
                "public keys stored on this token are RSA (CKK_RSA) or EC (CKK_EC)",
            ))
        }
    };
    b.fixed(CKA_PUBLIC_KEY_INFO, Value::Bytes(spki))
}

fn ec_spki(params: &[u8], point: &[u8]) -> Result<Vec<u8>> {
    let bad = || invalid("CKA_EC_POINT is not a point of the curve CKA_EC_PARAMS names");
    let der = match params {
        P256_OID => p256::PublicKey::from_sec1_bytes(point)
            .map_err(|_| bad())?
            .to_public_key_der(),
        P384_OID => p384::PublicKey::from_sec1_bytes(point)
            .map_err(|_| bad())?
            .to_public_key_der(),
        _ => {
            return Err(invalid(
                "CKA_EC_PARAMS must be the DER OID of P-256 or P-384",
            ))
        }
    };
    Ok(der.map_err(|_| bad())?.into_vec())
}

/// A copy of `object` with `template`'s changes (`C_CopyObject`), read as a new template.
pub fn copy(object: &Object, template: &[Attr]) -> Result<NewObject> {
    if !object.get_bool(CKA_COPYABLE) {
        return Err(refuse(
            code::ACTION_PROHIBITED,
            "this object cannot be copied",
        ));
    }
    let mut merged: Vec<Attr> = object
        .attributes
        .iter()
        .filter(|a| !template.iter().any(|t| t.kind == a.kind))
        .cloned()
        .collect();
    merged.extend(template.iter().cloned());
    new_object(&merged)
}

/// `object`'s attributes once `template` is applied (`C_SetAttributeValue`).
pub fn set(object: &Object, template: &[Attr]) -> Result<Vec<Attr>> {
    if !object.get_bool(CKA_MODIFIABLE) {
        return Err(refuse(
            code::ACTION_PROHIBITED,
            "this object cannot be modified",
        ));
    }
    let mut attributes = object.attributes.clone();
    for t in template {
        let Some(slot) = attributes.iter_mut().find(|a| a.kind == t.kind) else {
            return Err(refuse(
                code::ATTRIBUTE_TYPE_INVALID,
                format!("attribute {:#x} is not one this object has", t.kind),
            ));
        };
        if !SETTABLE.contains(&t.kind) {
            return Err(refuse(
                code::ATTRIBUTE_READ_ONLY,
                format!("attribute {:#x} cannot be changed", t.kind),
            ));
        }
        if !matches!(t.value, Value::Bytes(_)) {
            return Err(invalid(format!("attribute {:#x} must be bytes", t.kind)));
        }
        slot.value = t.value.clone();
    }
    for a in &attributes {
        if matches!(a.kind, CKA_START_DATE | CKA_END_DATE)
            && !matches!(&a.value, Value::Bytes(d) if valid_date(d))
        {
            return Err(invalid(format!(
                "attribute {:#x} is a date: 8 digits YYYYMMDD, or empty",
                a.kind
            )));
        }
    }
    Ok(attributes)
}

/// The algorithm and SubjectPublicKeyInfo (the encoded key for ML-DSA) of a stored or
/// session public key, for verification and encryption outside the managed keys.
pub fn public_key(object: &Object) -> Result<(Algorithm, Vec<u8>)> {
    let not_a_key = || {
        refuse(
            code::KEY_TYPE_INCONSISTENT,
            "this object is not a public key the appliance can use",
        )
    };
    if object.get_ulong(CKA_CLASS) != Some(CKO_PUBLIC_KEY) {
        return Err(not_a_key());
    }
    // A session ML-DSA public key (generated here): its CKA_VALUE is the encoded key.
    if object.get_ulong(CKA_KEY_TYPE) == Some(CKK_ML_DSA) {
        let value = object.get_bytes(CKA_VALUE).ok_or_else(not_a_key)?;
        return Ok((Algorithm::MlDsa65, value.to_vec()));
    }
    let spki = object
        .get_bytes(CKA_PUBLIC_KEY_INFO)
        .ok_or_else(not_a_key)?
        .to_vec();
    let algorithm = match object.get_ulong(CKA_KEY_TYPE) {
        Some(CKK_RSA) => match object.get_ulong(CKA_MODULUS_BITS) {
            Some(2048) => Algorithm::Rsa2048,
            Some(3072) => Algorithm::Rsa3072,
            Some(4096) => Algorithm::Rsa4096,
            _ => {
                return Err(refuse(
                    code::KEY_SIZE_RANGE,
                    "RSA keys of 2048, 3072 or 4096 bits only",
                ))
            }
        },
        Some(CKK_EC) => match object.get_bytes(CKA_EC_PARAMS) {
            Some(P256_OID) => Algorithm::EcP256,
            Some(P384_OID) => Algorithm::EcP384,
            _ => return Err(not_a_key()),
        },
        _ => return Err(not_a_key()),
    };
    Ok((algorithm, spki))
}

fn stored_path(id: &uuid::Uuid) -> String {
    format!("{PREFIX}{id}")
}

fn stored_object(id: uuid::Uuid, stored: Stored) -> Object {
    Object {
        handle: Handle::Stored(id),
        attributes: stored.attributes,
        sensitive: Vec::new(),
    }
}

pub(crate) fn list_stored(barrier: &Barrier) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for name in barrier.list(PREFIX)? {
        let Ok(id) = uuid::Uuid::parse_str(&name) else {
            continue;
        };
        if let Some(stored) = barrier.get_json::<Stored>(&stored_path(&id))? {
            out.push(stored_object(id, stored));
        }
    }
    Ok(out)
}

pub(crate) fn get_stored(barrier: &Barrier, id: &uuid::Uuid) -> Result<Object> {
    barrier
        .get_json::<Stored>(&stored_path(id))?
        .map(|s| stored_object(*id, s))
        .ok_or_else(|| EngineError::NotFound(format!("no object {id}")))
}

pub(crate) async fn put_stored(
    barrier: &Barrier,
    id: uuid::Uuid,
    attributes: Vec<Attr>,
) -> Result<Object> {
    let stored = Stored { attributes };
    barrier.put_json(&stored_path(&id), &stored).await?;
    Ok(stored_object(id, stored))
}

pub(crate) async fn delete_stored(barrier: &Barrier, id: &uuid::Uuid) -> Result<()> {
    get_stored(barrier, id)?;
    barrier.delete(&stored_path(id)).await
}
