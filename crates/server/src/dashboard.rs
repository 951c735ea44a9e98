//! The dashboard: one HTML page, its script and its style sheet,
//! compiled into the binary so `orch serve` needs no files and no network.
//! The script draws everything from the JSON API; the page itself holds no
//! data, which is why it is served without a login.
//!
//! Script and style are kept in files by job (`assets/js/*.js`,
//! `assets/css/*.css`) and served joined, one request each: the first
//! render costs no more round trips than one file did.

use axum::extract::RawQuery;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");
// Classic scripts sharing one scope, in this order: helpers and state
// first, the views, then the router that starts them.
const APP_JS: &str = concat!(
    include_str!("../assets/js/core.js"),
    include_str!("../assets/js/inbox.js"),
    include_str!("../assets/js/board.js"),
    include_str!("../assets/js/task.js"),
    include_str!("../assets/js/main.js"),
);
const APP_CSS: &str = concat!(
    include_str!("../assets/css/base.css"),
    include_str!("../assets/css/board.css"),
    include_str!("../assets/css/task.css"),
);

/// No inline script or style and nothing from elsewhere: an agent's text that
/// slipped into the page could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn index() -> Response {
    asset(INDEX_HTML.into(), "text/html; charset=utf-8")
}

pub async fn app_js() -> Response {
    asset(APP_JS.into(), "text/javascript; charset=utf-8")
}

pub async fn app_css() -> Response {
    asset(APP_CSS.into(), "text/css; charset=utf-8")
}

/// `GET /assets/favicon.svg?n=3`: the icon with a badge counting what waits
/// in the inbox. Drawn here because the CSP allows images from this origin
/// only (no `data:` URLs a script could build).
pub async fn favicon(RawQuery(q): RawQuery) -> Response {
    let n: u32 = q
        .as_deref()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    asset(favicon_svg(n).into(), "image/svg+xml")
}

fn favicon_svg(n: u32) -> String {
    let mut svg = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
         <rect width=\"32\" height=\"32\" rx=\"7\" fill=\"#1d232a\"/>\
         <circle cx=\"14\" cy=\"17\" r=\"8\" fill=\"none\" stroke=\"#8fd18f\" stroke-width=\"4\"/>",
    );
    if n > 0 {
        let label = if n > 99 {
            "99+".to_owned()
        } else {
            n.to_string()
        };
        let size = if label.len() > 2 { 9 } else { 12 };
        svg.push_str(&format!(
            "<circle cx=\"23\" cy=\"9\" r=\"9\" fill=\"#d32f2f\"/>\
             <text x=\"23\" y=\"13\" font-family=\"sans-serif\" font-size=\"{size}\" \
             font-weight=\"700\" text-anchor=\"middle\" fill=\"#fff\">{label}</text>"
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn asset(body: std::borrow::Cow<'static, str>, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files: revalidate each time, so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_favicon_badge_counts_up_to_99() {
        assert!(!favicon_svg(0).contains("<text"));
        assert!(favicon_svg(3).contains(">3</text>"));
        assert!(favicon_svg(150).contains(">99+</text>"));
    }
}
