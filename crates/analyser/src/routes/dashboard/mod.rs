//! `GET /`: the analysts' dashboard, behind the same basic auth as the API.
//!
//! The server renders the page: where the analyser stands, a selector of the series it
//! holds step totals for, and the incidents (filtered by severity, state and verdict;
//! alarms first) with their signals in words a person reads and Approve / Dismiss buttons.
//! `assets/dashboard.js` then charts the chosen series from `/api/v1/series`: the metric
//! that fired, the expected value and its normal band under it, the incidents shaded, a
//! time range and drag to zoom; it posts verdicts (same origin, so the CSRF check passes)
//! and keeps the header current. Every value from the data (labels come from bots) is
//! escaped.

mod render;
#[cfg(test)]
mod tests;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use protocol::{Anomaly, IncidentState, Severity, StateMeta, Status, UnknownValue};
use serde::Deserialize;

pub use render::{escape, render};

use super::{Analyst, ApiError};
use crate::state::AppState;
use crate::store::{self, AnomalyFilter, SeriesKey};

/// Incidents listed on the page.
const LISTED: u32 = 500;
/// Series offered in the selector.
const SERIES_IN_SELECTOR: u32 = 5_000;

/// The page's query string: the series to chart and the table's filters.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
    metric: Option<String>,
    /// `alarm` or `warning`; absent = both.
    severity: Option<String>,
    /// `firing` or `resolved`; absent = both.
    state: Option<String>,
    /// The verdict: `open` (default), `approved`, `dismissed` or `any`.
    status: Option<String>,
}

/// The table's filters, as chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub severity: Option<Severity>,
    pub state: Option<IncidentState>,
    /// `None` = every verdict.
    pub status: Option<Status>,
}

/// A filter's value, parsed into its vocabulary; empty is no filter.
fn pick<T>(name: &'static str, value: &Option<String>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = UnknownValue>,
{
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e: UnknownValue| {
            ApiError::bad(
                name,
                format!("{v:?}: expected one of {}", e.expected.join(", ")),
            )
        }),
    }
}

impl Filters {
    fn from_params(params: &PageParams) -> Result<Self, ApiError> {
        let status = match params.status.as_deref() {
            None | Some("") => Some(Status::Open),
            Some("any") => None,
            _ => pick("status", &params.status)?,
        };
        Ok(Filters {
            severity: pick("severity", &params.severity)?,
            state: pick("state", &params.state)?,
            status,
        })
    }
}

/// A label of a dataset whose values are measurements (prices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelLabel {
    pub dataset: String,
    pub label: String,
}

/// What the page shows, gathered by the handler; [`render`] turns it into HTML.
#[derive(Debug)]
pub struct Page {
    pub user: String,
    /// Whether the user's role allows verdicts: without it the page shows no buttons.
    pub can_decide: bool,
    /// Whether the user's role allows silences: without it no "silence for" controls.
    pub can_silence: bool,
    pub meta: StateMeta,
    /// The incidents the filters select, newest first.
    pub incidents: Vec<Anomaly>,
    pub filters: Filters,
    pub known: Vec<SeriesKey>,
    /// Which labels are levels (prices), per dataset: their charts default to the level.
    pub levels: Vec<LevelLabel>,
    pub chosen: Option<SeriesKey>,
    pub metric: Option<String>,
}

#[utoipa::path(
    get, path = "/", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query), ("label" = Option<String>, Query), ("entity_id" = Option<i64>, Query),
        ("metric" = Option<String>, Query, description = "the metric to chart: count, events, avg, min or max"),
        ("severity" = Option<String>, Query, description = "list only alarm or warning incidents"),
        ("state" = Option<String>, Query, description = "list only firing or resolved incidents"),
        ("status" = Option<String>, Query, description = "the verdict to list: open (default), approved, dismissed or any"),
    ),
    responses((status = 200, description = "The dashboard (HTML)", content_type = "text/html"), (status = 400, body = protocol::ErrorReply), (status = 401, body = protocol::ErrorReply))
)]
#[get("/")]
pub async fn dashboard(
    req: HttpRequest,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filters = Filters::from_params(&params)?;
    let incidents = store::anomalies(
        &state.pool,
        &AnomalyFilter {
            severity: filters.severity,
            state: filters.state,
            status: filters.status,
            limit: LISTED,
            ..AnomalyFilter::default()
        },
    )
    .await?;
    let known = crate::step_blocks::known_series(&state.pool, SERIES_IN_SELECTOR).await?;
    let chosen = match (&params.dataset, &params.label, &params.entity_id) {
        (Some(dataset), Some(label), Some(entity)) => {
            entity.parse().ok().map(|entity_id| SeriesKey {
                dataset: dataset.clone(),
                label: label.clone(),
                entity_id,
            })
        }
        _ => None,
    };
    let levels = state
        .datasets
        .list()
        .iter()
        .flat_map(|d| {
            d.levels.iter().map(|label| LevelLabel {
                dataset: d.name.clone(),
                label: label.clone(),
            })
        })
        .collect();
    let user = Analyst::of(&req);
    // The same table the middleware enforces decides what the page offers.
    let can_decide = user.role
        >= crate::auth::required_role(
            &actix_web::http::Method::POST,
            "/api/v1/anomalies/0/approve",
        );
    let can_silence =
        user.role >= crate::auth::required_role(&actix_web::http::Method::POST, "/api/v1/silences");
    let page = Page {
        user: user.name,
        can_decide,
        can_silence,
        meta: super::state::meta(&state),
        incidents,
        filters,
        known,
        levels,
        chosen,
        metric: params.metric.clone(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Scripts and styles only from here; no framing, so no clickjacked Approve.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(render(&page)))
}
