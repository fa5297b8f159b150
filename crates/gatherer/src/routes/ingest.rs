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
//! events are neither recorded nor acknowledged.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use protocol::{ErrorReply, GatherReply, Rejected};

use crate::ingest::{parse_body, BodyError, Framing, TimeRules, ValidEvent};
use crate::state::AppState;
use crate::wal::WalError;

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
            GatherError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatherError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatherError::Payload(_) | GatherError::Body(_) | GatherError::NothingValid(_) => {
                StatusCode::BAD_REQUEST
            }
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
            GatherError::ShuttingDown | GatherError::Backpressure | GatherError::Wal(_) => {
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
#[utoipa::path(
    post, path = "/gather", tag = "ingest",
    request_body(
        content = protocol::Event,
        description = "One event, an array of events, or (as application/x-ndjson) one event per line",
        content_type = "application/json"
    ),
    responses(
        (status = 200, description = "Accepted (a batch lists refused items)", body = GatherReply),
        (status = 400, description = "Malformed JSON, an invalid single event, or nothing valid in a batch", body = ErrorReply),
        (status = 401, description = "[auth] ingest_tokens is set and the Bearer token is missing or wrong", body = ErrorReply),
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
    if !super::bearer_allowed(&req, &state.ingest_tokens) {
        return Err(GatherError::Unauthorized);
    }
    if state.is_shutting_down() {
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
    let rows = if let Some(wal) = &state.wal {
        let durable = match wal.append(&parsed.events) {
            Ok(pending) => pending.durable().await,
            Err(e) => Err(e),
        };
        let guard = match durable {
            Ok(guard) => guard,
            Err(e) => {
                tracing::warn!(error = %e, events = accepted, "refused: the write-ahead log failed");
                return Err(GatherError::Wal(e));
            }
        };
        guard
            .aggregator()
            .record_all(&parsed.events, ValidEvent::fields)
    } else {
        state
            .aggregator
            .record_all(&parsed.events, ValidEvent::fields)
    };
    state.backlog.add(rows as u64);
    metrics::counter!("gatherer_events_accepted_total").increment(accepted);
    if !rejected.is_empty() {
        metrics::counter!("gatherer_events_rejected_total", "reason" => "invalid")
            .increment(rejected.len() as u64);
    }
    Ok(HttpResponse::Ok().json(GatherReply {
        ok: true,
        accepted,
        rejected: parsed.is_batch.then_some(rejected),
    }))
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
