use std::io::{Read, Write};
use std::sync::Arc;

use super::*;

/// A loopback upstream: python's http.server on `dir`, killed (by pid) on drop.
struct Upstream(std::process::Child, String);

impl Upstream {
    fn serve(dir: &std::path::Path) -> Upstream {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the upstream did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Upstream(child, format!("http://127.0.0.1:{port}"))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
    let served = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(served.path().join("dists/x")).unwrap();
    std::fs::write(served.path().join("dists/x/InRelease"), "first-version").unwrap();
    let upstream = Upstream::serve(served.path());
    let base = upstream.1.clone();
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
    // Upstream moved on: the first version is still what is served.
    std::fs::write(served.path().join("dists/x/InRelease"), "second-version").unwrap();
    let frozen = ask("/test/dists/x/InRelease").await.unwrap();
    assert!(frozen.ends_with("first-version"), "{frozen}");

    // Upstream gone: the stored copy still answers, and nothing new does.
    drop(upstream);
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
    let served = tempfile::tempdir().unwrap();
    let upstream = Upstream::serve(served.path());
    let store = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = store::Store::new(store.path().to_path_buf());
    let wanted = store::parse_path("/test/missing/file").unwrap();
    assert_eq!(rt.block_on(s.get(&upstream.1, &wanted)).unwrap(), None);
    assert_eq!(walk(store.path()), Vec::<std::path::PathBuf>::new());
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
