//! Reading AWS errors: throttling and server faults pass, the caller's faults do not. Each
//! service adds the codes its API reference documents to the ones all services share.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::delivery::Failure;

/// Codes every AWS service may answer, with whether they pass.
const COMMON: [(&str, bool); 14] = [
    ("Throttling", true),
    ("ThrottlingException", true),
    ("ThrottledException", true),
    ("RequestThrottled", true),
    ("RequestThrottledException", true),
    ("TooManyRequestsException", true),
    ("SlowDown", true),
    ("InternalError", true),
    ("InternalFailure", true),
    ("ServiceUnavailable", true),
    ("ServiceUnavailableException", true),
    ("InvalidClientTokenId", false),
    ("SignatureDoesNotMatch", false),
    ("AccessDenied", false),
];

/// A failure and whether to try again.
pub struct Classified {
    pub failure: Failure,
    pub retry: bool,
}

/// A service's codes, with whether they pass.
pub type Codes = &'static [(&'static str, bool)];

/// By an error code from the service's table or the common one (and the HTTP status when the
/// code is unknown).
pub fn by_code(codes: Codes, code: &str, message: &str, status: Option<u16>) -> Classified {
    let reason = crate::card::truncate(&format!("{code}: {message}"), 500);
    match codes.iter().chain(COMMON.iter()).find(|(c, _)| *c == code) {
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
    codes: Codes,
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Classified {
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let inner = e.err();
            by_code(
                codes,
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

impl Classified {
    /// The item's result: retried when the error passes, dead-lettered when it does not.
    pub fn item(self) -> crate::delivery::ItemResult {
        if self.retry {
            crate::delivery::ItemResult::Retry(self.failure)
        } else {
            crate::delivery::ItemResult::Permanent(self.failure)
        }
    }
}
