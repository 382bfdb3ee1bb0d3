//! The frozen store: every file is fetched from upstream once and served
//! from the host's disk ever after, package lists included, so nodes see
//! the package versions of the first day until the operator clears the
//! store. Fetches go through `apt-helper`, so the host's own apt settings
//! (proxies, TLS, authentication) apply to them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

pub struct Store {
    root: PathBuf,
    fetches: AtomicU64,
}

/// A request path split into upstream name and the rest, both checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub upstream: String,
    /// As the client sent it (still percent-encoded), for the upstream URL.
    pub raw_rest: String,
    /// Decoded, for the file under the store.
    pub rest: PathBuf,
}

/// `/NAME/a/b` → Wanted; None for anything that could leave the store
/// (`..`, empty segments, NUL, a query) or names no file.
pub fn parse_path(path: &str) -> Option<Wanted> {
    let path = path.strip_prefix('/')?;
    if path.contains(['?', '#', '\\']) {
        return None;
    }
    let (upstream, raw_rest) = path.split_once('/')?;
    let decoded = percent_decode(raw_rest)?;
    // `./` is how flat repositories are named: harmless, dropped.
    let segments: Vec<&str> = decoded.split('/').filter(|s| *s != ".").collect();
    let bad = |s: &&str| s.is_empty() || *s == ".." || s.contains('\0');
    if upstream.is_empty()
        || upstream == "."
        || upstream == ".."
        || segments.is_empty()
        || segments.iter().any(bad)
    {
        return None;
    }
    Some(Wanted {
        upstream: upstream.to_string(),
        raw_rest: raw_rest.to_string(),
        rest: segments.iter().collect(),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Store {
    pub fn new(root: PathBuf) -> Store {
        Store {
            root,
            fetches: AtomicU64::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stored file, fetched from `base` first if the store lacks it.
    /// None when upstream does not have it either (or cannot be reached).
    pub async fn get(&self, base: &str, wanted: &Wanted) -> anyhow::Result<Option<PathBuf>> {
        let path = self.root.join(&wanted.upstream).join(&wanted.rest);
        if path.is_file() {
            return Ok(Some(path));
        }
        let parent = path.parent().context("a stored file has a parent")?;
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
        // Beside its place, renamed into it: a reader never sees half a file.
        let n = self.fetches.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".fetch-{}-{n}", std::process::id()));
        let url = format!("{base}/{}", wanted.raw_rest);
        let out = tokio::process::Command::new(APT_HELPER)
            .arg("download-file")
            .arg(&url)
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {APT_HELPER} (is apt installed?)"))?;
        if !out.status.success() || !tmp.is_file() {
            let _ = tokio::fs::remove_file(&tmp).await;
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why
                .lines()
                .find(|l| l.starts_with("E: "))
                .unwrap_or("no reason given");
            tracing::info!(%url, why, "apt cache: upstream has no such file");
            return Ok(None);
        }
        tokio::fs::rename(&tmp, &path)
            .await
            .with_context(|| format!("storing {}", path.display()))?;
        tracing::info!(%url, "apt cache: fetched and frozen");
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_store_are_refused() {
        let ok = parse_path("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb").unwrap();
        assert_eq!(ok.upstream, "debian");
        assert_eq!(ok.rest, PathBuf::from("pool/main/h/hello/hello_2.10-3_amd64.deb"));
        let encoded = parse_path("/debian/pool/libx%2b%2b_1%7e2.deb").unwrap();
        assert_eq!(encoded.rest, PathBuf::from("pool/libx++_1~2.deb"));
        assert_eq!(encoded.raw_rest, "pool/libx%2b%2b_1%7e2.deb");
        assert_eq!(
            parse_path("/test/./Packages").unwrap().rest,
            PathBuf::from("Packages")
        );
        for bad in [
            "/debian/../etc/passwd",
            "/debian/a/%2e%2e/%2e%2e/x",
            "/debian/a//b",
            "/debian/./.",
            "/debian/",
            "/debian",
            "/../x/y",
            "/debian/a%00b",
            "/debian/a%zz",
            "/debian/dists/x?y=1",
            "debian/x",
            "/debian/a\\..\\b",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }
}
