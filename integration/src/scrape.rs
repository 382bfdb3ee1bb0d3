//! Scraping the daemons' Prometheus pages as Prometheus would.

use std::io::{Read, Write};

/// GET `url` (http://host:port/path) with a plain TCP stream; the body of a
/// 200 answer in the OpenMetrics text format.
pub fn scrape(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("plain HTTP");
    let (addr, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{url}: {e}"));
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    assert!(head.contains("application/openmetrics-text"), "{url}: {head}");
    assert!(body.ends_with("# EOF\n"), "{url}: not a whole page:\n{body}");
    body.to_string()
}

/// The value of `key` (a metric name with its labels as printed).
pub fn sample(page: &str, key: &str) -> f64 {
    try_sample(page, key).unwrap_or_else(|| panic!("no {key:?} in\n{page}"))
}

/// The value of `key`, if the page has it.
pub fn try_sample(page: &str, key: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
}
