//! Reading SNS's errors: throttling and server faults pass, the caller's faults do not.

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

use crate::delivery::Failure;

/// Codes SNS documents for Publish and PublishBatch, with whether they pass.
const CODES: [(&str, bool); 22] = [
    ("Throttled", true),
    ("ThrottlingException", true),
    ("Throttling", true),
    ("KMSThrottling", true),
    ("InternalError", true),
    ("InternalFailure", true),
    ("ServiceUnavailable", true),
    ("InvalidParameter", false),
    ("InvalidParameterValue", false),
    ("NotFound", false),
    ("AuthorizationError", false),
    ("InvalidSecurity", false),
    ("KMSDisabled", false),
    ("KMSInvalidState", false),
    ("KMSNotFound", false),
    ("KMSOptInRequired", false),
    ("KMSAccessDenied", false),
    ("EndpointDisabled", false),
    ("ValidationError", false),
    ("InvalidClientTokenId", false),
    ("SignatureDoesNotMatch", false),
    ("BatchRequestTooLong", false),
];

/// A failure and whether to try again.
pub struct Classified {
    pub failure: Failure,
    pub retry: bool,
}

/// By an SNS error code (and the HTTP status when the code is unknown).
pub fn by_code(code: &str, message: &str, status: Option<u16>) -> Classified {
    let reason = crate::card::truncate(&format!("{code}: {message}"), 500);
    match CODES.iter().find(|(c, _)| *c == code) {
        Some((c, retry)) => Classified {
            failure: Failure::new(status, reason).with_code(c),
            retry: *retry,
        },
        None => Classified {
            failure: Failure::new(status, reason).with_code("other"),
            retry: status.is_none_or(|s| s >= 500 || s == 429),
        },
    }
}

/// Any SDK error: transport problems and timeouts pass; service errors by their code.
pub fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Classified {
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let inner = e.err();
            by_code(
                inner.code().unwrap_or(""),
                inner.message().unwrap_or(""),
                Some(status),
            )
        }
        SdkError::TimeoutError(_) => Classified {
            failure: Failure::new(None, "timed out"),
            retry: true,
        },
        SdkError::DispatchFailure(_) => Classified {
            failure: Failure::new(None, format!("request failed: {}", describe(err))),
            retry: true,
        },
        SdkError::ResponseError(_) => Classified {
            failure: Failure::new(None, "the answer could not be read"),
            retry: true,
        },
        _ => Classified {
            failure: Failure::new(
                None,
                format!("request could not be made: {}", describe(err)),
            ),
            retry: true,
        },
    }
}

/// The innermost cause, which names the problem (credentials, connection) without the URL.
fn describe(e: &dyn std::error::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let text = root.to_string();
    if text.contains("://") {
        "see the endpoint settings".to_string()
    } else {
        crate::card::truncate(&text, 300)
    }
}
