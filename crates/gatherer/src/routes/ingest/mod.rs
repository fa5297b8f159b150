//! `POST /gather`: accept metric events.
//!
//! A `200` means every accepted event is in the aggregator and will reach `events_count`
//! exactly once. When the rows waiting for MySQL are at their bound (`max_pending_rows`:
//! MySQL is slow or away) the whole request is refused with 503 and `Retry-After`, before
//! anything is recorded: backpressure, never silent loss. Events summed into rows already
//! held cost nothing, so a healthy MySQL never causes a 503, whatever the event rate.
//!
//! With the write-ahead log on, the events are appended to the log first and recorded only
//! once the log's `fsync` has returned; a log that cannot be written answers 503, and the
//! events are neither recorded nor acknowledged. A client that goes away while its record
//! is being written does not change that: the events are recorded once the record is on
//! disk, so the aggregator always holds exactly what the log holds.
//!
//! An `Idempotency-Key` makes a retry safe (see [`crate::idempotency`]): the key is
//! claimed once the body has arrived, before anything is parsed or recorded; a key
//! accepted within the window is answered with its original reply and
//! `Idempotent-Replayed: true`, a key still in flight is waited for (at most
//! `request_body_timeout`, then 409), and a refusal lets the key go.

use std::sync::Arc;

use actix_web::http::header::{self, ContentType, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use protocol::{ErrorReply, GatherReply, Rejected};

use crate::idempotency::{self, Claimed, IdempotencyKey, InvalidKey};
use crate::ingest::{parse_body, BodyError, Framing, TimeRules, ValidEvent};
use crate::state::AppState;
use crate::wal::{RecordKey, WalError};

mod logged;
use logged::{KeyedReply, LoggedRequest};

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("shutting down; retry against another replica")]
    ShuttingDown,
    #[error("too many events waiting for the database; retry later")]
    Backpressure,
    #[error("unsupported content type {0:?}: send application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    #[error("body larger than max_body_bytes ({0} bytes)")]
    TooLarge(usize),
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("cannot write the events to disk; retry later")]
    Wal(#[source] WalError),
    #[error("could not read the body: {0}")]
    Payload(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("no valid event in the batch")]
    NothingValid(Vec<Rejected>),
    #[error(transparent)]
    BadKey(#[from] InvalidKey),
    #[error("a request with this Idempotency-Key is still being handled; retry later")]
    KeyInFlight,
}

impl GatherError {
    /// The `reason` label of `gatherer_events_rejected_total`.
    fn reason(&self) -> &'static str {
        match self {
            GatherError::Unauthorized => "unauthorized",
            GatherError::ShuttingDown => "shutting_down",
            GatherError::Backpressure => "backpressure",
            GatherError::UnsupportedMediaType(_) => "unsupported_media_type",
            GatherError::TooLarge(_) => "too_large",
            GatherError::BodyTimeout(_) => "body_timeout",
            GatherError::Wal(_) => "wal",
            GatherError::Payload(_)
            | GatherError::Body(BodyError::Malformed(_) | BodyError::Empty) => "malformed",
            GatherError::Body(BodyError::InvalidEvent(_)) | GatherError::NothingValid(_) => {
                "invalid"
            }
            GatherError::BadKey(_) => "invalid_idempotency_key",
            GatherError::KeyInFlight => "idempotency_key_in_flight",
        }
    }
}

