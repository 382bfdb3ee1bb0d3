//! HTTP/1.1 for apt: GET and HEAD of stored files, keep-alive and
//! pipelining (apt uses both) handled by hyper.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_stream::StreamExt;

use super::AptCache;

type Body = BoxBody<Bytes, std::io::Error>;

/// Serves one connection until the client closes it.
pub async fn serve_connection(cache: Arc<AptCache>, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |req| answer(cache.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("apt cache connection: {e}");
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{text}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

async fn answer(cache: Arc<AptCache>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the apt cache serves GET and HEAD",
        ));
    }
    let Some(wanted) = super::store::parse_path(req.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not a path of the apt cache"));
    };
    let Some(base) = cache.upstreams.get(&wanted.upstream) else {
        let names: Vec<&str> = cache.upstreams.keys().map(String::as_str).collect();
        let text = format!(
            "no upstream {:?}; upstreams are {}",
            wanted.upstream,
            names.join(", ")
        );
        return Ok(plain(StatusCode::NOT_FOUND, &text));
    };
    let path = match cache.store.get(base, &wanted).await {
        Ok(Some(path)) => path,
        Ok(None) => return Ok(plain(StatusCode::NOT_FOUND, "not in the cache nor upstream")),
        Err(e) => {
            tracing::warn!("apt cache: {e:#}");
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the apt cache failed; see the agent's log",
            ));
        }
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    let body: Body = if head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        let frames = tokio_util::io::ReaderStream::new(file).map(|chunk| chunk.map(Frame::data));
        BodyExt::boxed(StreamBody::new(frames))
    };
    let resp = Response::builder()
        .header(hyper::header::CONTENT_LENGTH, len)
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .expect("a response from valid parts");
    Ok(resp)
}
