//! The Logpush receiver against the in-memory event log: what is acknowledged is in the log, what
//! is refused is refused as a whole with the right status, and nothing disappears in between.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgelens_ingest::log::{message_lines, MemoryLog, DEAD_LETTERS_TOPIC, EVENTS_TOPIC};
use edgelens_ingest::receiver::{decode_batch, decode_batch_within, router, BatchError, DecodeBudget, IngestConfig};
use edgelens_schemas::sites::HostSites;
use edgelens_ingest::LogError;
use tower::ServiceExt;

fn line(i: u32, site: &str) -> String {
    format!(
        r#"{{"EdgeStartTimestamp":{},"ClientIP":"198.51.100.{}","EdgeResponseStatus":200,"ZoneName":"{site}","RayID":"{:016x}","ClientCountry":"us"}}"#,
        1_793_491_200_000_000_000i64 + i64::from(i) * 1_000_000,
        i % 250,
        u64::from(i) + 1
    )
}

/// The events on the events topic: (key, line), message by message.
fn events(log: &MemoryLog) -> Vec<(Vec<u8>, Vec<u8>)> {
    log.records(EVENTS_TOPIC).iter().flat_map(|r| message_lines(&r.value).map(|l| (r.key.clone(), l.to_vec()))).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

async fn post(app: &axum::Router, body: Vec<u8>, headers: &[(&str, &str)]) -> (StatusCode, Option<String>, serde_json::Value) {
    let mut req = Request::post("/v1/logpush");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, retry, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn gzip_batch_with_bad_lines_is_split_between_topics() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let mut body = String::new();
    for i in 0..1000 {
        body += &line(i, if i % 3 == 0 { "Shop.Example" } else { "news.example" });
        body.push('\n');
    }
    body += "{\"broken\": \n";
    body += "{\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"a.example\"}\n";
    let (status, _, json) = post(&app, gzip(body.as_bytes()), &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 1000);
    assert_eq!(json["dead_letters"], 2);

    // The 1000 lines span less than a second of event time: one message per site.
    let messages = log.records(EVENTS_TOPIC);
    let keys: Vec<&[u8]> = messages.iter().map(|r| r.key.as_slice()).collect();
    assert_eq!(keys, [b"shop.example".as_slice(), b"news.example"]);
    // Values are the lines exactly as received, each site's in their order; keys are the
    // normalised site.
    let events = events(&log);
    assert_eq!(events.len(), 1000);
    for (site, key) in [("Shop.Example", b"shop.example".as_slice()), ("news.example", b"news.example")] {
        let want: Vec<Vec<u8>> = (0..1000).filter(|i| (i % 3 == 0) == (site == "Shop.Example")).map(|i| line(i, site).into_bytes()).collect();
        let got: Vec<Vec<u8>> = events.iter().filter(|(k, _)| k == key).map(|(_, l)| l.clone()).collect();
        assert_eq!(got, want, "{site}");
    }
    let dead = log.records(DEAD_LETTERS_TOPIC);
    let reasons: Vec<String> = dead.iter().map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(reasons, ["malformed_json", "missing_field"]);
    let d: serde_json::Value = serde_json::from_slice(&dead[1].value).unwrap();
    assert_eq!(d["offset"], 1001);
    assert_eq!(d["source"], "logpush");
    assert!(d["raw"].as_str().unwrap().contains("1.2.3.4"));
}

/// A batch of one line per host, without `ZoneName` (keyed by the registry).
fn host_batch(hosts: &[&str]) -> String {
    let line = |host: &&str| format!(r#"{{"EdgeStartTimestamp":1793491200000000000,"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ClientRequestHost":"{host}"}}"#);
    hosts.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// The receiver keys a line by the site the registry maps its host to: the hosts of `nhs.uk`, a
/// registered site that is a public suffix itself, share its key (they were keys of their own).
#[tokio::test]
async fn the_receiver_keys_hosts_by_their_registered_site() {
    let log = Arc::new(MemoryLog::new());
    let sites = HostSites::new(["nhs.uk".to_owned()]);
    let app = router(IngestConfig::default(), Arc::clone(&log), sites.clone());
    let body = host_batch(&["www.nhs.uk", "api.nhs.uk", "www.gov.uk"]);
    let (status, _, json) = post(&app, body.clone().into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let keys: Vec<String> = log.records(EVENTS_TOPIC).iter().map(|r| String::from_utf8(r.key.clone()).unwrap()).collect();
    assert_eq!(keys, ["nhs.uk", "www.gov.uk"]);
    // A registry read again reaches the running receiver.
    sites.replace([("gov.uk".to_owned(), i64::MAX)].into());
    let (status, _, json) = post(&app, format!("{body}\n").into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let keys: Vec<String> = log.records(EVENTS_TOPIC).iter().skip(2).map(|r| String::from_utf8(r.key.clone()).unwrap()).collect();
    assert_eq!(keys, ["www.nhs.uk", "api.nhs.uk", "gov.uk"]);
}

/// Regression: a batch refused (503) and sent again after the registry was read again was keyed
/// by the new registry. A host's lines then went under another key, to another partition, where
/// its first attempt's events that had reached the log were not known: they counted twice.
#[tokio::test]
async fn a_resend_is_keyed_by_the_registry_its_first_attempt_was() {
    let log = Arc::new(MemoryLog::new());
    let sites = HostSites::new(["nhs.uk".to_owned()]);
    let app = router(IngestConfig::default(), Arc::clone(&log), sites.clone());
    let body = host_batch(&["www.nhs.uk", "api.nhs.uk", "www.gov.uk"]).into_bytes();
    let keys = |log: &MemoryLog| log.records(EVENTS_TOPIC).iter().map(|r| (String::from_utf8(r.key.clone()).unwrap(), r.resend)).collect::<Vec<_>>();
    log.fail_with(Some(LogError::Unavailable("broker down".into())));
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    log.fail_with(None);
    sites.replace([("gov.uk".to_owned(), i64::MAX)].into());
    let (status, _, json) = post(&app, body.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(keys(&log), [("nhs.uk".to_owned(), true), ("www.gov.uk".to_owned(), true)], "keyed as the first attempt");
    // Answered 200, the batch is done: the same lines again are another batch, keyed by the
    // registry read since.
    assert_eq!(post(&app, body, &[]).await.0, StatusCode::OK);
    assert_eq!(keys(&log)[2..], [("www.nhs.uk".to_owned(), false), ("api.nhs.uk".to_owned(), false), ("gov.uk".to_owned(), false)]);
}

#[tokio::test]
async fn plain_and_gzip_without_header_are_accepted() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let (s1, _, _) = post(&app, format!("{}\n{}", line(1, "a.example"), line(2, "a.example")).into_bytes(), &[]).await;
    let (s2, _, _) = post(&app, gzip(line(3, "a.example").as_bytes()), &[]).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(events(&log).len(), 3);
}

#[tokio::test]
async fn gzip_bomb_and_oversized_body_get_413_and_append_nothing() {
    let log = Arc::new(MemoryLog::new());
    let cfg = IngestConfig { max_body_bytes: 64 << 10, max_decompressed_bytes: 1 << 20, ..IngestConfig::default() };
    let app = router(cfg, Arc::clone(&log), HostSites::default());
    // 16 MiB of one byte compress to ~16 KiB: under the body limit, far over the decompressed one.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'0'; 16 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let (status, _, json) = post(&app, bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    let (status, _, _) = post(&app, vec![b'x'; 128 << 10], &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(log.records(EVENTS_TOPIC).is_empty() && log.records(DEAD_LETTERS_TOPIC).is_empty());
}

/// A coding other than gzip or identity is refused with 415 and nothing appended (read as plain
/// text, its lines would all be dead letters under a 200); `x-gzip`, `GZIP` and `identity` are
/// accepted.
#[tokio::test]
async fn unsupported_content_encoding_is_415_and_appends_nothing() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let body = line(1, "a.example").into_bytes();
    let mut deflated = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    deflated.write_all(&body).unwrap();
    for (coding, body) in [("deflate", deflated.finish().unwrap()), ("br", body.clone()), ("zstd", body.clone()), ("gzip, br", gzip(&body)), ("gzip, gzip", gzip(&body))] {
        let (status, _, json) = post(&app, body, &[("content-encoding", coding)]).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{coding}: {json}");
        // Regression: `gzip, gzip` was told gzip is not supported.
        let why = if coding == "gzip, gzip" { "compresses the body more than once" } else { "is not supported" };
        assert!(json["error"].as_str().unwrap().contains(why), "{json}");
    }
    assert!(log.records(EVENTS_TOPIC).is_empty() && log.records(DEAD_LETTERS_TOPIC).is_empty());
    // Regression: they were counted under status 400.
    let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"415\"} 5"), "{text}");
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"400\"} 0"), "{text}");
    for (coding, body) in [("x-gzip", gzip(&body)), ("GZIP", gzip(&body)), ("identity", body.clone()), ("", body.clone())] {
        let (status, _, json) = post(&app, body, &[("content-encoding", coding)]).await;
        assert_eq!(status, StatusCode::OK, "{coding}: {json}");
    }
    assert_eq!(events(&log).len(), 4);
}

