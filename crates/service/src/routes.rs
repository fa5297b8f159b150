//! The routes a service answers, as its OpenAPI document describes them, enforced at the
//! edge: a known path asked with another method gets `405` with `Allow`, and a query
//! parameter the operation does not take gets `400` naming it, on every endpoint. A
//! misspelt filter (`severty=alarm`) would otherwise be ignored and the reply look right.
//!
//! The document is the one source: the services' tests check that every handler is in it,
//! so a route cannot be served without being described, nor take a parameter that is not.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use protocol::ErrorReply;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

/// Every documented path, with its methods and the query parameters each one takes.
#[derive(Debug)]
pub struct Routes {
    paths: Vec<PathRoutes>,
}

#[derive(Debug)]
struct PathRoutes {
    template: String,
    pattern: ResourceDef,
    operations: Vec<(Method, Vec<String>)>,
    /// The `Allow` header of a `405` on this path.
    allow: HeaderValue,
}

impl Routes {
    /// The routes of a service's OpenAPI document.
    pub fn from_openapi(document: &OpenApi) -> Self {
        let mut paths = Vec::new();
        for (template, item) in &document.paths.paths {
            let shared = query_names(item.parameters.as_deref().unwrap_or_default());
            let operations: Vec<(Method, Vec<String>)> = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
                (Method::HEAD, &item.head),
                (Method::OPTIONS, &item.options),
            ]
            .into_iter()
            .filter_map(|(method, operation)| {
                operation.as_ref().map(|operation| {
                    let mut names = shared.clone();
                    names.extend(operation_query_names(operation));
                    (method, names)
                })
            })
            .collect();
            let allow = operations
                .iter()
                .map(|(method, _)| method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            paths.push(PathRoutes {
                template: template.clone(),
                pattern: ResourceDef::new(template.as_str()),
                operations,
                allow: HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("GET")),
            });
        }
        // Literal paths before templates, so `/assets/x` never shadows a literal sibling.
        paths.sort_by_key(|p| p.template.contains('{'));
        Routes { paths }
    }

    fn find(&self, path: &str) -> Option<&PathRoutes> {
        self.paths.iter().find(|p| p.pattern.is_match(path))
    }

    /// What a request breaks of the document, if anything.
    pub fn check(&self, method: &Method, path: &str, query: &str) -> Result<(), Refusal> {
        let Some(route) = self.find(path) else {
            return Ok(());
        };
        let Some((_, known)) = route.operations.iter().find(|(m, _)| m == method) else {
            return Err(Refusal::MethodNotAllowed {
                method: method.clone(),
                path: route.template.clone(),
                allow: route.allow.clone(),
            });
        };
        let mut unknown: Vec<String> = Vec::new();
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            if !name.is_empty()
                && !known.iter().any(|k| *k == name)
                && !unknown.iter().any(|u| *u == name)
            {
                unknown.push(name.into_owned());
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Refusal::UnknownQueryParameters {
            unknown,
            operation: format!("{method} {}", route.template),
            known: known.clone(),
        })
    }
}

/// Why a request does not fit the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path exists, not with this method.
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: HeaderValue,
    },
    /// Query parameters the operation does not take, in the order given.
    UnknownQueryParameters {
        unknown: Vec<String>,
        operation: String,
        known: Vec<String>,
    },
}

impl Refusal {
    /// The JSON error reply, `405` with `Allow` or `400` naming the parameters.
    pub fn response(&self) -> HttpResponse {
        match self {
            Refusal::MethodNotAllowed {
                method,
                path,
                allow,
            } => HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, allow.clone()))
                .json(ErrorReply::new(format!(
                    "{method} is not allowed on {path}; use {}",
                    allow.to_str().unwrap_or_default()
                ))),
            Refusal::UnknownQueryParameters {
                unknown,
                operation,
                known,
            } => {
                let takes = if known.is_empty() {
                    "no query parameters".to_owned()
                } else {
                    known.join(", ")
                };
                let (noun, first) = match unknown.as_slice() {
                    [one] => ("parameter", one),
                    [first, ..] => ("parameters", first),
                    [] => ("parameters", &String::new()),
                };
                HttpResponse::BadRequest().json(ErrorReply::for_parameter(
                    first,
                    format!(
                        "unknown query {noun} {}: {operation} takes {takes}",
                        unknown.join(", ")
                    ),
                ))
            }
        }
    }
}

