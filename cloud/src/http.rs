//! What the REST providers (Azure Key Vault, GCP Cloud KMS, Scaleway Key Manager) share:
//! an HTTPS client that trusts the system store plus an export's own `caCertPem`, bounded
//! in time; the rule for the locations an export may point at; and how an HTTP answer
//! becomes a [`SyncError`] (retryable or not) with the provider's words kept.

use std::net::IpAddr;
use std::time::Duration;

use engine::cloud_exports::SyncError;
use reqwest::{Certificate, Client, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Time to set up a connection (TCP and TLS) to a provider.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for one whole request, answer included; the engine bounds the sync as a whole.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The most of an answer body kept: provider errors are a few hundred bytes, and a proxy
/// that answers with a large page must not grow `lastSyncError` without bound.
const MAX_BODY: usize = 64 * 1024;

/// The metadata field holding an extra trust anchor (PEM, one or more certificates).
pub(crate) const CA_CERT_FIELD: &str = "caCertPem";

/// A client for one export: the system trust store, plus `caCertPem` when the export's
/// metadata has one (a private endpoint or an emulator with its own CA). Redirects are not
/// followed: a provider API does not redirect, and a bearer token must not travel to a
/// host the export does not name.
pub(crate) fn client(metadata: &Map<String, Value>) -> Result<Client, String> {
    let mut builder = Client::builder()
        .use_rustls_tls()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ironseal/", env!("CARGO_PKG_VERSION")));
    for anchor in extra_anchors(metadata)? {
        builder = builder.add_root_certificate(anchor);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up an HTTPS client: {}", chain(&e)))
}

/// The certificates of `caCertPem`, refused with a message naming the field when it holds
/// none.
pub(crate) fn extra_anchors(metadata: &Map<String, Value>) -> Result<Vec<Certificate>, String> {
    let Some(pem) = metadata.get(CA_CERT_FIELD).and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    let refused = || format!("providerMetadata.{CA_CERT_FIELD} is not a PEM certificate");
    let certs = Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| refused())?;
    if certs.is_empty() {
        return Err(refused());
    }
    Ok(certs)
}

/// `metadata[field]`, or `default` when the field is absent, checked by [`parse_location`].
pub(crate) fn location(
    metadata: &Map<String, Value>,
    field: &str,
    default: &str,
) -> Result<Url, String> {
    let given = metadata.get(field).and_then(Value::as_str);
    parse_location(
        &format!("providerMetadata.{field}"),
        given.unwrap_or(default),
    )
}

/// A location the appliance may reach: an absolute `https://` URL, or `http://` to a
/// loopback address (a local emulator or proxy); no credentials, query or fragment in it.
/// `what` names the field in messages.
pub(crate) fn parse_location(what: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim())
        .map_err(|e| format!("{what} is not an absolute URL ({e}): {value:?}"))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(format!("{what} must name a host: {value:?}"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{what} must use https:// (plain http:// is accepted for loopback addresses only): {value:?}"
            ))
        }
        other => return Err(format!("{what} must use https://, not {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{what} must not have a query or a fragment"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `base` with `segments` appended as path segments (each percent-encoded), keeping any
/// path prefix `base` has (a private endpoint behind a path).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Whether a provider answering `status` may answer differently later without anyone
/// changing anything: server errors, throttling and request timeouts. Every other 4xx
/// (bad credentials, missing permission, a refused request) waits for a person.
pub(crate) fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// A provider's answer: its status and (the first [`MAX_BODY`] bytes of) its body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as `T`; a body that does not parse is an error quoting it, since a provider
    /// (or a proxy in front of it) answering something else is worth reading.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, SyncError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            SyncError::permanent(format!(
                "{what}: unexpected answer (HTTP {}, {e}): {}",
                self.status,
                self.text()
            ))
        })
    }

    /// The body as text, verbatim (invalid UTF-8 replaced), for error messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }

    /// A failure carrying `message` (the provider's words), retryable as
    /// [`is_retryable`] says for this status.
    pub(crate) fn failure(&self, message: String) -> SyncError {
        SyncError {
            message,
            retryable: is_retryable(self.status),
            boundary: false,
        }
    }
}

/// Sends `request` and reads the answer (any status); a request that got no answer
/// (connection refused, TLS failure, timeout) is a retryable error saying so, with `what`
/// naming the step.
pub(crate) async fn send(request: RequestBuilder, what: &str) -> Result<Reply, SyncError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| SyncError::retryable(format!("{what}: {}", chain(&e))))?;
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() == MAX_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err(SyncError::retryable(format!(
                    "{what}: the answer was cut off: {}",
                    chain(&e)
                )))
            }
        }
    }
    Ok(Reply { status, body })
}

/// An error with its causes ("error sending request ...: connection refused"): reqwest's
/// own message alone rarely says what went wrong.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn https_anywhere_http_to_loopback_only() {
        for ok in [
            "https://myvault.vault.azure.net",
            "https://10.1.2.3:8443/prefix/",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000",
            "http://localhost:1234",
        ] {
            assert!(parse_location("f", ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("http://10.0.0.1", "loopback addresses only"),
            ("http://myvault.vault.azure.net", "loopback addresses only"),
            ("http://127.0.0.1.example.com", "loopback addresses only"),
            ("ftp://127.0.0.1", "must use https://"),
            ("https://user:pw@host", "credentials"),
            ("https://host/?a=b", "query"),
            ("not a url", "not an absolute URL"),
            ("mailto:x@y", "must name a host"),
        ] {
            let err = parse_location("providerMetadata.vaultUrl", bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(err.contains("providerMetadata.vaultUrl"), "{bad}: {err}");
        }
    }

    #[test]
    fn location_falls_back_to_the_default() {
        let m = meta(json!({"endpoint": "http://127.0.0.1:1"}));
        assert_eq!(
            location(&m, "endpoint", "https://x.example").map(|u| u.to_string()),
            Ok("http://127.0.0.1:1/".to_string())
        );
        assert_eq!(
            location(&m, "other", "https://x.example").map(|u| u.to_string()),
            Ok("https://x.example/".to_string())
        );
    }

    #[test]
    fn join_keeps_a_path_prefix_and_encodes_segments() {
        let base = Url::parse("https://h/prefix/").expect("url");
        assert_eq!(
            join(&base, &["keys", "a b"]).as_str(),
            "https://h/prefix/keys/a%20b"
        );
        let bare = Url::parse("https://h").expect("url");
        assert_eq!(join(&bare, &["keys"]).as_str(), "https://h/keys");
    }

    #[test]
    fn server_errors_and_throttling_are_retryable() {
        assert!(is_retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_retryable(StatusCode::FORBIDDEN));
        assert!(!is_retryable(StatusCode::UNAUTHORIZED));
        assert!(!is_retryable(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_ca_field_without_a_certificate_is_refused() {
        let m = meta(json!({"caCertPem": "hello"}));
        let err = extra_anchors(&m).unwrap_err();
        assert!(err.contains("providerMetadata.caCertPem"), "{err}");
        assert!(extra_anchors(&Map::new()).is_ok_and(|v| v.is_empty()));
    }
}
