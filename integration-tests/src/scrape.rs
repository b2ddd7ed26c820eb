//! Reading a metrics endpoint over plain HTTP as a Prometheus scraper does,
//! and finding samples in the text it returns.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP response.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` on `address` (HTTP/1.1, one request per connection).
pub async fn get(address: SocketAddr, path: &str) -> Page {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect to the metrics port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let content_type = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    Page { status, content_type, body: body.to_owned() }
}

/// `GET /metrics`, which must succeed; returns the text.
pub async fn metrics(address: SocketAddr) -> String {
    let page = get(address, "/metrics").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
}

/// The sum of every sample named `name` whose labels include `labels`
/// (0 if there is none).
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name, labels).sum()
}

/// Whether some sample named `name` has all of `labels`.
pub fn has(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(text, name, labels).next().is_some()
}

fn samples<'a>(text: &'a str, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = f64> + 'a {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (sample_name, sample_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let pairs: Vec<(&str, &str)> = sample_labels
            .split("\",")
            .filter_map(|pair| pair.split_once("=\"").map(|(k, v)| (k, v.trim_end_matches('"'))))
            .collect();
        let matches = sample_name == name && labels.iter().all(|wanted| pairs.contains(wanted));
        matches.then(|| value.parse().ok()).flatten()
    })
}
