//! The web console at `/` and the browser client at `/v1/client.js`.
//!
//! Both are plain files under `server/console/` (ES modules and CSS, no framework, no build
//! step) embedded in the binary with `include_str!`, so a broker serves its own console with
//! nothing to install and no file to find at run time. The console talks to the broker like
//! any other browser application: the WebSocket protocol through `client.js`, plus `/metrics`,
//! `/healthz`, `/readyz` and `/v1/cluster` over HTTP.
//!
//! Assets are answered with a strong `ETag` (a hash of their bytes, computed at compile time)
//! and `Cache-Control: no-cache`, so a browser revalidates each load and gets `304 Not
//! Modified` until the binary changes. The console page carries a Content-Security-Policy that
//! allows only its own scripts, styles and connections.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: &'static str,
}

/// FNV-1a, 64 bits: enough to tell two versions of an asset apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"<16 hex digits>"`, a quoted ETag, at compile time.
const fn etag_bytes(body: &str) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(body.as_bytes());
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {{
        const BODY: &str = include_str!($path);
        const ETAG: [u8; 18] = etag_bytes(BODY);
        Asset {
            body: BODY,
            content_type: $content_type,
            // Quotes and hex digits: always UTF-8.
            etag: match std::str::from_utf8(&ETAG) {
                Ok(s) => s,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

static INDEX: Asset = asset!("../console/index.html", "text/html; charset=utf-8");
static APP: Asset = asset!("../console/app.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("../console/style.css", "text/css; charset=utf-8");
static CLIENT: Asset = asset!("../console/client.js", "text/javascript; charset=utf-8");

/// What the console page may load: its own scripts, styles and connections (the WebSocket
/// included), inline SVG images; nothing from elsewhere, and no framing by other sites.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Routes of the console and the client module; merged into the broker's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/console/app.js",
            get(|h: HeaderMap| async move { serve(&APP, &h) }),
        )
        .route(
            "/console/style.css",
            get(|h: HeaderMap| async move { serve(&STYLE, &h) }),
        )
        .route(
            "/v1/client.js",
            get(|h: HeaderMap| async move { serve(&CLIENT, &h) }),
        )
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = resp.headers_mut();
    if !fresh {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
    }
    h.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.content_type.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn assets_are_served_with_their_types_and_revalidate_by_etag() {
        for (path, asset) in [
            ("/", &INDEX),
            ("/console/app.js", &APP),
            ("/console/style.css", &STYLE),
            ("/v1/client.js", &CLIENT),
        ] {
            let resp = get(path, None).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], asset.content_type);
            let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
            assert_eq!(etag.len(), 18);
            let again = get(path, Some(&format!("\"nope\", {etag}"))).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            let stale = get(path, Some("\"0000000000000000\"")).await;
            assert_eq!(stale.status(), StatusCode::OK, "{path}");
        }
        let index = get("/", None).await;
        assert!(
            index.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
    }

    #[test]
    fn the_console_loads_the_client_the_broker_serves() {
        assert!(INDEX.body.contains("/console/app.js"));
        assert!(APP.body.contains("from '/v1/client.js'"));
        assert!(CLIENT.body.contains("export const Sluice"));
        assert_ne!(APP.etag, CLIENT.etag);
    }
}
