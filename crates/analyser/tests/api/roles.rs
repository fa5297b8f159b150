//! Roles: a viewer reads, an analyst also decides, an admin also manages datasets; beyond
//! its role a request gets 403 naming the role it needs.

use reqwest::Method;
use serde_json::Value;

use crate::api::analyser_with_flood;
use crate::helpers::{ANALYST, USER, VIEWER};

#[tokio::test]
async fn a_viewer_reads_an_analyst_decides_and_each_refusal_names_the_role_needed() {
    let (_gatherer, analyser) = analyser_with_flood().await;
    let state = analyser
        .request_as(VIEWER, Method::GET, "/api/v1/state?severity=alarm")
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), 200);
    let state: Value = state.json().await.unwrap();
    let id = state["data"][0]["id"].as_u64().expect("the flood's alarm");

    for (method, path) in [
        (Method::POST, format!("/api/v1/anomalies/{id}/approve")),
        (Method::POST, format!("/api/v1/anomalies/{id}/dismiss")),
        (Method::POST, "/api/v1/pull".to_owned()),
        (Method::POST, "/api/v1/silences".to_owned()),
    ] {
        let refused = analyser
            .request_as(VIEWER, method.clone(), &path)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{method} {path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["required_role"], "analyst", "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("analyst role") && error.contains("viewer"),
            "{error}"
        );
    }
    // Nothing the viewer tried was done.
    let after: Value = analyser.get_json("/api/v1/state?severity=alarm").await;
    assert_eq!(after["data"][0]["status"], "open");

    // The dashboard offers verdicts to whoever may give them, and to nobody else.
    let page = |user: &'static str| {
        let request = analyser.request_as(user, Method::GET, "/?status=open");
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let (as_viewer, as_analyst) = (page(VIEWER).await, page(ANALYST).await);
    assert!(as_analyst.contains(r#"class="approve""#), "{as_analyst}");
    assert!(as_viewer.contains(&format!(r#"data-anomaly-id="{id}""#)));
    assert!(
        !as_viewer.contains(r#"class="approve""#) && !as_viewer.contains(r#"class="dismiss""#),
        "{as_viewer}"
    );

    let refused = analyser
        .request_as(ANALYST, Method::POST, "/api/v1/datasets")
        .json(&serde_json::json!({"name": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["required_role"], "admin", "{body}");

    let dismissed = analyser
        .request_as(
            ANALYST,
            Method::POST,
            &format!("/api/v1/anomalies/{id}/dismiss"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(dismissed.status(), 200);
    let dismissed: Value = dismissed.json().await.unwrap();
    assert_eq!(dismissed["data"]["decided_by"], ANALYST);

    // A configured user without a role is an admin: it may do what an analyst does.
    let approved = analyser
        .post(&format!("/api/v1/anomalies/{id}/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["data"]["decided_by"], USER);
}
