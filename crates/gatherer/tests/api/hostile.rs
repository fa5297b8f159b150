//! Hostile input against the running gatherer: every bad body gets a 4xx (or the
//! connection times out), never a 5xx, a panic or a reply that grows with the attack;
//! slow clients are cut off by the configured timeouts.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{poll_until, spawn_app_with, TestApp};

const BODY_LIMIT: usize = 1 << 20;

async fn hostile_app() -> TestApp {
    spawn_app_with(|s| {
        s.ingest.max_body_bytes = BODY_LIMIT;
        s.server.request_header_timeout = Duration::from_millis(500);
        s.server.request_body_timeout = Duration::from_secs(1);
    })
    .await
}

fn nested(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut body = open.repeat(depth).into_bytes();
    body.extend_from_slice(close.repeat(depth).as_bytes());
    body
}

/// (what, body, content type).
fn bad_bodies() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let event = |rest: &str| format!(r#"{{"label":"a","id":1,"value":1{rest}}}"#).into_bytes();
    let many_ones = |bytes: usize| {
        let mut body = b"[1".to_vec();
        while body.len() < bytes {
            body.extend_from_slice(b",1");
        }
        body.push(b']');
        body
    };
    vec![
        (
            "truncated object",
            br#"{"label":"a","id":1,"#.to_vec(),
            None,
        ),
        (
            "truncated array",
            br#"[{"label":"a","id":1,"value":1},"#.to_vec(),
            None,
        ),
        ("truncated string", br#"{"label":"a"#.to_vec(), None),
        ("100 000-deep arrays", nested(100_000, "[", "]"), None),
        (
            "100 000-deep objects",
            nested(100_000, r#"{"a":"#, "}"),
            None,
        ),
        // Valid JSON whose deep part is an unknown field, which the contract ignores:
        // skipped without recursion, the event is accepted (checked below).
        (
            "100 000-deep unknown field",
            [
                br#"{"label":"a","id":1,"value":1,"x":"#.to_vec(),
                nested(100_000, "[", "]"),
                b"}".to_vec(),
            ]
            .concat(),
            None,
        ),
        (
            "100 000-deep NDJSON line",
            nested(100_000, "[", "]"),
            Some("application/x-ndjson"),
        ),
        (
            "value 1e400",
            br#"{"label":"a","id":1,"value":1e400}"#.to_vec(),
            None,
        ),
        ("ts 1e400", event(r#","ts":1e400"#), None),
        ("ts -1e400", event(r#","ts":-1e400"#), None),
        (
            "value with 10 000 digits",
            format!(r#"{{"label":"a","id":1,"value":{}}}"#, "9".repeat(10_000)).into_bytes(),
            None,
        ),
        (
            "id beyond i64",
            br#"{"label":"a","id":99999999999999999999,"value":1}"#.to_vec(),
            None,
        ),
        (
            "invalid UTF-8 in a label",
            b"{\"label\":\"\xff\xfe\",\"id\":1,\"value\":1}".to_vec(),
            None,
        ),
        ("invalid UTF-8 body", vec![0xff; 1000], None),
        (
            "overlong UTF-8 slash",
            b"{\"label\":\"\xc0\xaf\",\"id\":1,\"value\":1}".to_vec(),
            None,
        ),
        (
            "lone surrogate escape",
            br#"{"label":"\ud800","id":1,"value":1}"#.to_vec(),
            None,
        ),
        (
            "raw NUL in a label",
            b"{\"label\":\"a\0b\",\"id\":1,\"value\":1}".to_vec(),
            None,
        ),
        (
            "escaped NUL in a label",
            br#"{"label":"a\u0000b","id":1,"value":1}"#.to_vec(),
            None,
        ),
        ("NUL bytes", vec![0; 4096], None),
        (
            "a 10 000-character label",
            format!(r#"{{"label":"{}","id":1,"value":1}}"#, "x".repeat(10_000)).into_bytes(),
            None,
        ),
        (
            "an array of tiny items over the limit",
            many_ones(BODY_LIMIT + 10),
            None,
        ),
        (
            "an array of tiny bad items under the limit",
            many_ones(BODY_LIMIT - 10),
            None,
        ),
        (
            "NDJSON of bad lines",
            "1\n".repeat(BODY_LIMIT / 2 - 10).into_bytes(),
            Some("application/x-ndjson"),
        ),
        ("empty array", b"[]".to_vec(), None),
        ("only whitespace", b" \n\t ".to_vec(), None),
        ("a bare string", br#""label""#.to_vec(), None),
        ("XML", b"<event/>".to_vec(), Some("application/xml")),
    ]
}

#[tokio::test]
async fn every_hostile_body_gets_a_4xx_and_a_bounded_reply() {
    // The harness's long header timeout: a 500 ms one would cut off requests a loaded
    // machine is merely slow to read (the slow-client tests below check it).
    let app = spawn_app_with(|s| s.ingest.max_body_bytes = BODY_LIMIT).await;
    for (what, body, content_type) in bad_bodies() {
        let response = app.post_gather(body, content_type).await;
        let status = response.status();
        let reply = response.bytes().await.unwrap();
        if what == "100 000-deep unknown field" {
            assert_eq!(status, 200, "{what}");
            continue;
        }
        assert!(
            status.is_client_error(),
            "{what}: {status} {}",
            String::from_utf8_lossy(&reply[..reply.len().min(300)])
        );
        assert!(
            reply.len() < 256 * 1024,
            "{what}: a reply of {} bytes",
            reply.len()
        );
        let reply: Value = serde_json::from_slice(&reply)
            .unwrap_or_else(|e| panic!("{what}: the reply is not JSON: {e}"));
        assert_eq!(reply["ok"], false, "{what}");
    }
    // Still alive and well.
    assert_eq!(app.get("/health/live").await.status(), 200);
    let ok = app
        .post_gather(r#"{"label":"a","id":1,"value":1}"#, None)
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_with_413() {
    let app = spawn_app_with(|s| s.ingest.max_body_bytes = BODY_LIMIT).await;
    // No Content-Length: the limit must hold while the body streams in.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app.post_gather(body, None).await;
    assert_eq!(response.status(), 413);
}

/// The server still answers. Polled: with a 500 ms header timeout, a loaded machine's
/// busy worker may answer a first request 408 before reading it.
async fn still_alive(app: &TestApp) {
    poll_until(
        Duration::from_secs(10),
        "/health/live to answer 200",
        || async { (app.get("/health/live").await.status() == 200).then_some(()) },
    )
    .await;
}

/// Reads from `stream` until the server answers or closes; returns what it sent.
async fn server_reply(stream: &mut TcpStream, within: Duration) -> String {
    let mut reply = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn a_slow_loris_body_that_never_finishes_gets_408() {
    let app = hostile_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /gather HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"label\":\"a\",",
        )
        .await
        .unwrap();
    // Configured: 1 s; actix's own default would be none at all.
    let reply = server_reply(&mut stream, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    still_alive(&app).await;
}

#[tokio::test]
async fn a_slow_loris_that_never_finishes_its_headers_is_cut_off() {
    let app = hostile_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /gather HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // A 408 or a closed connection. Configured: 500 ms; actix's default would be 5 s.
    let reply = server_reply(&mut stream, Duration::from_secs(3)).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply:?}"
    );
    still_alive(&app).await;
}
