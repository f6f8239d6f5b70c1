//! Signing in and out, and the checks every API call makes: a live session (401 otherwise),
//! and on `POST`s the session's CSRF token and a same-origin `Origin` (403 otherwise).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::api::ApiError;
use super::auth::{set_cookie, token_from_cookies, Session, SignInError, CSRF_HEADER};
use super::config::Role;
use super::Console;
use crate::front::server::{ClientCertificate, PeerAddr};

/// A request from a signed-in person.
pub struct Signed {
    pub session: Session,
    pub token: String,
}

impl FromRequestParts<Arc<Console>> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(token_from_cookies);
        if let Some(session) = token.and_then(|t| console.auth.session(t)) {
            return Ok(Signed {
                session,
                token: token.unwrap_or_default().to_string(),
            });
        }
        // No session of ours: the connection's client certificate, or a trusted reverse proxy,
        // may name the person.
        if let Some(cert) = parts.extensions.get::<ClientCertificate>() {
            if let Some(session) = console.auth.by_certificate(&cert.sha256) {
                return Ok(Signed {
                    session,
                    token: String::new(),
                });
            }
        }
        let from = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        let headers = &parts.headers;
        let proxied = from.and_then(|ip| {
            console.auth.proxied(ip, |name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
        });
        match proxied {
            Some(session) => Ok(Signed {
                session,
                token: String::new(),
            }),
            None => Err(ApiError::SignInFirst),
        }
    }
}

impl Signed {
    /// For a request that changes something: the session's CSRF token in its header and, when
    /// the browser says where the page came from, this very site.
    pub fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !super::auth::same_secret(sent, &self.session.csrf) {
            return Err(ApiError::Forbidden("missing or wrong CSRF token".into()));
        }
        same_origin(headers)
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if role == Role::Operator && self.session.role != Role::Operator {
            return Err(ApiError::Forbidden(format!(
                "{} is a viewer; redrive needs the operator role",
                self.session.user
            )));
        }
        Ok(())
    }
}

/// An `Origin` header, when present, must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if host.is_empty() || origin_host != host {
        return Err(ApiError::Forbidden(format!(
            "cross-site request from {origin} refused"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
}

/// `POST /ui/api/login` with `{"name", "password"}`: sets the session cookie and answers with
/// the user, role and CSRF token. 401 for a wrong name or password (which is not said), 429
/// with `Retry-After` after too many failures from one address.
pub async fn login(
    State(console): State<Arc<Console>>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let Json(credentials) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let from = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(p)| p.0.ip());
    let name = credentials.name.chars().take(64).collect::<String>();
    match console
        .auth
        .sign_in(from, &credentials.name, &credentials.password)
        .await
    {
        Ok((token, session)) => {
            tracing::info!(user = %session.user, from = %from, "console sign-in");
            let cookie = set_cookie(Some(&token), console.auth.ttl());
            let mut response = Json(json!({
                "user": session.user, "role": session.role, "csrf_token": session.csrf,
            }))
            .into_response();
            response.headers_mut().insert(
                SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("a cookie of hex digits"),
            );
            Ok(response)
        }
        Err(SignInError::Refused) => {
            tracing::warn!(user = ?name, from = %from, "console sign-in refused");
            Err(ApiError::WrongCredentials)
        }
        Err(SignInError::Throttled(secs)) => {
            tracing::warn!(from = %from, "console sign-in throttled");
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": format!("too many failed sign-ins from this address; try again in {secs} s")})),
            )
                .into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
            Ok(response)
        }
    }
}

/// `POST /ui/api/logout`: ends the session and deletes the cookie.
pub async fn logout(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    signed.check_csrf(&headers)?;
    console.auth.sign_out(&signed.token);
    let mut response = Json(json!({"signed_out": signed.session.user})).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&set_cookie(None, console.auth.ttl())).expect("a plain cookie"),
    );
    Ok(response)
}

/// `GET /ui/api/session`: who is signed in, their role and the CSRF token for `POST`s.
pub async fn whoami(signed: Signed) -> Json<serde_json::Value> {
    Json(json!({
        "user": signed.session.user,
        "role": signed.session.role,
        "csrf_token": signed.session.csrf,
    }))
}