#[tokio::test]
async fn corrupt_gzip_is_400() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let mut gz = gzip(line(1, "a.example").as_bytes());
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    gz.truncate(n - 4);
    let (status, _, _) = post(&app, gz, &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(log.records(EVENTS_TOPIC).is_empty());
}

#[tokio::test]
async fn shared_secret_is_required_when_configured() {
    let log = Arc::new(MemoryLog::new());
    let cfg = IngestConfig { secret: "s3cret".into(), ..IngestConfig::default() };
    let app = router(cfg, Arc::clone(&log), HostSites::default());
    let (status, _, _) = post(&app, line(1, "a.example").into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = post(&app, line(1, "a.example").into_bytes(), &[("x-edgelens-secret", "wrong")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = post(&app, line(1, "a.example").into_bytes(), &[("x-edgelens-secret", "s3cret")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events(&log).len(), 1);
}

#[tokio::test]
async fn unavailable_log_is_503_and_full_queue_429_with_retry_after() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig { retry_after_secs: 7, ..IngestConfig::default() }, Arc::clone(&log), HostSites::default());
    log.fail_with(Some(LogError::Unavailable("broker down".into())));
    let (status, retry, json) = post(&app, line(1, "a.example").into_bytes(), &[]).await;
    assert_eq!((status, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("7")), "{json}");
    log.fail_with(Some(LogError::QueueFull));
    let (status, retry, _) = post(&app, line(1, "a.example").into_bytes(), &[]).await;
    assert_eq!((status, retry.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("7")));
    // The client's retry after recovery lands.
    log.fail_with(None);
    let (status, _, _) = post(&app, line(1, "a.example").into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events(&log).len(), 1);
    // It is marked as resent (part of it may have reached the log before); an equal batch after
    // the 200 is another batch, not marked.
    let body = [line(1, "a.example"), line(2, "b.example")].join("\n").into_bytes();
    let (status, _, _) = post(&app, body.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let marks: Vec<(Option<Vec<u8>>, bool)> = log.records(EVENTS_TOPIC).into_iter().map(|r| (r.id, r.resend)).collect();
    assert_eq!(marks.len(), 3);
    assert!(marks[0].1, "the retry after the 503 and the 429 is resent");
    assert!(!marks[1].1 && !marks[2].1);
    assert_ne!(marks[1].0, marks[2].0, "each message has an id of its own");
    assert!(marks.iter().all(|(id, _)| id.is_some()));

    let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"503\"} 1"), "{text}");
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"429\"} 1"), "{text}");
    assert!(text.contains("edgelens_ingest_events_accepted_total 3"), "{text}");
}

