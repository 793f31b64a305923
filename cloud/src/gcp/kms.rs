//! The Cloud KMS v1 REST calls a sync makes, with the bearer token, and GCP's error shape
//! (`{"error": {"code", "message", "status"}}`) turned into `STATUS: message`.

use engine::cloud_exports::SyncError;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::http;

pub(super) struct Kms {
    client: reqwest::Client,
    /// `https://cloudkms.googleapis.com` or the export's `endpoint`.
    endpoint: Url,
    token: Zeroizing<String>,
}

/// An answer that is not an error; `NotFound` is kept apart because a sync looks before
/// it creates.
pub(super) enum Found {
    Yes(Value),
    No(String),
}

impl Kms {
    pub(super) fn new(client: reqwest::Client, endpoint: Url, token: Zeroizing<String>) -> Self {
        Kms {
            client,
            endpoint,
            token,
        }
    }

    /// `GET v1/{name}`.
    pub(super) async fn get(&self, name: &str) -> Result<Found, SyncError> {
        self.call(Method::GET, name, &[], None).await
    }

    /// A call that must find its resource; not finding it is a permanent error in GCP's
    /// words.
    pub(super) async fn expect(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, SyncError> {
        match self.call(method, path, query, body).await? {
            Found::Yes(value) => Ok(value),
            Found::No(message) => Err(SyncError::permanent(message)),
        }
    }

    /// `method v1/{path}` (a resource name, `/`-separated, with any `:verb` suffix).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Found, SyncError> {
        let segments: Vec<&str> = std::iter::once("v1").chain(path.split('/')).collect();
        let mut request = self
            .client
            .request(method, http::join(&self.endpoint, &segments))
            .bearer_auth(self.token.as_str())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = http::send(request, "GCP Cloud KMS").await?;
        if reply.status.is_success() {
            if reply.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Found::Yes(Value::Object(Default::default())));
            }
            return reply.json("GCP Cloud KMS").map(Found::Yes);
        }
        let message = error_message(reply.status, &reply.text());
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(Found::No(message));
        }
        Err(reply.failure(message))
    }
}

/// `PERMISSION_DENIED: Permission 'cloudkms.importJobs.create' denied on resource ...`:
/// the status word and message as GCP wrote them.
fn error_message(status: StatusCode, text: &str) -> String {
    let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &parsed["error"];
    match (error["status"].as_str(), error["message"].as_str()) {
        (Some(word), Some(message)) => format!("{word}: {message}"),
        (None, Some(message)) => format!("GCP Cloud KMS answered {status}: {message}"),
        _ => format!("GCP Cloud KMS answered {status}: {text}"),
    }
}
