//! The daemon's HTTP server (`docs/reference.md`, "HTTP API"): `/healthz`,
//! `/readyz`, `/metrics`, `/model` and `POST /score`. It reads the model the
//! estimator publishes ([`LiveModel`]) and the counters ([`Counters`]), and never
//! blocks either; scoring large bodies runs off the reactor. `/model` and `/score`
//! reveal the data's distribution, so an optional bearer token guards them.
//! The daemon starts it; it knows nothing of the pipeline. Its limits against
//! careless and hostile clients are in [`serve`] (connections) and [`score`]
//! (what one request may cost).

mod points;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use self::points::BodyError;
pub use self::serve::{serve, ConnectionLimits};

use crate::sink::{ScoreRecord, SinkRecord};
use crate::telemetry::{metrics, Chain, Counters};
use gmm_io::ModelFile;
use gmm_model::{points_from_rows, EvalRequest, Evaluation, GaussianMixture};

/// Points scored at a time for one request: the responsibilities of a chunk, not of
/// the whole request, are held at once.
const SCORE_CHUNK: usize = 4096;

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
    /// Points with a coordinate of larger magnitude get 400 (`source.max_abs_value`).
    pub max_abs_value: f64,
    /// Points in one /score request at most (413 beyond).
    pub max_score_points: usize,
    /// One permit per /score request being read and scored.
    pub scoring: Arc<Semaphore>,
    /// A /score request waits its turn and sends its body within this.
    pub request_timeout: Duration,
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

/// Scores a body of points. At most `max_concurrent_scores` requests are read and
/// scored at once (a request waits its turn, then reads its body, within
/// `request_timeout`), so memory stays bounded however many clients post at once.
async fn score(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    let Some(live) = state.live.borrow().clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still warming up",
        );
    };
    let deadline = Instant::now() + state.request_timeout;
    let turn = tokio::time::timeout_at(deadline, state.scoring.clone().acquire_owned()).await;
    let Ok(Ok(permit)) = turn else {
        let mut busy = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many /score requests at once: try again",
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return busy;
    };
    let read = read_body(&headers, body, state.max_body_bytes);
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(refused)) => return refused,
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive within http.request_timeout_ms",
            )
        }
    };
    let (max_abs, max_points) = (state.max_abs_value, state.max_score_points);
    let scored = tokio::task::spawn_blocking(move || {
        // The turn ends when the scoring does, even if the client has gone.
        let _permit = permit;
        score_body(&live, &body, max_abs, max_points)
    })
    .await;
    match scored {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(BodyError::Malformed(message))) => error(StatusCode::BAD_REQUEST, &message),
        Ok(Err(BodyError::TooManyPoints { max })) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("at most {max} points per request (http.max_score_points)"),
        ),
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
/// per point, scoring a chunk at a time. Points are numbered from 0 in errors.
fn score_body(
    live: &LiveModel,
    body: &[u8],
    max_abs: f64,
    max_points: usize,
) -> Result<Vec<u8>, BodyError> {
    let d = live.model.n_features();
    let flat = points::parse(body, d, max_abs, max_points)?;
    let mut out = Vec::with_capacity(flat.len() / d * 96 + 2);
    out.push(b'[');
    for (c, chunk) in flat.chunks(SCORE_CHUNK * d).enumerate() {
        let evaluation = evaluate(&live.model, chunk, d)?;
        if let Some(&i) = evaluation.unscorable().first() {
            return Err(BodyError::Malformed(format!(
                "point {} cannot be scored: its log-density under the model is not a \
                 finite number (it is too far from every component)",
                c * SCORE_CHUNK + i
            )));
        }
        for j in 0..evaluation.n_points {
            if c > 0 || j > 0 {
                out.push(b',');
            }
            let record = ScoreRecord::from_evaluation(&evaluation, j, live.file.anomaly_threshold)
                .by_model(live.file.model_version);
            // Numbers, strings and bools into a Vec: serialization cannot fail.
            let _ = record.write_json(&mut out);
        }
    }
    out.extend_from_slice(b"]\n");
    Ok(out)
}

fn evaluate(model: &GaussianMixture, chunk: &[f64], d: usize) -> Result<Evaluation, BodyError> {
    points_from_rows(chunk, d)
        .and_then(|x| model.evaluate(x, EvalRequest::SCORES))
        .map_err(|e| BodyError::Malformed(e.to_string()))
}

/// `Some(401)` unless the request carries the configured bearer token.
fn check_token(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let expected = state.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
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

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
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
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nalgebra::{DMatrix, DVector};

    use super::{bearer_credentials, score_body, BodyError, LiveModel};
    use gmm_io::{EstimatorInfo, ModelFile};
    use gmm_model::{Covariances, GaussianMixture, OnlineSettings};

    /// A model with a component of variance 1e-150: at 1e99 a point's squared
    /// distance overflows f64 and its log-density is -inf.
    fn narrow_model() -> LiveModel {
        let model = GaussianMixture::new(
            DVector::from_vec(vec![1.0]),
            DMatrix::zeros(2, 1),
            Covariances::Diag(DMatrix::from_element(2, 1, 1e-150)),
        )
        .expect("valid");
        let file = ModelFile::new(
            &model,
            EstimatorInfo::Online(OnlineSettings::new(1)),
            "2026-01-01T00:00:00Z".into(),
        );
        LiveModel {
            model: Arc::new(model),
            file: Arc::new(file),
        }
    }

    #[test]
    fn a_point_the_model_cannot_score_is_a_bad_request_naming_it() {
        let live = narrow_model();
        let ok = score_body(&live, b"[[0, 0], [1, 1]]", 1e100, 10).expect("finite scores");
        let records: serde_json::Value = serde_json::from_slice(&ok).expect("JSON");
        for r in records.as_array().expect("an array") {
            assert!(r["log_density"].as_f64().is_some_and(f64::is_finite), "{r}");
        }
        let message = |body: &[u8], max_abs: f64| match score_body(&live, body, max_abs, 10) {
            Err(BodyError::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        let err = message(b"[[0, 0], [1e99, 1e99]]", 1e100);
        assert!(err.starts_with("point 1 cannot be scored"), "{err}");
        let err = message(b"[[0, 0], [0, 5]]", 1.0);
        assert!(err.contains("point 1 has coordinate 1 = 5e0"), "{err}");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret",
            " beaReR s3cret ",
        ] {
            assert_eq!(bearer_credentials(value), Some("s3cret"), "{value}");
        }
        for value in ["Basic s3cret", "Bearers3cret", "s3cret", ""] {
            assert_eq!(bearer_credentials(value), None, "{value}");
        }
    }
}
