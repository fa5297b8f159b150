//! The analysts' dashboard at `GET /`: served behind basic auth with its assets.

use analyser::configuration::Method;

use crate::helpers::{shop, Analyser, Gatherer};

#[tokio::test]
async fn the_dashboard_and_its_assets_are_behind_basic_auth_and_the_assets_cached() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let anonymous = analyser
        .client
        .get(format!("{}/", analyser.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let page = analyser.get("/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("No series yet"), "{html}");
    // Every linked asset is served from the binary, cacheable for a year.
    let links: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert_eq!(links.len(), 4, "{html}");
    for link in links {
        assert_eq!(
            analyser
                .client
                .get(format!("{}{link}", analyser.url))
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{link}"
        );
        let asset = analyser.get(link).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{link}");
        assert_eq!(
            asset.headers()["cache-control"],
            "private, max-age=31536000, immutable"
        );
        assert!(asset.bytes().await.unwrap().len() > 1000, "{link}");
    }
    assert_eq!(
        analyser
            .get("/assets/nope.js")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