#[test]
fn decode_batch_counts_every_line_once() {
    let mut body = Vec::new();
    for i in 0..100 {
        body.extend_from_slice(line(i, "a.example").as_bytes());
        body.push(b'\n');
        if i % 10 == 0 {
            body.extend_from_slice(b"\xff\xfe garbage\n\n");
        }
    }
    body.extend_from_slice(format!("{{\"x\":\"{}\"}}\n", "y".repeat(5000)).as_bytes());
    let b = decode_batch(&body, false, 1 << 20, 4096, 0).unwrap();
    assert_eq!(b.events, 100);
    assert_eq!(b.messages.iter().map(|m| message_lines(&m.value).count()).sum::<usize>(), 100);
    let reasons: Vec<&str> = b.dead_letters.iter().map(|d| d.reason).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "invalid_utf8").count(), 10);
    assert_eq!(reasons.last(), Some(&"line_too_long"));
    assert_eq!(decode_batch(&body, false, 100, 4096, 0).unwrap_err(), BatchError::TooLarge { limit: 100 });
}

/// A client that stops sending half-way through its body gets 408 once `body_timeout_secs` passed,
/// nothing is appended, and its slot is free again; a chunked body past `max_body_bytes` gets 413.
#[tokio::test]
async fn a_stalled_body_gets_408_and_a_chunked_oversized_one_413() {
    use futures::StreamExt;
    let log = Arc::new(MemoryLog::new());
    let cfg = IngestConfig { body_timeout_secs: 1, max_inflight_batches: 1, max_body_bytes: 64 << 10, ..IngestConfig::default() };
    let app = router(cfg, Arc::clone(&log), HostSites::default());
    let first = format!("{}\n", line(1, "a.example"));
    let stalled = futures::stream::iter([Ok::<_, std::io::Error>(first.into_bytes())]).chain(futures::stream::pending());
    let started = std::time::Instant::now();
    let resp = app.clone().oneshot(Request::post("/v1/logpush").body(Body::from_stream(stalled)).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(log.records(EVENTS_TOPIC).is_empty());

    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024]));
    let resp = app.clone().oneshot(Request::post("/v1/logpush").body(Body::from_stream(futures::stream::iter(chunks))).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // The one batch slot was released both times.
    let (status, _, _) = post(&app, line(2, "a.example").into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(metrics.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"408\"} 1"), "{text}");
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"413\"} 1"), "{text}");
}

/// Batches of `n` valid lines.
fn lines(n: u32) -> Vec<u8> {
    (0..n).flat_map(|i| format!("{}\n", line(i, "a.example")).into_bytes()).collect()
}

/// The decompressed bytes of the batches in flight are bounded together: a batch whose text does
/// not fit beside the others' is refused as busy (nothing of it kept), and fits once they are done.
#[test]
fn the_decompression_budget_is_shared_by_the_batches_in_flight() {
    let text = lines(20_000);
    assert!(text.len() > 3 << 20, "{}", text.len());
    let budget = DecodeBudget::new(4 << 20);
    let mut other = budget.reservation();
    assert!(other.grow_to(2 << 20));
    assert!(!other.grow_to(5 << 20), "over the budget");
    assert_eq!(budget.in_use(), 2 << 20);
    for (body, gz) in [(gzip(&text), true), (text.clone(), false)] {
        let e = decode_batch_within(&body, gz, 64 << 20, 4096, 0, &budget, &HostSites::default()).unwrap_err();
        assert_eq!(e, BatchError::Busy { limit: 4 << 20 });
        assert_eq!(budget.in_use(), 2 << 20, "a refused batch keeps nothing");
    }
    drop(other);
    let (batch, held) = decode_batch_within(&gzip(&text), true, 64 << 20, 4096, 0, &budget, &HostSites::default()).unwrap();
    assert_eq!(batch.events, 20_000);
    assert_eq!((held.bytes(), budget.in_use()), (text.len(), text.len()), "the text's bytes are held");
    drop(held);
    assert_eq!(budget.in_use(), 0);
    // A bomb over the per-batch limit is still 413, and releases what it reserved.
    assert_eq!(decode_batch_within(&gzip(&vec![b'0'; 8 << 20]), true, 1 << 20, 4096, 0, &budget, &HostSites::default()).unwrap_err(), BatchError::TooLarge { limit: 1 << 20 });
    assert_eq!(budget.in_use(), 0);
}

