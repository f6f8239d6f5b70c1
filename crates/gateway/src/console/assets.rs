//! The page and its script and style, built into the binary (nothing is fetched at run time),
//! and the headers every console response carries.

use axum::extract::{Path, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Only our own script and style run; alert text is data, never markup (the script sets
/// `textContent`), and this policy stops anything that slipped through anyway.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn index() -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML).into_response()
}

pub async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response(),
        "app.css" => ([(CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Security headers on every console response; nothing of it is cached (alerts are private).
pub async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/ui` without its slash: the page lives at `/ui/` so that its relative links work.
pub async fn to_slash(_request: Request) -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(axum::http::header::LOCATION, "/ui/")],
    )
        .into_response()
}
