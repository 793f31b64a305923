//! The little DER the object model writes (OCTET STRING of an EC point, a
//! SubjectPublicKeyInfo for post-quantum keys) and reads (a certificate's names and
//! serial number).

/// A tag-length-value with DER's definite length.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
    out.extend(content);
    out
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;

/// A SubjectPublicKeyInfo whose algorithm has no parameters (ML-DSA, ML-KEM).
pub(crate) fn spki(oid: &[u8], key: &[u8]) -> Vec<u8> {
    let algorithm = tlv(SEQUENCE, oid);
    let mut bits = vec![0u8];
    bits.extend(key);
    let mut body = algorithm;
    body.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

/// One element read from the start of some DER.
pub(crate) struct Element<'a> {
    pub tag: u8,
    /// Tag, length and content.
    pub whole: &'a [u8],
    pub content: &'a [u8],
    /// What follows the element.
    pub rest: &'a [u8],
}

/// The element at the start of `input`.
pub(crate) fn next(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some(Element {
        tag,
        whole,
        content: &whole[header..],
        rest: &input[end..],
    })
}

/// The content of an OCTET STRING that is the whole of `input`.
pub(crate) fn octet_string(input: &[u8]) -> Option<&[u8]> {
    let e = next(input)?;
    (e.tag == OCTET_STRING && e.rest.is_empty()).then_some(e.content)
}

/// What PKCS#11 stores beside an X.509 certificate, read from its DER.
pub(crate) struct CertificateFields<'a> {
    pub subject: &'a [u8],
    pub issuer: &'a [u8],
    /// The serial number's DER INTEGER, tag and length included, as PKCS#11 stores it.
    pub serial: &'a [u8],
}

/// Reads `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
/// serialNumber, signature, issuer, validity, subject, ... }, ... }`.
pub(crate) fn certificate(der: &[u8]) -> Option<CertificateFields<'_>> {
    let cert = next(der).filter(|e| e.tag == SEQUENCE && e.rest.is_empty())?;
    let tbs = next(cert.content).filter(|e| e.tag == SEQUENCE)?;
    let mut rest = tbs.content;
    if rest.first() == Some(&0xa0) {
        rest = next(rest)?.rest;
    }
    let mut field = |tag: u8| {
        let e = next(rest).filter(|e| e.tag == tag)?;
        rest = e.rest;
        Some(e.whole)
    };
    let serial = field(0x02)?;
    field(SEQUENCE)?;
    let issuer = field(SEQUENCE)?;
    field(SEQUENCE)?;
    let subject = field(SEQUENCE)?;
    Some(CertificateFields {
        subject,
        issuer,
        serial,
    })
}
