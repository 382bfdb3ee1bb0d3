use std::io::{Read, Write};
use std::sync::Arc;

use super::*;

/// A loopback upstream that serves `body` for every path and counts requests.
fn upstream(
    body: &'static str,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    std::thread::JoinHandle<()>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let server = std::thread::spawn(move || {
        // Serves until a request for /stop.
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut req = [0u8; 4096];
            let n = conn.read(&mut req).unwrap();
            let line = String::from_utf8_lossy(&req[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            if line.contains("/stop") {
                return;
            }
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (status, text) = if line.contains("/missing") {
                ("404 Not Found", "")
            } else {
                ("200 OK", body)
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (format!("http://{addr}"), hits, server)
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_fetched_once_then_served_frozen_and_bad_paths_never_reach_upstream() {
    let (base, hits, server) = upstream("first-version");
    let store = tempfile::tempdir().unwrap();
    let mut upstreams = Upstreams::new();
    upstreams.insert("test".into(), base.clone());
    let cache = Arc::new(AptCache::new(store.path().to_path_buf(), upstreams));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = cache.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(server::serve_connection(serving.clone(), s));
        }
    });
    let ask = |path: &'static str| tokio::task::spawn_blocking(move || get(addr, path));

    let first = ask("/test/dists/x/InRelease").await.unwrap();
    assert!(
        first.starts_with("HTTP/1.1 200") && first.ends_with("first-version"),
        "{first}"
    );
    let stored = store.path().join("apt/mirror/test/dists/x/InRelease");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "first-version");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Upstream gone: the stored copy still answers, and nothing new does.
    let _ = get_std(&base, "/stop");
    server.join().unwrap();
    let again = ask("/test/dists/x/InRelease").await.unwrap();
    assert!(again.ends_with("first-version"), "{again}");
    let gone = ask("/test/dists/x/Packages").await.unwrap();
    assert!(gone.starts_with("HTTP/1.1 404"), "{gone}");
    assert!(!store.path().join("apt/mirror/test/dists/x/Packages").exists());

    for bad in [
        "/test/../../etc/passwd",
        "/test/a/%2e%2e/%2e%2e/x",
        "/nope/dists/x/InRelease",
    ] {
        let resp = ask(bad).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 404"), "{bad}: {resp}");
    }
    let unknown = ask("/nope/dists/x/InRelease").await.unwrap();
    assert!(unknown.contains("upstreams are test"), "{unknown}");
    let leftovers: Vec<_> = walk(store.path());
    assert_eq!(leftovers, vec![stored], "only the one fetched file is stored");
}

#[test]
fn a_missing_upstream_file_is_a_404_and_leaves_no_partial_file() {
    let (base, _hits, server) = upstream("x");
    let store = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = store::Store::new(store.path().to_path_buf());
    let wanted = store::parse_path("/test/missing/file").unwrap();
    assert_eq!(rt.block_on(s.get(&base, &wanted)).unwrap(), None);
    assert_eq!(walk(store.path()), Vec::<std::path::PathBuf>::new());
    let _ = get_std(&base, "/stop");
    server.join().unwrap();
}

fn get_std(base: &str, path: &str) -> std::io::Result<()> {
    let addr = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr)?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
