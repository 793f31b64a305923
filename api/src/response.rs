//! Vault's response shapes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

pub type HttpResponse = Response<Full<Bytes>>;

/// What a handler returns: a status and an optional JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    /// A body sent as it is, as the `sys/` endpoints answer.
    pub fn raw(body: Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    /// Vault's standard envelope around `data`.
    pub fn data(data: Value) -> Self {
        Self::raw(envelope(Some(data), None))
    }

    /// The envelope with an `auth` block, as token creation answers.
    pub fn auth(auth: Value) -> Self {
        Self::raw(envelope(None, Some(auth)))
    }

    pub fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// Built member by member: `json!` would copy `data` through the serializer, which cost
/// a tenth of a transit request's instructions (callgrind, bench/README.md).
pub fn envelope(data: Option<Value>, auth: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert(
        "request_id".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    m.insert("lease_id".into(), Value::String(String::new()));
    m.insert("renewable".into(), Value::Bool(false));
    m.insert("lease_duration".into(), Value::from(0));
    m.insert("data".into(), data.unwrap_or(Value::Null));
    m.insert("wrap_info".into(), Value::Null);
    m.insert("warnings".into(), Value::Null);
    m.insert("auth".into(), auth.unwrap_or(Value::Null));
    Value::Object(m)
}

pub fn json_response(status: StatusCode, body: Option<&Value>) -> HttpResponse {
    let bytes = match body {
        Some(v) => {
            // Most answers fit: one allocation instead of a series of doublings.
            let mut out = Vec::with_capacity(1024);
            match serde_json::to_writer(&mut out, v) {
                Ok(()) => Bytes::from(out),
                Err(_) => Bytes::new(),
            }
        }
        None => Bytes::new(),
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    if body.is_some() {
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
    }
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Vault's timestamp format: RFC 3339 with nanoseconds, "" for none.
pub fn rfc3339(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default()
}
