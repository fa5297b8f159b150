//! `GET /api/v1/openapi.json` and `GET /api/v1/docs` (public: it holds no data): the API described from the
//! handlers and the `protocol` types, so the document cannot drift from the code.

use actix_web::http::Method;
use actix_web::{get, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::required_role;
use crate::configuration::Role;

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Pulse analyser", description = "Anomalies found in the gatherer's metrics, for analysts (HTTP basic auth).\n\n\
        Each user has a role: `viewer` reads; `analyst` also gives verdicts, manages silences and \
        triggers pulls; `admin` also manages datasets (a configured user without a role is an \
        admin). Each operation names the role it needs in `x-required-role`; a request beyond \
        the user's role gets 403 with a body naming the role it needs."),
    paths(
        super::state::state,
        super::series::series,
        super::report::report,
        super::reports::list,
        super::reports::one,
        super::anomalies::approve,
        super::anomalies::dismiss,
        super::pull::pull,
        super::silences::list,
        super::silences::create,
        super::silences::end,
        super::datasets::me,
        super::datasets::list,
        super::datasets::create,
        super::datasets::one,
        super::datasets::replace,
        super::datasets::delete,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        super::dashboard::dashboard,
        super::assets::asset,
        document,
        docs,
        redoc,
    ),
    components(schemas(
        super::RoleReply,
        crate::configuration::Role,
        crate::silences::Silence,
        crate::silences::NewSilence,
        crate::silences::Weekly,
        crate::reports::StoredReport,
        protocol::VerdictReason,
        protocol::Metric,
        protocol::Severity,
        protocol::Check,
        protocol::IncidentState,
        protocol::Status,
        crate::configuration::DatasetSettings,
        crate::configuration::Method,
        super::datasets::Me,
        super::datasets::ModelReply,
    )),
    modifiers(&BasicAuth, &Roles)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// Names on each authenticated operation the role it needs, from the same function that
/// checks it ([`required_role`]), and documents the 403 of the roles below it.
#[derive(Debug)]
struct Roles;

impl Modify for Roles {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            for (method, operation) in [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
            ] {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                if operation.security.is_none() {
                    continue;
                }
                let role = required_role(&method, path);
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert("x-required-role".to_owned(), role.as_str().into());
                let note = format!("Needs the `{}` role.", role.as_str());
                operation.description = Some(match operation.description.take() {
                    Some(text) => format!("{text}\n\n{note}"),
                    None => note,
                });
                if role > Role::Viewer {
                    operation.responses.responses.insert(
                        "403".to_owned(),
                        ResponseBuilder::new()
                            .description(format!(
                                "Beyond the user's role (needs `{}`), or a cross-origin request",
                                role.as_str()
                            ))
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("RoleReply")))
                                    .build(),
                            )
                            .into(),
                    );
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3 document")))]
#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The API reference, rendered by Redoc from this service's document.
#[utoipa::path(get, path = "/api/v1/docs", tag = "operations", responses((status = 200, description = "HTML", content_type = "text/html")))]
#[get("/api/v1/docs")]
pub async fn docs() -> HttpResponse {
    service::http::docs_page("Pulse analyser API")
}

/// Redoc's script, for the page above.
#[utoipa::path(get, path = "/api/v1/docs/redoc.standalone.js", tag = "operations", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/api/v1/docs/redoc.standalone.js")]
pub async fn redoc() -> HttpResponse {
    service::http::redoc_script()
}
