//! What a failed KMS call becomes: AWS's own words (`AccessDeniedException: User: ... is
//! not authorized to perform: kms:ImportKeyMaterial ...`), retryable when waiting may
//! help (5xx, throttling, the network), permanent otherwise.

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use engine::cloud_exports::SyncError;

/// Error codes AWS answers with a 4xx status that still pass with time.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// How much of an unrecognised error body the message quotes.
const BODY_EXCERPT: usize = 300;

/// `err` from the call named `operation` (`CreateKey`, ...), as the engine records it.
pub(super) fn sync_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let message = match (code, service.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, _) => {
                    let body = service
                        .raw()
                        .body()
                        .bytes()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
                    format!("{operation} answered HTTP {status}: {excerpt}")
                }
            };
            if status >= 500 || status == 429 || code.is_some_and(|c| THROTTLING_CODES.contains(&c))
            {
                SyncError::retryable(message)
            } else {
                SyncError::permanent(message)
            }
        }
        SdkError::DispatchFailure(failure) if failure.is_user() => SyncError::permanent(format!(
            "{operation} could not be sent: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SyncError::retryable(format!(
                "{operation} did not get an answer from AWS KMS: {}",
                DisplayErrorContext(&err)
            ))
        }
        _ => SyncError::permanent(format!("{operation} failed: {}", DisplayErrorContext(&err))),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service_error(
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
        body: &str,
    ) -> SdkError<ImportKeyMaterialError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        let raw = HttpResponse::new(
            status.try_into().expect("a valid status"),
            SdkBody::from(body.to_owned()),
        );
        SdkError::service_error(ImportKeyMaterialError::generic(meta.build()), raw)
    }

    #[test]
    fn access_denied_is_permanent_and_verbatim() {
        let text = "User: arn:aws:iam::111122223333:user/ironseal is not authorized to perform: \
                    kms:ImportKeyMaterial on resource: arn:aws:kms:eu-west-1:111122223333:key/x";
        let err = sync_error(
            "ImportKeyMaterial",
            service_error(400, Some("AccessDeniedException"), Some(text), ""),
        );
        assert_eq!(
            err,
            SyncError::permanent(format!("AccessDeniedException: {text}"))
        );
    }

    #[test]
    fn server_errors_and_throttling_are_retryable() {
        let err = sync_error(
            "ImportKeyMaterial",
            service_error(500, Some("KMSInternalException"), Some("try later"), ""),
        );
        assert_eq!(err, SyncError::retryable("KMSInternalException: try later"));
        let err = sync_error(
            "ImportKeyMaterial",
            service_error(400, Some("ThrottlingException"), Some("Rate exceeded"), ""),
        );
        assert_eq!(
            err,
            SyncError::retryable("ThrottlingException: Rate exceeded")
        );
        let err = sync_error(
            "ImportKeyMaterial",
            service_error(502, None, None, "<html>Bad Gateway</html>"),
        );
        assert_eq!(
            err,
            SyncError::retryable("ImportKeyMaterial answered HTTP 502: <html>Bad Gateway</html>")
        );
    }

    #[test]
    fn other_client_errors_are_permanent() {
        let err = sync_error(
            "ImportKeyMaterial",
            service_error(
                400,
                Some("IncorrectKeyMaterialException"),
                Some("wrong material"),
                "",
            ),
        );
        assert_eq!(
            err,
            SyncError::permanent("IncorrectKeyMaterialException: wrong material")
        );
    }

    #[test]
    fn network_errors_are_retryable() {
        let err: SdkError<ImportKeyMaterialError, HttpResponse> = SdkError::dispatch_failure(
            aws_sdk_kms::error::ConnectorError::io("connection refused".into()),
        );
        let err = sync_error("ImportKeyMaterial", err);
        assert!(err.retryable, "{err}");
        assert!(err.message.contains("connection refused"), "{err}");
    }
}
