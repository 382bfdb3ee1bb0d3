//! Where the cache fetches from: the Debian archive and its security
//! archive as the host's own apt sources name them, plus any the operator
//! adds with `--apt-upstream NAME=URL`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};

/// Upstream name → base URL (no trailing slash). Nodes ask for
/// `http://127.0.0.1:PORT/NAME/...`.
pub type Upstreams = BTreeMap<String, String>;

/// One `deb` entry of an apt source file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    url: String,
    suites: Vec<String>,
}

/// The host's sources (`sources.list`, `sources.list.d/*.list` and
/// `*.sources` under `etc_apt`): `debian` is the first archive without a
/// `-security` suite, `debian-security` the first with one. Missing ones
/// fall back to `debian_mirror` (and `<debian_mirror>-security`).
pub fn from_host(etc_apt: &Path, debian_mirror: &str) -> Upstreams {
    let mut sources = Vec::new();
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut names: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        files.extend(names);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.extend(deb822(&text)),
            Some("list") => sources.extend(one_line(&text)),
            _ => {}
        }
    }
    let is_security = |s: &Source| s.suites.iter().any(|suite| suite.ends_with("-security"));
    let mirror = debian_mirror.trim_end_matches('/').to_string();
    let mut upstreams = Upstreams::new();
    let archive = sources.iter().find(|s| !is_security(s)).map(|s| s.url.clone());
    let security = sources.iter().find(|s| is_security(s)).map(|s| s.url.clone());
    upstreams.insert("debian".into(), archive.unwrap_or_else(|| mirror.clone()));
    upstreams.insert(
        "debian-security".into(),
        security.unwrap_or_else(|| format!("{mirror}-security")),
    );
    upstreams
}

/// `NAME=URL`, as `--apt-upstream` takes it.
pub fn parse_flag(flag: &str) -> anyhow::Result<(String, String)> {
    let (name, url) = flag
        .split_once('=')
        .with_context(|| format!("--apt-upstream {flag:?}: expected NAME=URL"))?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if !name_ok {
        bail!("--apt-upstream {flag:?}: NAME must be letters, digits, '-', '_' or '.'");
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--apt-upstream {flag:?}: URL must start with http:// or https://");
    }
    Ok((name.to_string(), url.trim_end_matches('/').to_string()))
}

fn deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for line in stanza.lines().filter(|l| !l.starts_with('#')) {
            if let Some((key, value)) = line.split_once(':') {
                if !key.starts_with(char::is_whitespace) {
                    fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
                }
            }
        }
        let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
        if !field("types").split_whitespace().any(|t| t == "deb") || field("enabled") == "no" {
            continue;
        }
        let suites: Vec<String> = field("suites").split_whitespace().map(String::from).collect();
        for url in field("uris").split_whitespace() {
            out.push(Source {
                url: url.trim_end_matches('/').to_string(),
                suites: suites.clone(),
            });
        }
    }
    out
}

fn one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim_start();
            // Options: `deb [arch=amd64 signed-by=...] URL suite comp...`.
            let rest = match rest.strip_prefix('[') {
                Some(opts) => opts.split_once(']')?.1.trim_start(),
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let url = words.next()?.trim_end_matches('/').to_string();
            Some(Source {
                url,
                suites: words.next().map(|s| vec![s.to_string()]).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_deb822_and_one_line_sources_give_the_two_archives() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sources.list.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("debian.sources"),
            "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\
             Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm-security\n\n\
             Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\nComponents: main\n",
        )
        .unwrap();
        std::fs::write(
            d.join("other.list.disabled"),
            "deb http://off.example/x bookworm main\n",
        )
        .unwrap();
        let up = from_host(dir.path(), "http://fallback.example/debian");
        assert_eq!(up["debian"], "http://mirror.example/debian");
        assert_eq!(up["debian-security"], "http://sec.example/debian-security");

        let lists = tempfile::tempdir().unwrap();
        std::fs::write(
            lists.path().join("sources.list"),
            "# deb http://commented.example/debian bookworm main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n",
        )
        .unwrap();
        let up = from_host(lists.path(), "http://fallback.example/debian/");
        assert_eq!(up["debian"], "http://one.example/debian");
        assert_eq!(up["debian-security"], "http://fallback.example/debian-security");
    }

    #[test]
    fn an_upstream_flag_names_a_plain_name_and_an_http_url() {
        assert_eq!(
            parse_flag("test=http://127.0.0.1:8000/repo/").unwrap(),
            ("test".to_string(), "http://127.0.0.1:8000/repo".to_string())
        );
        for bad in [
            "noequals",
            "=http://x",
            "../x=http://x",
            "a/b=http://x",
            "x=ftp://x",
        ] {
            let err = parse_flag(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