impl ResponseError for GatherError {
    fn status_code(&self) -> StatusCode {
        match self {
            GatherError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatherError::ShuttingDown | GatherError::Backpressure | GatherError::Wal(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatherError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatherError::KeyInFlight => StatusCode::CONFLICT,
            GatherError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatherError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatherError::Payload(_)
            | GatherError::Body(_)
            | GatherError::NothingValid(_)
            | GatherError::BadKey(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let refused = match self {
            GatherError::NothingValid(rejected) => rejected.len().max(1) as u64,
            _ => 1,
        };
        metrics::counter!("gatherer_events_rejected_total", "reason" => self.reason())
            .increment(refused);
        let mut response = HttpResponse::build(self.status_code());
        match self {
            GatherError::ShuttingDown
            | GatherError::Backpressure
            | GatherError::Wal(_)
            | GatherError::KeyInFlight => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            GatherError::Unauthorized => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        let mut reply = ErrorReply::new(self.to_string());
        if let GatherError::NothingValid(rejected) = self {
            reply.rejected = Some(rejected.clone());
        }
        response.json(reply)
    }
}

/// Ingest events: one JSON object, a JSON array of objects, or NDJSON (one per line).
///
/// With an `Idempotency-Key`, a retry is counted once: within `idempotency_window` a
/// request whose key was accepted gets the original reply and records nothing; one whose
/// key is still being handled waits for that outcome; a refused request (4xx, 503) does
/// not use up its key.
#[utoipa::path(
    post, path = "/gather", tag = "ingest",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters naming this request: retries with the same key are counted once")),
    request_body(
        content = protocol::Event,
        description = "One event, an array of events, or (as application/x-ndjson) one event per line",
        content_type = "application/json"
    ),
    responses(
        (status = 200, description = "Accepted (a batch lists refused items); for a retry of an Idempotency-Key accepted within idempotency_window, the original reply, with Idempotent-Replayed: true and nothing recorded", body = GatherReply,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the original reply to an earlier request with the same Idempotency-Key"))),
        (status = 400, description = "Malformed JSON, an invalid single event, nothing valid in a batch, or an Idempotency-Key that is not 1 to 255 visible ASCII characters", body = ErrorReply),
        (status = 401, description = "[auth] ingest_tokens is set and the Bearer token is missing or wrong", body = ErrorReply,
            example = json!({"ok": false, "error": "missing or unknown bearer token"})),
        (status = 409, description = "Another request with this Idempotency-Key was still being handled after request_body_timeout; retry after Retry-After", body = ErrorReply),
        (status = 413, description = "Body over max_body_bytes", body = ErrorReply),
        (status = 415, description = "Content type other than JSON, NDJSON, form or none", body = ErrorReply),
        (status = 503, description = "Rows waiting for MySQL at max_pending_rows, shutting down, or the write-ahead log failed; retry after Retry-After", body = ErrorReply),
    )
)]
#[post("/gather")]
pub async fn gather(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, GatherError> {
    let key = idempotency_key(&req)?;
    if !super::bearer_allowed(&req, &state.ingest_tokens) {
        return Err(GatherError::Unauthorized);
    }
    // A retry of a key already accepted is answered even while shutting down: it records
    // nothing, and another replica would not know the key.
    if state.is_shutting_down() && key.is_none() {
        return Err(GatherError::ShuttingDown);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    let framing =
        Framing::from_content_type(content_type).map_err(GatherError::UnsupportedMediaType)?;
    let body = tokio::time::timeout(
        state.body_timeout,
        read_body(&req, payload, state.ingest.max_body_bytes),
    )
    .await
    .map_err(|_| GatherError::BodyTimeout(state.body_timeout))??;

    let claim = match &key {
        None => None,
        Some(key) => match state
            .keys
            .claim(
                key,
                || chrono::Utc::now().timestamp_millis(),
                state.body_timeout,
            )
            .await
        {
            Claimed::Replay(reply) => {
                metrics::counter!("gatherer_idempotent_replays_total").increment(1);
                return Ok(HttpResponse::Ok()
                    .content_type(ContentType::json())
                    .insert_header((idempotency::REPLAYED_HEADER, "true"))
                    .body(reply.to_vec()));
            }
            Claimed::New(claim) => Some(claim),
            Claimed::Busy => return Err(GatherError::KeyInFlight),
        },
    };
    // From here on, every refusal drops the claim, which lets the key go.
    if state.is_shutting_down() {
        return Err(GatherError::ShuttingDown);
    }
    let rules = TimeRules {
        now_ms: chrono::Utc::now().timestamp_millis(),
        max_age_ms: i64::try_from(state.ingest.max_event_age.as_millis()).unwrap_or(i64::MAX),
    };
    let parsed = parse_body(&body, framing, &rules)?;
    let rejected: Vec<Rejected> = parsed
        .rejected
        .into_iter()
        .map(|(index, error)| Rejected { index, error })
        .collect();
    if parsed.events.is_empty() {
        return Err(GatherError::NothingValid(rejected));
    }
    let accepted = parsed.events.len() as u64;
    if state.backlog.is_full() {
        return Err(GatherError::Backpressure);
    }
    let reply = GatherReply {
        ok: true,
        accepted,
        rejected: parsed.is_batch.then_some(rejected),
    };
    let rejected_items = reply.rejected.as_ref().map_or(0, Vec::len) as u64;
    // The reply retries will get: serialised once, before the events are logged.
    let keyed = claim.map(|claim| KeyedReply {
        claim,
        accepted_ms: chrono::Utc::now().timestamp_millis(),
        body: Arc::from(serde_json::to_vec(&reply).unwrap_or_default()),
    });
    let keyed_body = keyed.as_ref().map(|k| k.body.clone());
    if let Some(wal) = &state.wal {
        let record_key = keyed.as_ref().map(|k| RecordKey {
            key: k.claim.key(),
            accepted_ms: k.accepted_ms,
            reply: &k.body,
        });
        let pending = match wal.append(&parsed.events, record_key) {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, events = accepted, "refused: the write-ahead log failed");
                return Err(GatherError::Wal(e));
            }
        };
        let logged = LoggedRequest {
            pending: Some(pending),
            events: &parsed.events,
            keyed,
            backlog: state.backlog.clone(),
        };
        if let Err(e) = logged.record_once_durable().await {
            tracing::warn!(error = %e, events = accepted, "refused: the write-ahead log failed");
            return Err(GatherError::Wal(e));
        }
    } else {
        let rows = state
            .aggregator
            .record_all(&parsed.events, ValidEvent::fields);
        state.backlog.add(rows as u64);
        if let Some(keyed) = keyed {
            keyed.complete();
        }
    }
    metrics::counter!("gatherer_events_accepted_total").increment(accepted);
    if rejected_items > 0 {
        metrics::counter!("gatherer_events_rejected_total", "reason" => "invalid")
            .increment(rejected_items);
    }
    Ok(match keyed_body {
        Some(body) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(body.to_vec()),
        None => HttpResponse::Ok().json(reply),
    })
}

/// The request's `Idempotency-Key`, if it has one. Requests without the header pay this
/// call (a header lookup) and nothing else; `scripts/bench.sh instructions` counts it.
#[inline(never)]
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, InvalidKey> {
    // A name built once: looked up by a `&str`, it would be parsed (and, not being a
    // standard header, allocated) on every request.
    const NAME: HeaderName = HeaderName::from_static(idempotency::HEADER);
    IdempotencyKey::from_header_values(req.headers().get_all(NAME).map(HeaderValue::as_bytes))
}

/// Reads the whole body, refusing it (413) as soon as it passes `limit`.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, GatherError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatherError::TooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| GatherError::Payload(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(GatherError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
