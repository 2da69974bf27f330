//! The metrics endpoint: `GET /metrics` in the Prometheus text format.

use axum::{Router, http::header, response::IntoResponse, routing::get};
use tokio::net::TcpListener;
use tracing::error;

use crate::metrics::Metrics;

pub async fn serve(listener: TcpListener, metrics: Metrics) {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/",
            get(|| async { "mining-sensor: metrics at /metrics\n" }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        error!(error = %e, "metrics server stopped");
    }
}
