//! The metrics endpoint: `GET /metrics` in the Prometheus text format, over HTTP or, with a web
//! configuration, over TLS and behind basic authentication.

use std::sync::Arc;

use axum::{
    Router,
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tracing::{debug, error};

use crate::metrics::{Metrics, web::WebConfig};

fn router(metrics: Metrics, web: Option<Arc<WebConfig>>) -> Router {
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
    match web {
        Some(web) if web.requires_auth() => {
            app.layer(middleware::from_fn(move |req: Request, next: Next| {
                let web = web.clone();
                async move { basic_auth(&web, req, next).await }
            }))
        }
        _ => app,
    }
}

async fn basic_auth(web: &WebConfig, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if web.authorized(header) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"mining-sensor\"")],
            "unauthorized\n",
        )
            .into_response()
    }
}

pub async fn serve(listener: TcpListener, metrics: Metrics, web: Option<Arc<WebConfig>>) {
    let tls = web.as_ref().and_then(|w| w.tls.clone());
    let app = router(metrics, web);
    let Some(tls) = tls else {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "metrics server stopped");
        }
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "accepting a metrics connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}
