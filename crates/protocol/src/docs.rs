//! The API reference page both services serve at `/api/v1/docs`: Redoc 2.5.4 (MIT, see
//! `assets/redoc.LICENSE`), bundled into the binaries so it works without internet.

/// Redoc's standalone bundle, served at `/api/v1/docs/redoc.standalone.js`.
pub const REDOC_JS: &str = include_str!("../assets/redoc.standalone.js");

/// The HTML page that renders `/api/v1/openapi.json` with Redoc.
pub fn page(title: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="/api/v1/docs/redoc.standalone.js"></script>
</body>
</html>
"#
    )
}
