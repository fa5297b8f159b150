//! The dashboard's static files, compiled into the binary: analysts may have no internet,
//! so nothing comes from a CDN. uPlot (MIT, `assets/uplot.LICENSE`) draws the charts.
//!
//! Each file is linked with a hash of its content in the query string ([`Asset::url`]),
//! so browsers may keep it for a year and still never run a stale copy after an upgrade.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

use super::ApiError;

/// One compiled-in file.
pub struct Asset {
    /// The name under `/assets/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const UPLOT_JS: Asset = Asset {
    name: "uplot.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../assets/uplot.iife.min.js"),
};

pub const UPLOT_CSS: Asset = Asset {
    name: "uplot.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../assets/uplot.min.css"),
};

pub const DASHBOARD_JS: Asset = Asset {
    name: "dashboard.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../assets/dashboard.js"),
};

pub const MANAGE_JS: Asset = Asset {
    name: "manage.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../assets/manage.js"),
};

pub const DASHBOARD_CSS: Asset = Asset {
    name: "dashboard.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../assets/dashboard.css"),
};

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asset")
            .field("name", &self.name)
            .field("bytes", &self.body.len())
            .finish()
    }
}

const ALL: [&Asset; 5] = [
    &UPLOT_JS,
    &UPLOT_CSS,
    &DASHBOARD_JS,
    &MANAGE_JS,
    &DASHBOARD_CSS,
];

impl Asset {
    /// The URL the page links to: it changes whenever the content does.
    pub fn url(&self) -> String {
        format!(
            "/assets/{}?v={:016x}",
            self.name,
            fnv1a(self.body.as_bytes())
        )
    }
}

/// FNV-1a, 64 bits: a cache buster, not a security measure.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `GET /assets/{name}`, behind basic auth like everything the dashboard loads.
#[utoipa::path(
    get, path = "/assets/{name}", tag = "analysts", security(("basic" = [])),
    params(
        ("name" = String, Path, description = "dashboard.js, dashboard.css, uplot.js or uplot.css"),
        ("v" = Option<String>, Query, description = "the content hash the dashboard links with, so a new build is a new URL"),
    ),
    responses((status = 200, description = "The dashboard's script or style"), (status = 404, body = protocol::ErrorReply))
)]
#[get("/assets/{name}")]
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = ALL
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no asset named {:?}", name.as_str())))?;
    Ok(HttpResponse::Ok()
        .content_type(asset.content_type)
        // Private: the reply came through basic auth, so no shared cache keeps it.
        .insert_header((
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(asset.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_url_changes_with_its_content() {
        assert_ne!(UPLOT_JS.url(), DASHBOARD_JS.url());
        assert!(UPLOT_JS.url().starts_with("/assets/uplot.js?v="));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
