//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, the status page and the tokens
//! API. GET and HEAD only; request bodies are refused. On the main listener the web
//! configuration's basic auth and headers apply to every route.

use std::sync::Arc;

use hyper::Request;
use hyper::body::{Body, Incoming};

use crate::config::Config;
use crate::httpd::{Peer, Resp, respond};
use crate::metrics::{self, Metrics};
use crate::state::Shared;
use crate::webconfig::{Auth, LiveWebConfig};

/// What the handlers read.
#[derive(Clone)]
pub struct AdminState {
    /// The configuration.
    pub config: Arc<Config>,
    /// Published state.
    pub shared: Arc<Shared>,
    /// Metrics.
    pub metrics: Metrics,
    /// The clock (for "days left" on the status page).
    pub clock: crate::clock::Clock,
    /// Extra response headers on every listener.
    pub headers: Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
    /// The web configuration (`--web.config.file`): basic auth and headers of the main
    /// listener.
    pub web: Option<Arc<LiveWebConfig>>,
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
    for (k, v) in state.headers.iter().chain(web_headers) {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    if req.method() == http::Method::HEAD {
        *resp.body_mut() = http_body_util::Full::new(bytes::Bytes::new());
    }
    resp
}

/// Renders on the blocking pool: a large inventory takes long enough to render that it must
/// not hold up the async workers (and with them, the probes).
async fn blocking(state: &AdminState, f: impl FnOnce(AdminState) -> Resp + Send + 'static) -> Resp {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(state))
        .await
        .unwrap_or_else(|_| respond(500, "text/plain; charset=utf-8", "internal error\n"))
}

async fn route(state: &AdminState, routes: Routes, req: &Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/metrics" | "/healthz" | "/readyz" | "/" | "/api/v1/tokens"
    );
    let allowed_here = routes == Routes::All || matches!(path, "/healthz" | "/readyz");
    if !known || !allowed_here {
        return respond(404, "text/plain; charset=utf-8", "not found\n");
    }
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        let mut r = respond(405, "text/plain; charset=utf-8", "method not allowed\n");
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
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
            blocking(state, |st| {
                let web = st.web.as_ref().map(|w| w.reload_status());
                respond(
                    200,
                    metrics::CONTENT_TYPE,
                    st.metrics.render_with_web(&st.shared, web),
                )
            })
            .await
        }
        "/healthz" => respond(200, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            if state.shared.ready() {
                respond(200, "text/plain; charset=utf-8", "ready\n")
            } else {
                respond(
                    503,
                    "text/plain; charset=utf-8",
                    "not ready: waiting for the first scan of every organization, or shutting down\n",
                )
            }
        }
        "/api/v1/tokens" => {
            blocking(state, |st| {
                let report =
                    crate::report::build(&st.config, &st.shared.snapshot(), st.clock.now());
                respond(
                    200,
                    "application/json",
                    serde_json::to_string_pretty(&report).unwrap_or_default(),
                )
            })
            .await
        }
        _ => {
            blocking(state, |st| {
                let page = crate::status::render(&st.config, &st.shared.snapshot(), st.clock.now());
                respond(200, "text/html; charset=utf-8", page)
            })
            .await
        }
    }
}
