//! Prometheus metrics as a scraper reads them: `GET /metrics` over plain
//! HTTP/1.1, and samples picked out of the text format.

use std::{collections::BTreeMap, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `GET /metrics`: the status line and the body.
pub async fn scrape(addr: SocketAddr) -> (String, String) {
    let mut connection = TcpStream::connect(addr).await.unwrap();
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    connection.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The body of `GET /metrics`, which must answer 200.
pub async fn scrape_text(addr: SocketAddr) -> String {
    let (status_line, text) = scrape(addr).await;
    assert_eq!(status_line, "HTTP/1.1 200 OK", "{text}");
    text
}

/// The value of the sample `name` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let found: BTreeMap<_, _> = series_labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let matches = series_name == name && labels.iter().all(|(k, v)| found.get(k) == Some(v));
        matches.then(|| value.parse().unwrap())
    })
}

#[track_caller]
pub fn assert_sample(text: &str, name: &str, labels: &[(&str, &str)], expected: f64) {
    assert_eq!(sample(text, name, labels), Some(expected), "{name} {labels:?} in:\n{text}");
}

/// The current value of the sample `name` whose labels include `labels`.
pub async fn metric_value(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&scrape_text(addr).await, name, labels)
}
