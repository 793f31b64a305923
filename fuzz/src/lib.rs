//! What the fuzz targets share: splitting one input into fields, and the oracle that an
//! answer to untrusted input is never a server error.

use serde_json::Value;

/// The input cut at its first `sep`: the head, and the rest (empty when `sep` is absent).
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Text from fuzz bytes, invalid UTF-8 replaced as a JSON client would have to.
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A 500 for input a client chose is a bug (a 503 is the sealed appliance, a 501 an
/// unimplemented feature): the answer should have said what was wrong with the request.
pub fn assert_not_internal(what: &str, status: u16, body: &Value) {
    assert!(
        status < 500 || status == 501 || status == 503,
        "{what}: answered {status}: {body}"
    );
}
