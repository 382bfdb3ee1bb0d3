//! The Prometheus endpoint of the coordinator and the agents: plain HTTP
//! on a port of its own, off unless `--metrics-listen` is given. It has no
//! TLS and no authentication (Prometheus scrapes plain HTTP by default), so
//! it serves metrics only, never the API; bind it to loopback or a
//! monitoring network.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What prometheus-client's text encoder writes.
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The page of metrics, rendered afresh for every scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on ADDR (host:port; port 0 picks one) at /metrics: plain HTTP
    /// with no authentication, separate from the gRPC port. Off unless given (or empty).
    #[arg(long, value_name = "ADDR", env = "DCLAB_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Write the metrics address actually listened on to this file.
    #[arg(long, value_name = "FILE", requires = "metrics_listen")]
    pub metrics_addr_file: Option<PathBuf>,
}

/// Binds the endpoint `args` asks for and serves it in the background;
/// None when metrics are off. A bad or taken address is an error.
pub async fn serve(args: &MetricsArgs, render: Render) -> anyhow::Result<Option<SocketAddr>> {
    // Empty is off too, so an environment file can turn it off.
    let Some(listen) = args.metrics_listen.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("--metrics-listen {listen}: cannot listen there"))?;
    let addr = listener.local_addr()?;
    if let Some(file) = &args.metrics_addr_file {
        write_atomically(file, &addr.to_string())?;
    }
    tokio::spawn(accept(listener, render));
    Ok(Some(addr))
}

async fn accept(listener: TcpListener, render: Render) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: try again shortly.
                tracing::warn!("metrics endpoint: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let render = render.clone();
                async move { Ok::<_, Infallible>(answer(&render, &req)) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

fn answer<B>(render: &Render, req: &Request<B>) -> Response<Full<Bytes>> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let page = render();
            let body = if head { String::new() } else { page };
            text(StatusCode::OK, body, CONTENT_TYPE_OPENMETRICS)
        }
        "/" => text(
            StatusCode::OK,
            "dclab metrics: GET /metrics\n".into(),
            "text/plain",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n".into(),
            "text/plain",
        ),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Readers never see a half-written file.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_rendered_page_at_metrics_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metrics.addr");
        let args = MetricsArgs {
            metrics_listen: Some("127.0.0.1:0".into()),
            metrics_addr_file: Some(file.clone()),
        };
        let scrapes = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = scrapes.clone();
        let render: Render = Arc::new(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            format!("# TYPE scrapes counter\nscrapes_total {n}\n# EOF\n")
        });
        let addr = serve(&args, render).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), addr.to_string());
        let close = "Connection: close\r\n\r\n";
        let page = get(addr, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{close}")).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains(CONTENT_TYPE_OPENMETRICS), "{page}");
        assert!(page.ends_with("scrapes_total 1\n# EOF\n"), "{page}");
        let again = get(addr, &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{close}")).await;
        assert!(again.contains("scrapes_total 2\n"), "rendered afresh: {again}");
        let missing = get(addr, &format!("GET /api HTTP/1.1\r\nHost: x\r\n{close}")).await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(
            addr,
            &format!("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{close}"),
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }

    #[tokio::test]
    async fn off_unless_asked_and_a_bad_address_is_named() {
        let render: Render = Arc::new(String::new);
        assert!(serve(&MetricsArgs::default(), render.clone())
            .await
            .unwrap()
            .is_none());
        let empty = MetricsArgs {
            metrics_listen: Some(String::new()),
            metrics_addr_file: None,
        };
        assert!(serve(&empty, render.clone()).await.unwrap().is_none());
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let args = MetricsArgs {
            metrics_listen: Some(taken.local_addr().unwrap().to_string()),
            metrics_addr_file: None,
        };
        let err = serve(&args, render.clone()).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("--metrics-listen 127.0.0.1:"),
            "{err:#}"
        );
        let bad = MetricsArgs {
            metrics_listen: Some("not an address".into()),
            metrics_addr_file: None,
        };
        let err = serve(&bad, render).await.unwrap_err();
        assert!(format!("{err:#}").contains("not an address"), "{err:#}");
    }
}
