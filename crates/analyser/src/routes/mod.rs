//! HTTP handlers, one module per route group, with the error type of this boundary and
//! the authentication middleware.

pub mod anomalies;
pub mod assets;
pub mod dashboard;
pub mod datasets;
pub mod health;
pub mod openapi;
pub mod pull;
pub mod report;
pub mod reports;
pub mod series;
pub mod silences;
pub mod state;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use protocol::ErrorReply;

use crate::auth::{required_role, AuthError, User};
use crate::configuration::Role;
use crate::pull::PullError;
use crate::state::AppState;

/// Every error the analyser's API answers with, mapped to a status and a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{parameter}: {message}")]
    BadParameter {
        parameter: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cross-origin request refused: {0}")]
    CrossOrigin(String),
    #[error("this needs the {} role; {user} is {}", needs.as_str(), has.as_str())]
    Forbidden {
        user: String,
        has: Role,
        needs: Role,
    },
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error("the analyser's database did not answer")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    pub fn bad(parameter: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadParameter {
            parameter,
            message: message.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Auth(AuthError::Unauthorized) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::TooManyFailures) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CrossOrigin(_) | ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Pull(PullError::Busy(_) | PullError::Superseded(_)) => StatusCode::CONFLICT,
            ApiError::Pull(PullError::Gatherer(_)) => StatusCode::BAD_GATEWAY,
            ApiError::Database(e) if unreadable(e) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Pull(PullError::Database(_)) | ApiError::Database(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Pull(PullError::Snapshot { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let reply = match self {
            ApiError::BadParameter { parameter, .. } => {
                ErrorReply::for_parameter(parameter, self.to_string())
            }
            ApiError::Database(e) if unreadable(e) => {
                tracing::error!(error = %e, "a stored record could not be read");
                ErrorReply::new("a stored record could not be read")
            }
            ApiError::Database(e) | ApiError::Pull(PullError::Database(e)) => {
                tracing::error!(error = %e, "database error");
                ErrorReply::new("the analyser's database did not answer")
            }
            ApiError::Pull(e @ PullError::Snapshot { .. }) => {
                tracing::error!(error = %e, "snapshot error");
                ErrorReply::new("a detector snapshot could not be written or read back")
            }
            _ => ErrorReply::new(self.to_string()),
        };
        if let ApiError::Forbidden { needs, .. } = self {
            return response.json(RoleReply {
                ok: false,
                error: reply.error,
                required_role: *needs,
            });
        }
        match self {
            ApiError::Auth(AuthError::Unauthorized) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"analyser\""),
                ));
            }
            ApiError::Auth(AuthError::TooManyFailures) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("60")));
            }
            _ => {}
        }
        response.json(reply)
    }
}

/// A row the database answered with but that does not parse (a word outside its
/// vocabulary, malformed JSON): the analyser's fault, not an outage.
fn unreadable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. }
    )
}

/// A `403` for a request beyond the user's role: the error, and the role it needs.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoleReply {
    /// Always `false`.
    pub ok: bool,
    #[schema(example = "this needs the analyst role; vic is viewer")]
    pub error: String,
    /// The least role allowed to make this request.
    pub required_role: Role,
}

/// The authenticated user, put in the request by [`require_auth`].
#[derive(Debug, Clone)]
pub struct Analyst(pub User);

impl Analyst {
    /// The user of a request (`anonymous` admin when started without authentication).
    pub fn of(req: &HttpRequest) -> User {
        req.extensions().get::<Analyst>().map_or_else(
            || User {
                name: "anonymous".to_owned(),
                role: Role::Admin,
            },
            |a| a.0.clone(),
        )
    }
}

/// Paths anyone may read: probes, metrics, the API description and its page.
fn is_public(path: &str) -> bool {
    path.starts_with("/health/")
        || path == "/metrics"
        || path == "/api/v1/openapi.json"
        || path.starts_with("/api/v1/docs")
}

/// Basic auth on every non-public path, then the user's role against the one the request
/// needs ([`required_role`]: the only place permissions are decided); a same-origin check
/// on state-changing requests (a browser sends basic credentials to any page that posts
/// here, so a foreign page's POST must not pass).
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if is_public(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let verdict = match &state.users {
        None => Ok(User {
            name: "anonymous".to_owned(),
            role: Role::Admin,
        }),
        Some(users) => {
            let header = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let client = req.peer_addr().map(|a| a.ip());
            users.check(header, client).map_err(ApiError::from)
        }
    };
    let checked = verdict.and_then(|user| {
        let needs = required_role(req.method(), req.path());
        if user.role < needs {
            return Err(ApiError::Forbidden {
                user: user.name,
                has: user.role,
                needs,
            });
        }
        if req.method() != actix_web::http::Method::GET {
            same_origin(req.request())?;
        }
        Ok(user)
    });
    match checked {
        Ok(user) => {
            req.extensions_mut().insert(Analyst(user));
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => {
            let (request, _) = req.into_parts();
            let response = error.error_response().map_into_right_body();
            Ok(ServiceResponse::new(request, response))
        }
    }
}

/// A request with an `Origin` (every browser POST has one) must come from this host.
fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let host = req.connection_info().host().to_owned();
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    if origin_host == host {
        Ok(())
    } else {
        Err(ApiError::CrossOrigin(format!(
            "origin {origin} is not {host}"
        )))
    }
}

/// A time parameter: RFC 3339 or unix seconds.
pub fn parse_time(parameter: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| ApiError::bad(parameter, "out of range"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad(
                parameter,
                format!("{text:?} is not an RFC 3339 time or unix seconds"),
            )
        })
}

/// The dataset a request names, or the only one when it names none.
pub fn pick_dataset(
    state: &AppState,
    name: Option<&str>,
) -> Result<crate::configuration::DatasetSettings, ApiError> {
    let datasets = state.datasets.list();
    match name {
        Some(name) => state
            .dataset(name)
            .ok_or_else(|| ApiError::NotFound(format!("no dataset named {name:?}"))),
        None if datasets.len() == 1 => Ok(datasets[0].clone()),
        None => Err(ApiError::bad(
            "dataset",
            "required: this analyser has several datasets",
        )),
    }
}
