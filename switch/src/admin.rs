//! The admin HTTP endpoint: `GET /metrics` (Prometheus text), `GET /healthz`,
//! `GET /advices` (advices waiting for their 0430), `POST /reload` (hot reload of every table; the answer says why a reload was refused),
//! `POST /cutover` (start a settlement-day cut-over now).

use crate::state::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(req: &Request<hyper::body::Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => {
            // The day's tables grow with every transaction until the cut-over (memory the
            // operator should watch): sampled per scrape, not maintained per transaction.
            metrics::gauge!("switch_day_keys").set(shared.originals.len() as f64);
            metrics::gauge!("journal_queued_records").set(shared.journal.queued() as f64);
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                crate::server::render_metrics(),
            )
        }
        ("GET", "/healthz") => {
            let issuers: Vec<serde_json::Value> = shared
                .routes
                .values()
                .map(|r| serde_json::json!({"issuer": r.id.as_str(), "signed_on_links": r.links.load().len()}))
                .collect();
            let body = serde_json::json!({
                "status": if shared.draining.load(Ordering::Relaxed) { "draining" } else { "ok" },
                "in_flight": shared.in_flight.load(Ordering::Relaxed),
                "day_keys": shared.originals.len(),
                "journal_queued": shared.journal.queued(),
                "issuers": issuers,
            });
            respond(StatusCode::OK, "application/json", body.to_string())
        }
        ("POST", "/reload") => match crate::server::reload(shared) {
            Ok(()) => respond(StatusCode::OK, "text/plain", "reloaded\n".into()),
            Err(e) => respond(
                StatusCode::UNPROCESSABLE_ENTITY,
                "text/plain",
                format!("{e}\n"),
            ),
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// `POST /cutover`: start a cut-over to the next business date now (operators, tests).
fn cutover(shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    match crate::actors::cutover::start_now(shared) {
        Some(closing) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({"closing": closing, "new": shared.day.date()}).to_string(),
        ),
        None => respond(
            StatusCode::CONFLICT,
            "text/plain",
            format!(
                "a cut-over is already in progress (closing {})\n",
                shared.day.closing().unwrap_or(0)
            ),
        ),
    }
}

/// `GET /advices`: the store-and-forward queue of every issuer (no card data).
async fn advices(shared: &Shared) -> Response<Full<Bytes>> {
    let mut all = Vec::new();
    for route in shared.routes.values() {
        if let Some(actor) = route.actor.get() {
            if let Ok(list) = actor.send(crate::actors::route::ListAdvices).await {
                all.extend(list);
            }
        }
    }
    all.sort_by(|a, b| (a.queued_ms, &a.issuer, a.stan).cmp(&(b.queued_ms, &b.issuer, b.stan)));
    let body = serde_json::json!({ "pending": all.len(), "advices": all });
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// Serve until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        actix::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move {
                    let resp = match (req.method().as_str(), req.uri().path()) {
                        ("GET", "/advices") => advices(&shared).await,
                        ("POST", "/cutover") => cutover(&shared),
                        _ => route(&req, &shared),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}