/// The names of the query parameters among `parameters` (the services' documents hold
/// their parameters inline, never as references).
fn query_names(parameters: &[RefOr<Parameter>]) -> Vec<String> {
    parameters
        .iter()
        .filter_map(|p| match p {
            RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query) => Some(p.name.clone()),
            _ => None,
        })
        .collect()
}

fn operation_query_names(operation: &Operation) -> Vec<String> {
    query_names(operation.parameters.as_deref().unwrap_or_default())
}

/// Middleware (`middleware::from_fn(service::routes::check_query)`, with the service's
/// [`Routes`] in `app_data` as `web::Data<Routes>`): refuses query parameters the
/// operation does not take. A request without a query string costs one comparison.
pub async fn check_query(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !req.query_string().is_empty() {
        if let Some(routes) = req.app_data::<web::Data<Routes>>() {
            if let Err(refusal @ Refusal::UnknownQueryParameters { .. }) =
                routes.check(req.method(), req.path(), req.query_string())
            {
                let (request, _) = req.into_parts();
                return Ok(ServiceResponse::new(
                    request,
                    refusal.response().map_into_right_body(),
                ));
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The default service: `405` with `Allow` for a documented path asked with another
/// method, `404 {"ok":false,"error":"no such endpoint"}` for anything else.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    if let Some(routes) = req.app_data::<web::Data<Routes>>() {
        if let Err(refusal @ Refusal::MethodNotAllowed { .. }) =
            routes.check(req.method(), req.path(), "")
        {
            return refusal.response();
        }
    }
    HttpResponse::NotFound().json(ErrorReply::new("no such endpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::{
        HttpMethod, OperationBuilder, ParameterBuilder, PathItem, PathsBuilder,
    };
    use utoipa::openapi::OpenApiBuilder;

    fn operation(query: &[&str]) -> Operation {
        let mut builder = OperationBuilder::new();
        for name in query {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query),
            );
        }
        builder
            .parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path),
            )
            .build()
    }

    fn routes() -> Routes {
        let paths = PathsBuilder::new()
            .path("/gather", PathItem::new(HttpMethod::Post, operation(&[])))
            .path(
                "/api/v1/state",
                PathItem::new(HttpMethod::Get, operation(&["dataset", "severity"])),
            )
            .path(
                "/api/v1/things/{id}",
                PathItem::new(HttpMethod::Get, operation(&[])),
            )
            .path(
                "/api/v1/things/{id}/approve",
                PathItem::new(HttpMethod::Post, operation(&[])),
            )
            .build();
        Routes::from_openapi(&OpenApiBuilder::new().paths(paths).build())
    }

    #[test]
    fn a_documented_request_passes() {
        let routes = routes();
        assert_eq!(routes.check(&Method::POST, "/gather", ""), Ok(()));
        assert_eq!(
            routes.check(
                &Method::GET,
                "/api/v1/state",
                "dataset=shop&severity=alarm&"
            ),
            Ok(())
        );
        assert_eq!(routes.check(&Method::GET, "/api/v1/things/7", ""), Ok(()));
        assert_eq!(routes.check(&Method::GET, "/nowhere", "x=1"), Ok(()));
    }

    #[test]
    fn a_misspelt_parameter_is_named() {
        let refusal = routes()
            .check(
                &Method::GET,
                "/api/v1/state",
                "severty=alarm&dataset=shop&x%20y=1&severty=warning",
            )
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::UnknownQueryParameters {
                unknown: vec!["severty".into(), "x y".into()],
                operation: "GET /api/v1/state".into(),
                known: vec!["dataset".into(), "severity".into()],
            }
        );
    }

    #[test]
    fn path_parameters_are_not_query_parameters() {
        assert!(routes()
            .check(&Method::GET, "/api/v1/things/7", "id=7")
            .is_err());
    }

    #[test]
    fn another_method_on_a_known_path_is_not_allowed() {
        let routes = routes();
        let Err(Refusal::MethodNotAllowed { allow, path, .. }) =
            routes.check(&Method::GET, "/gather", "")
        else {
            panic!("GET /gather should not be allowed");
        };
        assert_eq!(
            (allow.to_str().unwrap(), path.as_str()),
            ("POST", "/gather")
        );
        assert!(matches!(
            routes.check(&Method::GET, "/api/v1/things/7/approve", ""),
            Err(Refusal::MethodNotAllowed { .. })
        ));
    }
}
