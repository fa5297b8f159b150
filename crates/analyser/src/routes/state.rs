//! `GET /api/v1/state`: the anomalies, filtered, newest first, with where the analyser
//! stands.

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use std::sync::Arc;

use protocol::StateMeta;
use serde::Deserialize;

use super::{parse_time, pick_dataset, ApiError};
use crate::state::AppState;
use crate::store::{self, AnomalyFilter};

#[derive(Debug, Deserialize)]
pub struct StateParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    state: Option<String>,
    since: Option<String>,
    limit: Option<String>,
}

impl StateParams {
    fn filter(&self) -> Result<AnomalyFilter, ApiError> {
        let entity_id =
            match &self.entity_id {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| {
                    ApiError::bad("entity_id", format!("{text:?} is not an integer"))
                })?),
            };
        let severity = vocabulary("severity", self.severity.as_deref())?;
        let status = vocabulary("status", self.status.as_deref())?;
        let incident_state = vocabulary("state", self.state.as_deref())?;
        let limit = match &self.limit {
            None => 100,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad(
                        "limit",
                        format!("{text:?} is not between 1 and 1000"),
                    ))
                }
            },
        };
        Ok(AnomalyFilter {
            dataset: self.dataset.clone(),
            label: self.label.clone(),
            entity_id,
            severity,
            status,
            state: incident_state,
            since: self
                .since
                .as_deref()
                .map(|t| parse_time("since", t))
                .transpose()?,
            until: None,
            limit,
        })
    }
}

/// A filter's value, parsed into its vocabulary; a word outside it is a 400 naming the
/// parameter and the words it takes.
fn vocabulary<T>(parameter: &'static str, text: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = protocol::UnknownValue>,
{
    text.map(|text| {
        text.parse().map_err(|e: protocol::UnknownValue| {
            ApiError::bad(
                parameter,
                format!("expected {}", protocol::words(e.expected)),
            )
        })
    })
    .transpose()
}

/// Where the analyser stands: the `meta` of `/api/v1/state` and the dashboard's header.
pub fn meta(app: &AppState) -> StateMeta {
    let status = app.status();
    let lag_seconds = status
        .latest_event
        .map(|latest| (Utc::now().timestamp_millis() as f64 / 1000.0 - latest as f64).max(0.0));
    StateMeta {
        iterator: status.iterator,
        lag_seconds,
        series: status.series,
        last_pull_at: status.last_pull_at,
        gatherer: if status.gatherer_up { "up" } else { "down" }.to_owned(),
    }
}

/// The anomalies, newest first, with where the analyser stands.
#[utoipa::path(
    get, path = "/api/v1/state", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query), ("label" = Option<String>, Query), ("entity_id" = Option<i64>, Query),
        ("severity" = Option<String>, Query, description = "warning or alarm"),
        ("status" = Option<String>, Query, description = "the analyst's verdict: open, approved or dismissed"),
        ("state" = Option<String>, Query, description = "firing or resolved"),
        ("since" = Option<String>, Query, description = "anomalies that ended at or after (RFC 3339 or unix seconds)"),
        ("limit" = Option<u32>, Query, description = "1 to 1 000, default 100"),
    ),
    responses(
        (status = 200, body = protocol::StateReply),
        (status = 400, description = "A bad parameter, named in `parameter`", body = protocol::ErrorReply),
        (status = 401, description = "Missing or wrong credentials", body = protocol::ErrorReply,
            example = json!({"ok": false, "error": "missing or invalid credentials"})),
        (status = 404, description = "No such dataset", body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/state")]
pub async fn state(
    params: web::Query<StateParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // An unknown dataset is a 404, as on /report and /series: an empty list would read as
    // "nothing found" in a dataset that does not exist.
    if let Some(name) = &params.dataset {
        pick_dataset(&state, Some(name))?;
    }
    let filter = params.filter()?;
    let key = format!("{filter:?}");
    let data = match state.state_cache.get(&key) {
        Some(json) => json,
        None => {
            let version = state.state_cache.version();
            let anomalies = store::anomalies(&state.pool, &filter).await?;
            let json: Arc<str> = serde_json::to_string(&anomalies)
                .unwrap_or_else(|_| "[]".to_owned())
                .into();
            state.state_cache.put(key, version, json.clone());
            json
        }
    };
    let meta = meta(&state);
    // The reply is a `protocol::StateReply`; `data` is spliced in as the cached JSON.
    let meta = serde_json::to_string(&meta).unwrap_or_else(|_| "{}".to_owned());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(format!(r#"{{"ok":true,"data":{data},"meta":{meta}}}"#)))
}