/// Regression: a few KB of gzip holding millions of bad lines made a dead letter of each before
/// anything was checked (16 KB took the receiver to 1.95 GB). The dead letters are held with the
/// text: over the batch's limit the batch is 413 at once, over the shared budget 429, and a batch
/// with some bad lines holds their memory until it is answered.
#[test]
fn dead_letters_are_held_within_the_batch_limit_and_the_budget() {
    let bad = b"x\n".repeat(4 << 20);
    let body = gzip(&bad);
    assert!(body.len() * 50 < bad.len(), "{} bytes of gzip", body.len());
    let budget = DecodeBudget::new(64 << 20);
    match decode_batch_within(&body, true, 16 << 20, 4096, 0, &budget, &HostSites::default()).unwrap_err() {
        BatchError::TooManyRejected { lines, limit } => {
            assert_eq!(limit, 16 << 20);
            assert!(lines > 1_000 && lines < 200_000, "stopped early: {lines}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(budget.in_use(), 0, "a refused batch keeps nothing");
    // Regression: several such batches at once each filled part of the shared budget before
    // reaching their own limit, and all got 429 (retried for good) instead of 413. Each is held
    // to its share of the budget: all four get 413.
    let shared = DecodeBudget::shared(64 << 20, 4);
    let answers: Vec<BatchError> = std::thread::scope(|s| {
        let running: Vec<_> = (0..4).map(|_| s.spawn(|| decode_batch_within(&body, true, 48 << 20, 4096, 0, &shared, &HostSites::default()).unwrap_err())).collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|e| matches!(e, BatchError::TooManyRejected { limit, .. } if *limit == 8 << 20)), "{answers:?}");
    // Within the batch's limit but not beside the other batches in flight: busy.
    let small = DecodeBudget::new(2 << 20);
    let mut other = small.reservation();
    assert!(other.grow_to(1 << 20));
    let some_bad = b"x\n".repeat(20_000);
    assert_eq!(decode_batch_within(&gzip(&some_bad), true, 64 << 20, 4096, 0, &small, &HostSites::default()).unwrap_err(), BatchError::Busy { limit: 2 << 20 });
    drop(other);
    // Fits: the reservation holds the text and the dead letters.
    let mut mixed = lines(100);
    mixed.extend_from_slice(b"{not json\n".repeat(50).as_slice());
    let (batch, held) = decode_batch_within(&gzip(&mixed), true, 64 << 20, 4096, 0, &small, &HostSites::default()).unwrap();
    assert_eq!((batch.events, batch.dead_letters.len()), (100, 50));
    assert!(held.bytes() > mixed.len() + 50 * 100, "{} held for {} bytes of text", held.bytes(), mixed.len());
}

/// A gzip body with zero bytes after its last member (padding) is read as `gzip -d` reads it;
/// other bytes after a member are a bad body.
#[test]
fn zero_padding_after_a_gzip_body_is_ignored() {
    let text = lines(50);
    let mut body = gzip(&text);
    body.extend(gzip(&text));
    body.extend([0u8; 512]);
    let batch = decode_batch(&body, true, 1 << 20, 4096, 0).unwrap();
    assert_eq!((batch.events, batch.dead_letters.len()), (100, 0));
    body.push(b'x');
    assert!(matches!(decode_batch(&body, true, 1 << 20, 4096, 0), Err(BatchError::BadGzip(_))));
}

/// An event log whose appends wait until released: a batch stays in flight meanwhile.
struct GatedLog {
    inner: MemoryLog,
    open: tokio::sync::watch::Receiver<bool>,
    /// Appends begun.
    entered: std::sync::atomic::AtomicUsize,
}

impl edgelens_ingest::log::EventLog for GatedLog {
    fn append(&self, topic: &str, records: &[edgelens_ingest::log::Record]) -> impl std::future::Future<Output = Result<(), LogError>> + Send {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.open.clone();
        let done = self.inner.append(topic, records);
        async move {
            open.wait_for(|o| *o).await.unwrap();
            done.await
        }
    }
}

/// Over HTTP: while a batch waits for its acknowledgement, it holds its decompressed bytes, and a
/// second batch that does not fit beside it gets 429 with Retry-After; sent again once the first
/// is answered, it is taken. The ingest role refuses a budget below one batch's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_beyond_the_shared_decompression_budget_gets_429() {
    let (first_text, second_text) = (lines(20_000), lines(10_000));
    let (release, open) = tokio::sync::watch::channel(false);
    let log = Arc::new(GatedLog { inner: MemoryLog::new(), open, entered: Default::default() });
    let total = first_text.len() + second_text.len() / 2;
    let cfg = IngestConfig { max_decompressed_bytes: 4 << 20, max_decompressed_bytes_total: total.max(4 << 20), retry_after_secs: 3, ..IngestConfig::default() };
    assert!(IngestConfig { max_decompressed_bytes_total: 1 << 20, ..cfg.clone() }.validate().unwrap_err().contains("max_decompressed_bytes_total"));
    cfg.validate().unwrap();
    let app = router(cfg, Arc::clone(&log), HostSites::default());
    let first = tokio::spawn({
        let (app, body) = (app.clone(), gzip(&first_text));
        async move { post(&app, body, &[("content-encoding", "gzip")]).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while log.entered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the first batch never reached the log");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Taken, it would wait for the closed log too.
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), post(&app, gzip(&second_text), &[("content-encoding", "gzip")]));
    let (status, retry, json) = second.await.expect("the second batch was taken beside the first");
    assert_eq!((status, retry.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("3")), "{json}");
    assert!(json["error"].as_str().unwrap().contains("decompression budget"), "{json}");
    assert!(!first.is_finished(), "the first batch waits for the log");
    release.send(true).unwrap();
    let (status, _, json) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, _, json) = post(&app, gzip(&second_text), &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(events(&log.inner).len(), 30_000);
    let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("edgelens_ingest_batches_rejected_total{status=\"429\"} 1"), "{text}");
}

/// Regression: the first attempt's 200 forgot the batch while a second attempt was in flight;
/// when that one failed, the third came unmarked and counted in full on top of the first.
#[test]
fn a_batch_stays_unfinished_while_any_attempt_of_it_is_in_flight() {
    use edgelens_ingest::receiver::Unfinished;
    let u = Unfinished::default();
    let keyed_by = HostSites::default();
    let start = |name: &str| u.start(name, &keyed_by);
    assert!(!start("b").resend, "a first attempt is no resend");
    assert!(start("b").resend, "the client gave up waiting and sent it again");
    u.end("b", true, true);
    u.end("b", false, false);
    assert!(start("b").resend, "the second attempt failed: the third is a resend");
    u.end("b", true, true);
    assert!(!start("b").resend, "answered 200 with nothing in flight: an equal batch is another batch");
    u.end("b", false, false);
    let retry = start("b");
    assert!(retry.resend && !retry.dead_letters_in, "refused: its retry is a resend, its dead letters are not in");
    u.end("b", false, true);
    let retry = start("b");
    assert!(retry.resend && retry.dead_letters_in, "refused with its dead letters in: not to be appended again");
    // Every attempt of a batch has its instance; an equal batch after a 200 has another.
    u.end("b", true, true);
    u.end("b", true, true);
    let first = start("c");
    u.end("c", false, false);
    let again = start("c");
    assert_eq!(first.instance, again.instance);
    assert_eq!(first.message_name("c"), again.message_name("c"));
    u.end("c", true, true);
    let another = start("c");
    assert!(!another.resend);
    assert_ne!(another.message_name("c"), first.message_name("c"));
}

/// Regression: a batch equal to one answered 200 had the same message ids. When its first
/// attempt failed (503) and the client sent it again, the resend's messages were taken downstream
/// for the earlier batch's, already counted, and dropped: a batch answered 200 was lost.
#[tokio::test]
async fn an_equal_batch_after_a_200_has_ids_of_its_own() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let body = [line(1, "a.example"), line(2, "b.example")].join("\n").into_bytes();
    let ids = |log: &MemoryLog| log.records(EVENTS_TOPIC).into_iter().map(|r| (String::from_utf8(r.id.unwrap()).unwrap(), r.resend)).collect::<Vec<_>>();
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::OK);
    let first = ids(&log);
    log.fail_with(Some(LogError::Unavailable("broker down".into())));
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    log.fail_with(None);
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::OK);
    assert_eq!(post(&app, body, &[]).await.0, StatusCode::OK);
    let all = ids(&log);
    assert_eq!(all.len(), 6, "{all:?}");
    let (second, third) = (&all[2..4], &all[4..6]);
    assert!(second.iter().all(|(_, resend)| *resend), "the retry after the 503 is a resend: {all:?}");
    assert!(third.iter().chain(&first).all(|(_, resend)| !*resend), "{all:?}");
    for (a, b) in [(&first[..], second), (&first[..], third), (second, third)] {
        for ((x, _), (y, _)) in a.iter().zip(b) {
            assert_ne!(x, y, "equal batches answered 200 share no message id: {all:?}");
        }
    }
    // The instance is part of the batch's name; the place of the message after it.
    assert!(first.iter().enumerate().all(|(i, (id, _))| id.ends_with(&format!("/{i}")) && id.split_once('/').unwrap().0.contains('.')), "{first:?}");
}

