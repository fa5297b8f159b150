//! `POST /api/v1/anomalies/{id}/approve` and `/dismiss`: an analyst's verdict, with who
//! decided it, when, an optional comment and an optional reason. Dismissing as `expected`
//! teaches the anomaly's series ([`crate::teachings`]) in the verdict's transaction; any
//! other verdict on the anomaly withdraws what it taught.

use actix_web::{post, web, HttpRequest, HttpResponse};
use protocol::{Status, Verdict, VerdictReason};
use sqlx::Acquire;

use super::{Analyst, ApiError};
use crate::state::AppState;
use crate::{store, teachings};

/// The verdict an endpoint records, and the reason that fits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Dismiss,
}

impl Decision {
    fn status(self) -> Status {
        match self {
            Decision::Approve => Status::Approved,
            Decision::Dismiss => Status::Dismissed,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Dismiss => "dismiss",
        }
    }

    fn other(self) -> Decision {
        match self {
            Decision::Approve => Decision::Dismiss,
            Decision::Dismiss => Decision::Approve,
        }
    }

    fn fitting_reason(self) -> VerdictReason {
        match self {
            Decision::Approve => VerdictReason::Real,
            Decision::Dismiss => VerdictReason::Expected,
        }
    }
}

/// Reads a verdict's body (empty = no comment, no reason); the error names the field.
fn parse_verdict(body: &[u8], decision: Decision) -> Result<Verdict, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Verdict::default());
    }
    let fitting = decision.fitting_reason().as_str();
    let shape = format!("expected {{\"comment\": \"…\", \"reason\": \"{fitting}\"}}");
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad("body", format!("{shape}: {e}")))?;
    if let Some(reason) = value.get("reason").filter(|r| !r.is_null()) {
        let reason: VerdictReason = serde_json::from_value(reason.clone()).map_err(|_| {
            ApiError::bad(
                "reason",
                format!("{reason} is not a reason; with this verdict, give \"{fitting}\""),
            )
        })?;
        if reason != decision.fitting_reason() {
            return Err(ApiError::bad(
                "reason",
                format!(
                    "\"{}\" is a reason to {}, not to {}; give \"{fitting}\"",
                    reason.as_str(),
                    decision.other().verb(),
                    decision.verb()
                ),
            ));
        }
    }
    let verdict: Verdict = serde_json::from_value(value)
        .map_err(|e| ApiError::bad("body", format!("{shape}: {e}")))?;
    if verdict.comment.as_ref().is_some_and(|c| c.len() > 10_000) {
        return Err(ApiError::bad("comment", "longer than 10 000 bytes"));
    }
    Ok(verdict)
}

async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
    decision: Decision,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path
        .parse()
        .map_err(|_| ApiError::bad("id", format!("{:?} is not an anomaly id", path.as_str())))?;
    let verdict = parse_verdict(&body, decision)?;
    let user = Analyst::of(&req).name;
    let mut tx = state.pool.begin().await?;
    let conn = tx.acquire().await?;
    let found = store::decide(
        &mut *conn,
        id,
        decision.status(),
        verdict.reason,
        &user,
        verdict.comment.as_deref(),
    )
    .await?;
    if !found {
        return Err(ApiError::NotFound(format!("no anomaly with id {id}")));
    }
    match verdict.reason {
        Some(VerdictReason::Expected) => {
            teachings::teach(&mut *conn, id, state.feedback_ttl, &user).await?
        }
        _ => teachings::withdraw(&mut *conn, id).await?,
    }
    tx.commit().await?;
    state.state_cache.invalidate();
    match store::anomaly_by_id(&state.pool, id).await? {
        Some(anomaly) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": anomaly})))
        }
        None => Err(ApiError::NotFound(format!("no anomaly with id {id}"))),
    }
}

/// Approves an anomaly: an analyst's verdict, with who, when and an optional comment.
///
/// `"reason": "real"` says it is a real anomaly; like every incident, it stays out of what
/// its series learns as normal. Any other reason is refused (400 naming `reason`).
#[utoipa::path(
    post, path = "/api/v1/anomalies/{id}/approve", tag = "analysts", security(("basic" = [])),
    params(("id" = u64, Path)),
    request_body(
        content = Option<protocol::Verdict>, content_type = "application/json",
        example = json!({"reason": "real", "comment": "bot flood, blocked"}),
    ),
    responses(
        (status = 200, description = "The anomaly as it now is"),
        (status = 400, description = "A bad body; a `reason` other than `real` is refused, naming `reason`", body = protocol::ErrorReply),
        (status = 404, description = "No such anomaly", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/anomalies/{id}/approve")]
pub async fn approve(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, Decision::Approve).await
}

/// Dismisses an anomaly: an analyst's verdict, with who, when and an optional comment.
///
/// `"reason": "expected"` says the series does this (a nightly batch job) and teaches it
/// so for `feedback_ttl`, counted from the anomaly's start: a later anomaly of the series
/// whose every alarm is the same metric, in the same direction and at most about 1.5
/// times the deviation dismissed is recorded as a warning at most, names this anomaly in
/// `taught_by`, and is never sent to the webhook. Anything larger still alarms. Any other
/// reason is refused (400 naming `reason`); another verdict later withdraws the teaching.
#[utoipa::path(
    post, path = "/api/v1/anomalies/{id}/dismiss", tag = "analysts", security(("basic" = [])),
    params(("id" = u64, Path)),
    request_body(
        content = Option<protocol::Verdict>, content_type = "application/json",
        example = json!({"reason": "expected", "comment": "nightly batch job"}),
    ),
    responses(
        (status = 200, description = "The anomaly as it now is"),
        (status = 400, description = "A bad body; a `reason` other than `expected` is refused, naming `reason`", body = protocol::ErrorReply),
        (status = 404, description = "No such anomaly", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/anomalies/{id}/dismiss")]
pub async fn dismiss(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, Decision::Dismiss).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str, decision: Decision) -> String {
        match parse_verdict(body.as_bytes(), decision) {
            Err(ApiError::BadParameter { parameter, .. }) => parameter.to_owned(),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_reason_must_be_known_and_fit_the_verdict() {
        let expected = parse_verdict(br#"{"reason":"expected"}"#, Decision::Dismiss).unwrap();
        assert_eq!(expected.reason, Some(VerdictReason::Expected));
        let real = parse_verdict(br#"{"reason":"real","comment":"x"}"#, Decision::Approve);
        assert_eq!(real.unwrap().reason, Some(VerdictReason::Real));
        assert_eq!(parse_verdict(b" ", Decision::Dismiss).unwrap().reason, None);
        let plain = parse_verdict(br#"{"comment":"x","reason":null}"#, Decision::Dismiss);
        assert_eq!(plain.unwrap().reason, None);
        assert_eq!(
            refused(r#"{"reason":"boring"}"#, Decision::Dismiss),
            "reason"
        );
        assert_eq!(
            refused(r#"{"reason":"Expected"}"#, Decision::Dismiss),
            "reason"
        );
        assert_eq!(refused(r#"{"reason":3}"#, Decision::Dismiss), "reason");
        assert_eq!(refused(r#"{"reason":"real"}"#, Decision::Dismiss), "reason");
        assert_eq!(
            refused(r#"{"reason":"expected"}"#, Decision::Approve),
            "reason"
        );
        assert_eq!(refused(r#"{"comment":4}"#, Decision::Approve), "body");
        assert_eq!(refused("{", Decision::Approve), "body");
    }
}
