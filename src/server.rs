//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, the status page, the tokens
//! API, and `POST /-/reload` when `server.enable_lifecycle` is set. GET and HEAD only
//! elsewhere; request bodies are refused. On the main listener the web configuration's basic
//! auth and headers apply to every route.

use std::sync::Arc;

use hyper::Request;
use hyper::body::{Body as _, Incoming};

use crate::httpd::{Body, Peer, Resp, respond};
use crate::metrics::exposition::Compressed;
use crate::metrics::{self, Metrics};
use crate::reload::{LiveConfig, Reload};
use crate::render::Renders;
use crate::state::Shared;
use crate::webconfig::{Auth, LiveWebConfig};

/// What the handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The configuration in force.
    pub config: LiveConfig,
    /// Re-reads and applies the configuration (`POST /-/reload`).
    pub reload: Reload,
    /// Published state.
    pub shared: Arc<Shared>,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock (for "days left" on the status page).
    pub clock: crate::clock::Clock,
    /// The web configuration (`--web.config.file`): basic auth and headers of the main
    /// listener.
    pub web: Option<Arc<LiveWebConfig>>,
    /// The kept bodies of `/metrics`, the tokens API and the status page.
    pub renders: Arc<Renders>,
    /// The main listener's open connections.
    pub connections: crate::httpd::Connections,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Everything.
    All,
    /// Only `/healthz` and `/readyz` (the plain probe port).
    ProbesOnly,
}

/// Handles one request.
pub async fn handle(state: AdminState, routes: Routes, req: Request<Incoming>) -> Resp {
    // The probe port stays outside the web configuration: plain, open, probes only.
    let web = match (&state.web, routes) {
        (Some(live), Routes::All) => Some((live, live.current())),
        _ => None,
    };
    let client = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let auth = match &web {
        Some((live, active)) => {
            live.authorize(
                active,
                req.headers().get(http::header::AUTHORIZATION),
                client,
            )
            .await
        }
        None => Auth::Allowed,
    };
    let mut resp = match auth {
        Auth::Allowed => route(&state, routes, &req).await,
        Auth::Denied => {
            let mut r = respond(401, "text/plain; charset=utf-8", "Unauthorized\n");
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic"),
            );
            r
        }
        Auth::Busy => {
            let mut r = respond(
                429,
                "text/plain; charset=utf-8",
                "too many authentication checks in flight; retry\n",
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            r
        }
    };
    let web_headers = web.iter().flat_map(|(_, a)| a.config.headers.iter());
    for (k, v) in web_headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    if req.method() == http::Method::HEAD {
        *resp.body_mut() = Body::empty();
    }
    resp
}

/// Whether the client takes a gzip answer (`Accept-Encoding: gzip`, or `*`, not `q=0`).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// A kept body (plus `tail`), compressed for clients that take gzip and streamed to the
/// others.
fn kept(req: &Request<Incoming>, content_type: &str, body: &Compressed, tail: Vec<u8>) -> Resp {
    let gzip = accepts_gzip(req.headers());
    let mut r = if gzip {
        respond(200, content_type, body.gzip(&tail))
    } else {
        respond(200, content_type, body.plain(tail.into()))
    };
    let h = r.headers_mut();
    if gzip {
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
    }
    h.insert(
        http::header::VARY,
        http::HeaderValue::from_static("Accept-Encoding"),
    );
    r
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = respond(405, "text/plain; charset=utf-8", "method not allowed\n");
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

/// `POST /-/reload` (or `PUT`, as Prometheus takes): re-reads the configuration file. Only
/// with `server.enable_lifecycle = true`; 500 with the reason when the file is refused.
fn reload(state: &AdminState, req: &Request<Incoming>) -> Resp {
    if !matches!(*req.method(), http::Method::POST | http::Method::PUT) {
        return method_not_allowed("POST, PUT");
    }
    if !state.config.current().server.enable_lifecycle {
        return respond(
            403,
            "text/plain; charset=utf-8",
            "the lifecycle API is not enabled (set server.enable_lifecycle = true)\n",
        );
    }
    match (state.reload)() {
        Ok(applied) => {
            let mut text = "configuration reloaded\n".to_owned();
            for key in applied.restart_required {
                text.push_str(&format!(
                    "{key}: changed, but needs a restart; the old value stays in force\n"
                ));
            }
            respond(200, "text/plain; charset=utf-8", text)
        }
        Err(e) => respond(
            500,
            "text/plain; charset=utf-8",
            format!(
                "configuration reload refused; the previous configuration stays in force: {e}\n"
            ),
        ),
    }
}

async fn route(state: &AdminState, routes: Routes, req: &Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/metrics" | "/healthz" | "/readyz" | "/" | "/api/v1/tokens" | "/-/reload"
    );
    let allowed_here = routes == Routes::All || matches!(path, "/healthz" | "/readyz");
    if !known || !allowed_here {
        return respond(404, "text/plain; charset=utf-8", "not found\n");
    }
    if path == "/-/reload" {
        return reload(state, req);
    }
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        return method_not_allowed("GET, HEAD");
    }
    let has_body = req.body().size_hint().upper().is_none_or(|n| n > 0);
    if has_body {
        return respond(
            413,
            "text/plain; charset=utf-8",
            "request bodies are not accepted\n",
        );
    }
    match path {
        "/metrics" => {
            let live = state.metrics.live(&metrics::Live {
                web: state.web.as_ref().map(|w| w.reload_status()),
                connections: Some(state.connections.open()),
            });
            kept(
                req,
                metrics::CONTENT_TYPE,
                &state.renders.exposition().body,
                live,
            )
        }
        "/healthz" => respond(200, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            // Ready once every organization had a scan attempt and `/metrics` shows it.
            let exported = state
                .shared
                .ready_generation()
                .is_some_and(|g| state.renders.exposition_generation() >= g);
            if state.shared.ready() && exported {
                respond(200, "text/plain; charset=utf-8", "ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    "not ready: waiting for the first scan of every organization, or shutting down\n",
                )
            }
        }
        "/api/v1/tokens" => match state.renders.tokens().await {
            Some(k) => kept(req, "application/json", &k.body, Vec::new()),
            None => respond(500, "text/plain; charset=utf-8", "internal error\n"),
        },
        _ => match state.renders.status().await {
            Some(k) => kept(req, "text/html; charset=utf-8", &k.body, Vec::new()),
            None => respond(500, "text/plain; charset=utf-8", "internal error\n"),
        },
    }
}
