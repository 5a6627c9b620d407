//! The daemon's HTTP server (`docs/reference.md`, "HTTP API"): `/healthz`,
//! `/readyz`, `/metrics`, `/model` and `POST /score`. It reads the model the
//! estimator publishes ([`LiveModel`]) and the counters ([`Counters`]), and never
//! blocks either; scoring large bodies runs off the reactor. `/model` and `/score`
//! reveal the data's distribution, so an optional bearer token guards them.
//! The daemon starts it; it knows nothing of the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::sink::{ScoreRecord, SinkRecord};
use crate::telemetry::{metrics, Chain, Counters};
use gmm_io::ModelFile;
use gmm_model::{points_from_rows, EvalRequest, GaussianMixture};

/// What the server reads: the current model and how to flag with it. The
/// estimator publishes a new one after every update.
#[derive(Clone, Debug)]
pub struct LiveModel {
    pub model: Arc<GaussianMixture>,
    /// The model file of the latest update (what `/model` serves; its version and
    /// anomaly threshold are those that scores carry).
    pub file: Arc<ModelFile>,
}

#[derive(Clone)]
pub struct AppState {
    pub counters: Arc<Counters>,
    pub live: watch::Receiver<Option<LiveModel>>,
    /// Required as `Authorization: Bearer <token>` by /model and /score.
    pub token: Option<Arc<str>>,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .route("/model", get(model))
        .route("/score", post(score))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Binds `listen` (so a taken port is reported at start-up) and returns the
/// address actually bound (port 0 picks a free one).
pub async fn bind(listen: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    // Install the recorder before events (EM step latencies) are recorded.
    let _ = metrics::handle();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let model = state.live.borrow().is_some();
    let counters = &state.counters;
    let connected = counters.source_ready.load(Relaxed) == 1;
    let down = counters.source_down.load(Relaxed);
    let not_ready = |why: &'static str| (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    match (model, connected, down) {
        (false, _, _) => not_ready("not ready: the model is still warming up\n"),
        (true, false, _) => not_ready("not ready: the source is not connected\n"),
        (true, true, true) => not_ready("not ready: no Kafka broker can be reached\n"),
        (true, true, false) => (StatusCode::OK, "ready\n").into_response(),
    }
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    match metrics::render(&state.counters) {
        Some(page) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            page,
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available: another metrics recorder is installed in this process",
        ),
    }
}

async fn model(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    let Some(live) = state.live.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still warming up",
        );
    };
    match live.file.to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the model: {}", Chain(&e)),
        ),
    }
}

async fn score(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    let body = match read_body(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let Some(live) = state.live.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still warming up",
        );
    };
    let scored = tokio::task::spawn_blocking(move || score_body(&live, &body)).await;
    match scored {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, &message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("scoring failed: {e}"),
        ),
    }
}

/// The body, or 413 when it is over `limit`: at once from a declared length (no
/// need to read what will be refused), else once the limit is passed.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// Parses `[[x1, ..., xd], ...]`, checks it, and answers with one score record
/// per point. Errors are messages for a 400.
fn score_body(live: &LiveModel, body: &[u8]) -> Result<Vec<u8>, String> {
    let points: Vec<Vec<f64>> = serde_json::from_slice(body).map_err(|e| {
        format!("the body must be a JSON array of points, each an array of numbers: {e}")
    })?;
    let d = live.model.n_features();
    let mut flat = Vec::with_capacity(points.len() * d);
    for (i, p) in points.iter().enumerate() {
        if p.len() != d {
            return Err(format!(
                "point {i} has {} coordinates, the model has {d}",
                p.len()
            ));
        }
        if let Some(j) = p.iter().position(|v| !v.is_finite()) {
            return Err(format!("point {i} has a non-finite coordinate {j}"));
        }
        flat.extend_from_slice(p);
    }
    let x = points_from_rows(&flat, d).map_err(|e| e.to_string())?;
    let evaluation = live
        .model
        .evaluate(x, EvalRequest::SCORES)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(points.len() * 128 + 2);
    out.push(b'[');
    for j in 0..points.len() {
        if j > 0 {
            out.push(b',');
        }
        let record = ScoreRecord::from_evaluation(&evaluation, j, live.file.anomaly_threshold)
            .by_model(live.file.model_version);
        // Numbers, strings and bools into a Vec: serialization cannot fail.
        let _ = record.write_json(&mut out);
    }
    out.extend_from_slice(b"]\n");
    Ok(out)
}

/// `Some(401)` unless the request carries the configured bearer token.
fn check_token(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let expected = state.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        None
    } else {
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(response)
    }
}

/// Compares without stopping at the first difference, so the time taken does not
/// tell how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string() + "\n";
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
