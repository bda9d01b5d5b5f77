//! Shared test fixtures (feature `test-utils`; for tests and demos, never production): the
//! test admin of an [`AppState`] and a router that signs every request in as a user. The
//! crates' tests use these instead of each writing its own.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request};
use axum::Router;

use crate::AppState;

/// The test admin's username and password.
pub const TEST_ADMIN: (&str, &str) = ("admin", "test admin password");

/// Creates the test admin in `state`'s account store (once: a second call finds it) and
/// returns a fresh access token for it.
///
/// # Panics
/// When the login fails (a test fixture: the test cannot go on without it).
pub async fn admin_token(state: &AppState) -> String {
    let now = bitsage_core::time::now();
    // Already there after the first call: only the login matters.
    let _ = state
        .accounts
        .bootstrap_admin(TEST_ADMIN.0, TEST_ADMIN.1, now)
        .await;
    state
        .accounts
        .login(TEST_ADMIN.0, TEST_ADMIN.1, now)
        .await
        .expect("the test admin logs in")
        .access_token
}

/// `app` with `Authorization: Bearer <token>` added to every request that has none (a
/// request that brings its own credentials keeps them).
///
/// # Panics
/// When `token` cannot be a header value.
pub fn signed_in(app: Router, token: &str) -> Router {
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is ASCII");
    app.layer(axum::middleware::map_request(
        move |mut req: Request<Body>| {
            let value = value.clone();
            async move {
                if !req.headers().contains_key(header::AUTHORIZATION) {
                    req.headers_mut().insert(header::AUTHORIZATION, value);
                }
                req
            }
        },
    ))
}
