//! One contract for every [`EventLog`]: run against the in-memory log and against the real broker
//! (`$EDGELENS_TEST_KAFKA`, never skipped: the test fails and says how to start it).
//!
//! Contract: an acknowledged append is readable in full, with each record's id; the records of
//! one key keep their order;
//! one key always lands on one partition; an empty append is a no-op; an unreachable log is a
//! retryable error within the acknowledgement timeout, not a hang.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use edgelens_ingest::kafka::{KafkaLog, KafkaLogConfig};
use edgelens_ingest::log::{EventLog, MemoryLog, Record};

mod support;

fn batch(n: usize) -> Vec<Record> {
    // Every third record without an id.
    (0..n)
        .map(|i| Record {
            key: format!("site-{}.example", i % 7).into_bytes(),
            value: format!("{{\"n\":{i}}}").into_bytes(),
            id: (i % 3 != 0).then(|| format!("batch-{}/{i}", i / 100).into_bytes()),
            resend: i % 5 == 1,
        })
        .collect()
}

/// Appends, then checks what `read` returns as (partition, key, value, id, resend) in
/// per-partition order.
async fn contract<L: EventLog>(log: &L, topic: &str, read: impl Fn(usize) -> Vec<(i32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, bool)>) {
    log.append(topic, &[]).await.expect("empty append");
    let first = batch(500);
    log.append(topic, &first).await.expect("append");
    let second: Vec<Record> = batch(1200).split_off(500);
    log.append(topic, &second).await.expect("append");
    let all = batch(1200);

    let got = read(all.len());
    assert_eq!(got.len(), all.len());
    let mut partition_of: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    type Message = (Vec<u8>, Option<Vec<u8>>, bool);
    let mut per_key: BTreeMap<Vec<u8>, Vec<Message>> = BTreeMap::new();
    for (p, k, v, id, resend) in got {
        assert_eq!(*partition_of.entry(k.clone()).or_insert(p), p, "key {:?} on two partitions", String::from_utf8_lossy(&k));
        per_key.entry(k).or_default().push((v, id, resend));
    }
    let mut want: BTreeMap<Vec<u8>, Vec<Message>> = BTreeMap::new();
    for r in all {
        // Only a named message is marked as sent again.
        want.entry(r.key).or_default().push((r.value, r.id.clone(), r.resend && r.id.is_some()));
    }
    assert!(per_key == want, "records, their ids or their per-key order differ");
}

#[tokio::test]
async fn memory_log_meets_the_contract() {
    let log = MemoryLog::new();
    contract(&log, "t", |_| log.records("t").into_iter().map(|r| (0, r.key, r.value, r.id.clone(), r.resend && r.id.is_some())).collect()).await;
}

#[tokio::test]
async fn kafka_log_meets_the_contract() {
    let broker = support::broker();
    let log = KafkaLog::new(&KafkaLogConfig { brokers: broker.clone(), ack_timeout: Duration::from_secs(30), queue_max_messages: 100_000, max_message_bytes: 1 << 20 }).unwrap();
    let probe: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &broker).create().unwrap();
    support::assert_reachable(&probe, &broker);
    let topic = support::unique("edgelens-contract");
    support::create_topic(&broker, &probe, &topic, 4).await;
    contract(&log, &topic, |n| support::read_topic_with_ids(&broker, &topic, 4, n)).await;
}

#[tokio::test]
async fn unreachable_broker_is_a_retryable_error_within_the_timeout() {
    // Nothing listens on port 1.
    let log = Arc::new(KafkaLog::new(&KafkaLogConfig { brokers: "127.0.0.1:1".into(), ack_timeout: Duration::from_secs(2), queue_max_messages: 1000, max_message_bytes: 1 << 20 }).unwrap());
    let started = std::time::Instant::now();
    let err = log.append("edge-requests", &batch(10)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "append hung for {:?}", started.elapsed());
}

/// Regression: an append to a topic the brokers do not have timed out as "no acknowledgement", and
/// the receiver answered 503 without saying the topic was missing (its `/readyz` did).
#[tokio::test]
async fn appending_to_a_topic_the_brokers_lack_names_it() {
    let broker = support::broker();
    let probe: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &broker).create().unwrap();
    support::assert_reachable(&probe, &broker);
    let log = KafkaLog::new(&KafkaLogConfig { brokers: broker, ack_timeout: Duration::from_secs(3), queue_max_messages: 1000, max_message_bytes: 1 << 20 }).unwrap();
    let topic = support::unique("edgelens-missing");
    let err = log.append(&topic, &batch(3)).await.unwrap_err();
    assert!(err.is_retryable(), "creating the topic makes a retry succeed: {err}");
    assert!(err.to_string().contains(&format!("the brokers do not have topic {topic}")), "{err}");
}