/// A batch refused (503) after its dead letters were acknowledged: its retry appends its events
/// and not its dead letters again (they were recorded once per attempt).
#[tokio::test]
async fn a_retried_batch_records_its_dead_letters_once() {
    use edgelens_ingest::log::EventLog;
    /// Appends to the events topic fail while `down`; dead letters go through.
    #[derive(Default)]
    struct EventsDown {
        log: MemoryLog,
        down: std::sync::atomic::AtomicBool,
    }
    impl EventLog for EventsDown {
        async fn append(&self, topic: &str, records: &[edgelens_ingest::log::Record]) -> Result<(), LogError> {
            if topic == EVENTS_TOPIC && self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(LogError::Unavailable("broker down".into()));
            }
            self.log.append(topic, records).await
        }
    }
    let log = Arc::new(EventsDown::default());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let body = format!("{}\nnot json\n{}\n{{\"also\": \"bad\"}}\n", line(1, "a.example"), line(2, "b.example")).into_bytes();
    log.down.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(log.log.records(DEAD_LETTERS_TOPIC).len(), 2);
    log.down.store(false, std::sync::atomic::Ordering::Relaxed);
    let (status, _, json) = post(&app, body.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((json["accepted"].as_u64(), json["dead_letters"].as_u64()), (Some(2), Some(2)));
    assert_eq!(log.log.records(DEAD_LETTERS_TOPIC).len(), 2, "the retry recorded its dead letters again");
    assert_eq!(events(&log.log).len(), 2);
    // Answered 200: the same body again is another batch, recorded again.
    assert_eq!(post(&app, body, &[]).await.0, StatusCode::OK);
    assert_eq!(log.log.records(DEAD_LETTERS_TOPIC).len(), 4);
    // A batch differing only in its rejected lines is another batch.
    log.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let a = format!("{}\nnot json A\n", line(3, "a.example")).into_bytes();
    let b = format!("{}\nnot json B\n", line(3, "a.example")).into_bytes();
    assert_eq!(post(&app, a, &[]).await.0, StatusCode::SERVICE_UNAVAILABLE);
    log.down.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(post(&app, b, &[]).await.0, StatusCode::OK);
    let raws: Vec<String> = log.log.records(DEAD_LETTERS_TOPIC).iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect();
    assert!(raws.iter().any(|r| r.contains("not json B")), "{raws:?}");
    // Regression: the metric counted only the dead letters of attempts answered 200, so those
    // appended by a refused attempt (and not again by its retry) were never counted.
    let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    let appended = log.log.records(DEAD_LETTERS_TOPIC).len();
    assert!(text.contains(&format!("edgelens_ingest_dead_letters_total {appended}\n")), "{appended} appended: {text}");
}

