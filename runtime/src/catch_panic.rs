//! Keeps one request's panic to that request: the caller gets INTERNAL,
//! the panic is logged, and the connection and every other call go on.
//! Without it a panicking handler ends its connection's task, and every
//! other call multiplexed on that HTTP/2 connection fails with it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tonic::codegen::http;
use tower::{Layer, Service};

#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for CatchPanic<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))) {
            Ok(future) => Box::pin(AssertUnwindSafe(future).catch_unwind().map(move |r| match r {
                Ok(response) => response,
                Err(panic) => Ok(internal(&path, &*panic)),
            })),
            Err(panic) => {
                let response = internal(&path, &*panic);
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

fn internal(path: &str, panic: &(dyn std::any::Any + Send)) -> http::Response<tonic::body::Body> {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(
        path,
        panic = what,
        "request handler panicked; the call failed, the server goes on"
    );
    tonic::Status::internal(format!("the coordinator failed on this call ({path}): {what}")).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_call_answers_internal_and_the_service_goes_on() {
        let mut calls = 0;
        let inner = tower::service_fn(move |req: http::Request<()>| {
            calls += 1;
            let panics = req.uri().path() == "/boom";
            async move {
                if panics {
                    panic!("boom {calls}");
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
            }
        });
        let mut svc = CatchPanicLayer.layer(inner);
        let request = |path: &str| http::Request::builder().uri(path).body(()).unwrap();
        let failed = svc.call(request("/boom")).await.unwrap();
        let status = tonic::Status::from_header_map(failed.headers()).expect("a grpc status");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().contains("boom 1"), "{}", status.message());
        let fine = svc.call(request("/fine")).await.unwrap();
        assert!(tonic::Status::from_header_map(fine.headers()).is_none());
    }
}
