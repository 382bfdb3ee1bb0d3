//! The documentation's links lead somewhere: every relative link in the
//! README, ARCHITECTURE.md, CHANGELOG.md and docs/ names a file that exists
//! and, with `#anchor`, a heading in it. The README stays short enough to
//! read on a screen or two; the detail lives in docs/.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Targets of `[text](target)` outside code blocks and code spans.
fn link_targets(markdown: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for (number, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        let mut rest = line;
        while let Some(at) = rest.find(['`', ']']) {
            let (ch, after) = (rest.as_bytes()[at], &rest[at + 1..]);
            if ch == b'`' {
                in_code = !in_code;
            } else if !in_code && after.starts_with('(') {
                if let Some(end) = after.find(')') {
                    targets.push((number + 1, after[1..end].to_string()));
                }
            }
            rest = after;
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut broken = Vec::new();
    for (line, target) in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        let place = format!("{}:{line}: {target}", file.display());
        if !resolved.exists() {
            broken.push(format!("{place} (no such file)"));
            continue;
        }
        if let Some(fragment) = fragment {
            let heads = std::fs::read_to_string(&resolved)
                .map(|t| anchors(&t))
                .unwrap_or_default();
            if !heads.contains(fragment) {
                broken.push(format!("{place} (no heading #{fragment})"));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_leads_to_a_file_and_heading() {
    let root = repo();
    let files = markdown_files(&root);
    assert!(files.len() > 10, "docs/ should hold the documentation: {files:?}");
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_finds_a_broken_file_link_and_a_broken_anchor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.md"), "# Real heading\n").unwrap();
    let a = dir.path().join("a.md");
    std::fs::write(
        &a,
        "[ok](b.md#real-heading) [gone](c.md) [bad](b.md#other)\n`[code](x.md)`\n```\n[fenced](y.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&a);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].contains("c.md (no such file)"), "{broken:?}");
    assert!(broken[1].contains("no heading #other"), "{broken:?}");
}

#[test]
fn the_readme_fits_on_a_screen_or_two() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; keep it at most {README_MAX_LINES} and move detail into docs/"
    );
}