/// Regression: a secret header no request can carry passed the config check, and every push got
/// 401.
#[test]
fn a_secret_no_push_could_carry_is_refused_by_the_config_check() {
    for (header, secret) in [("", "s3cret"), ("x secret", "s3cret"), ("x-secret", "a\nb"), ("x-secret", "s3cret "), ("x-secret", " s3cret")] {
        let cfg = IngestConfig { secret_header: header.into(), secret: secret.into(), ..IngestConfig::default() };
        let e = cfg.validate().unwrap_err();
        assert!(e.contains("401"), "{header:?} {secret:?}: {e}");
    }
    let cfg = IngestConfig { secret_header: "X-Logpush-Secret".into(), secret: "s3cret".into(), ..IngestConfig::default() };
    assert_eq!(cfg.validate(), Ok(()));
}

/// Regression: a body compressed twice was taken, its binary lines all dead letters.
#[tokio::test]
async fn gzip_inside_gzip_is_400() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let (status, _, json) = post(&app, gzip(&gzip(line(1, "a.example").as_bytes())), &[("content-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(json["error"].as_str().unwrap().contains("gzip inside gzip"), "{json}");
    assert!(log.records(EVENTS_TOPIC).is_empty() && log.records(DEAD_LETTERS_TOPIC).is_empty());
}

/// The whole request (head, then a body of `body_len` bytes) written before the answer is read, as
/// most HTTP client libraries do, over a real connection; the answer's status line.
async fn send_whole_then_read(addr: std::net::SocketAddr, head: &str, body_len: usize) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("POST /v1/logpush HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {body_len}\r\n{head}\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&vec![b'x'; body_len]).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned())
}

async fn serve_receiver(cfg: IngestConfig, log: Arc<MemoryLog>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(edgelens_ingest::receiver::serve_on(listener, cfg, log, HostSites::default(), std::future::pending()));
    addr
}

/// A 401, 413 or 415 is answered before the body is read. A client that sends its whole body
/// first used to find the connection reset (the server closed it with the body unread) and never
/// saw the answer; the body is now read and thrown away after the answer.
#[tokio::test]
async fn a_client_sending_its_whole_body_first_gets_the_early_answer() {
    let log = Arc::new(MemoryLog::new());
    let cfg = IngestConfig { secret: "s3cret".into(), max_body_bytes: 16 << 20, ..IngestConfig::default() };
    let addr = serve_receiver(cfg, Arc::clone(&log)).await;
    let big = 24 << 20;
    let answer = send_whole_then_read(addr, "x-edgelens-secret: wrong\r\n", 12 << 20).await;
    assert_eq!(answer.expect("the 401 is read, not a reset"), "HTTP/1.1 401 Unauthorized");
    let answer = send_whole_then_read(addr, "x-edgelens-secret: s3cret\r\ncontent-encoding: br\r\n", 12 << 20).await;
    assert_eq!(answer.expect("the 415 is read, not a reset"), "HTTP/1.1 415 Unsupported Media Type");
    let answer = send_whole_then_read(addr, "x-edgelens-secret: s3cret\r\n", big).await;
    assert_eq!(answer.expect("the 413 is read, not a reset"), "HTTP/1.1 413 Payload Too Large");
    assert!(log.records(EVENTS_TOPIC).is_empty() && log.records(DEAD_LETTERS_TOPIC).is_empty());
}

/// A client sending its headers a byte at a time (each byte within the idle timeout) is cut once
/// `header_timeout_secs` passed, and its connection slot serves the next client.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let log = Arc::new(MemoryLog::new());
    let cfg = IngestConfig { header_timeout_secs: 1, max_connections: 1, ..IngestConfig::default() };
    let addr = serve_receiver(cfg, Arc::clone(&log)).await;
    let (mut slow_read, mut slow_write) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        let _ = slow_write.write_all(b"POST /v1/logpush HTTP/1.1\r\nx-pad: ").await;
        for _ in 0..100 {
            if slow_write.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let cut = tokio::time::timeout(std::time::Duration::from_secs(6), slow_read.read_to_end(&mut answer)).await;
    assert!(cut.is_ok(), "the trickling client still held its connection after 6 s");
    trickle.abort();
    let answer = send_whole_then_read(addr, "", 0).await.expect("the next client is served");
    assert_eq!(answer, "HTTP/1.1 200 OK");
}

/// A dead letter's offset is its line's number in the batch, blank lines before it counted.
#[test]
fn dead_letter_offsets_count_leading_blank_lines() {
    let body = format!("\n\r\n{}\n\nnot json\n", line(1, "a.example"));
    let batch = decode_batch(body.as_bytes(), false, 1 << 20, 1 << 20, 0).unwrap();
    assert_eq!(batch.events, 1);
    let offsets: Vec<u64> = batch.dead_letters.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, [4]);
}

/// Cloudflare checks an HTTP destination by pushing a gzipped `{"content":"tests"}` when a Logpush
/// job is created: answered 200, nothing appended (it was a dead letter per job set up), counted.
#[tokio::test]
async fn the_logpush_destination_check_is_answered_and_appends_nothing() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let gz: &[(&str, &str)] = &[("content-encoding", "gzip")];
    for (body, headers) in [(gzip(br#"{"content":"tests"}"#), gz), (gzip(b"{\"content\": \"tests\"}\n"), gz), (br#"{"content":"tests"}"#.to_vec(), &[])] {
        let (status, _, json) = post(&app, body, headers).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json, serde_json::json!({ "accepted": 0, "dead_letters": 0, "destination_check": true }));
    }
    assert!(log.records(EVENTS_TOPIC).is_empty() && log.records(DEAD_LETTERS_TOPIC).is_empty());
    // Anything else beside it is a batch like any other.
    let (status, _, json) = post(&app, format!("{{\"content\":\"tests\"}}\n{}\n", line(1, "a.example")).into_bytes(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((json["accepted"].as_u64(), json["dead_letters"].as_u64()), (Some(1), Some(1)));
    let metrics = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(metrics.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("edgelens_ingest_destination_checks_total 3"), "{text}");
    assert!(text.contains("edgelens_ingest_batches_accepted_total 1"), "{text}");
}

/// `/readyz` follows the event log: 503 with the reason while it cannot take appends.
#[tokio::test]
async fn readiness_follows_the_event_log() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let ready = |app: axum::Router| async move {
        let resp = app.oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        (status, String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap())
    };
    assert_eq!(ready(app.clone()).await.0, StatusCode::OK);
    log.fail_with(Some(LogError::Unavailable("broker down".into())));
    let (status, body) = ready(app.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("broker down"), "{body}");
    log.fail_with(None);
    assert_eq!(ready(app.clone()).await.0, StatusCode::OK);

    // Regression: only the events topic was asked, so a receiver whose dead-letters topic did not
    // exist said ready and answered 503 to every batch with an invalid line.
    use edgelens_ingest::log::EventLog;
    struct Without(&'static str, MemoryLog);
    impl EventLog for Without {
        async fn append(&self, topic: &str, records: &[edgelens_ingest::log::Record]) -> Result<(), LogError> {
            self.1.append(topic, records).await
        }
        async fn probe(&self, topic: &str) -> Result<(), LogError> {
            if topic == self.0 { Err(LogError::Rejected(format!("the brokers do not have topic {topic}"))) } else { Ok(()) }
        }
    }
    for missing in [EVENTS_TOPIC, DEAD_LETTERS_TOPIC] {
        let app = router(IngestConfig::default(), Arc::new(Without(missing, MemoryLog::new())), HostSites::default());
        let (status, body) = ready(app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{missing}");
        assert!(body.contains(missing), "{body}");
    }
}

/// Regression: an attempt whose client went away (its handler dropped while the log had not
/// acknowledged) stayed in flight for good, so every later equal batch, even after one was
/// answered 200, was marked resent (and, without `RayID`, dropped downstream).
#[tokio::test]
async fn an_abandoned_attempt_ends_and_equal_batches_after_a_200_are_new() {
    use edgelens_ingest::log::EventLog;
    /// Appends hang while `stalled` (a frozen broker).
    #[derive(Default)]
    struct Stalling {
        log: MemoryLog,
        stalled: std::sync::atomic::AtomicBool,
    }
    impl EventLog for Stalling {
        async fn append(&self, topic: &str, records: &[edgelens_ingest::log::Record]) -> Result<(), LogError> {
            if self.stalled.load(std::sync::atomic::Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            self.log.append(topic, records).await
        }
    }
    let log = Arc::new(Stalling::default());
    let app = router(IngestConfig::default(), Arc::clone(&log), HostSites::default());
    let body = format!("{}\n{}\n", line(1, "a.example"), line(2, "a.example")).into_bytes();
    log.stalled.store(true, std::sync::atomic::Ordering::Relaxed);
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(300), post(&app, body.clone(), &[])).await;
    assert!(gave_up.is_err(), "the stalled append was answered");
    log.stalled.store(false, std::sync::atomic::Ordering::Relaxed);
    let marks = |log: &Stalling| log.log.records(EVENTS_TOPIC).iter().map(|r| r.resend).collect::<Vec<bool>>();
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::OK);
    assert_eq!(marks(&log), [true], "the retry of the abandoned attempt is a resend");
    assert_eq!(post(&app, body.clone(), &[]).await.0, StatusCode::OK);
    assert_eq!(post(&app, body, &[]).await.0, StatusCode::OK);
    assert_eq!(marks(&log), [true, false, false], "batches after a 200 are other batches");
    // The retry of an abandoned attempt is keyed by the registry the attempt was keyed by.
    let sites = HostSites::new(["nhs.uk".to_owned()]);
    let app = router(IngestConfig::default(), Arc::clone(&log), sites.clone());
    let body = host_batch(&["www.nhs.uk", "api.nhs.uk", "www.gov.uk"]).into_bytes();
    log.stalled.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), post(&app, body.clone(), &[])).await.is_err());
    log.stalled.store(false, std::sync::atomic::Ordering::Relaxed);
    sites.replace([("gov.uk".to_owned(), i64::MAX)].into());
    assert_eq!(post(&app, body, &[]).await.0, StatusCode::OK);
    let keys: Vec<(String, bool)> = log.log.records(EVENTS_TOPIC)[3..].iter().map(|r| (String::from_utf8(r.key.clone()).unwrap(), r.resend)).collect();
    assert_eq!(keys, [("nhs.uk".to_owned(), true), ("www.gov.uk".to_owned(), true)]);
}

/// Regression: a batch needing more messages than the producer's queue holds got 429 on every
/// retry, for good, and each retry recorded its dead letters again. It is 413 now, with nothing
/// appended.
#[tokio::test]
async fn a_batch_larger_than_the_producer_queue_is_413() {
    let log = Arc::new(MemoryLog::new());
    let app = router(IngestConfig { producer_queue_messages: 100, ..IngestConfig::default() }, Arc::clone(&log), HostSites::default());
    let body: String = (0..150).map(|i| format!("not json {i}\n")).collect();
    let (status, retry, json) = post(&app, body.into_bytes(), &[]).await;
    assert_eq!((status, retry), (StatusCode::PAYLOAD_TOO_LARGE, None), "{json}");
    assert!(json["error"].as_str().unwrap().contains("smaller batches"), "{json}");
    assert!(log.records(DEAD_LETTERS_TOPIC).is_empty());
    let body: String = (0..90).map(|i| format!("not json {i}\n")).collect();
    assert_eq!(post(&app, body.into_bytes(), &[]).await.0, StatusCode::OK);
}

/// Batches with the same valid lines and other rejected ones are other batches, and so are their
/// messages: with equal ids, a resend of one was dropped downstream as the other's.
#[test]
fn batches_differing_in_rejected_lines_have_other_message_ids() {
    let body = |bad: &str| format!("{}\n{bad}\n", line(3, "a.example")).into_bytes();
    let a = decode_batch(&body("not json A"), false, 1 << 20, 1 << 20, 0).unwrap();
    let b = decode_batch(&body("not json B"), false, 1 << 20, 1 << 20, 0).unwrap();
    let again = decode_batch(&body("not json A"), false, 1 << 20, 1 << 20, 0).unwrap();
    assert_ne!(a.name, b.name);
    assert_eq!(a.name, again.name, "the same body again has the same name");
    // Each attempt names the messages after the batch and its instance.
    assert!(a.messages.iter().all(|m| m.id.is_none()), "named before an attempt names them");
    let mut named = a.messages.clone();
    edgelens_ingest::log::name_messages(&mut named, "n.1f");
    assert_eq!(named[0].id.as_deref(), Some(&b"n.1f/0"[..]));
}
