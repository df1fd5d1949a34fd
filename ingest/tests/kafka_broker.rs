//! Integration test against the real Kafka-protocol broker (tansu) at `$EDGELENS_TEST_KAFKA`.
//!
//! What the pipeline relies on, checked end to end through `rdkafka` (bundled librdkafka):
//! topic creation through the admin API, keyed produce with delivery acknowledgements, a consumer
//! group with manual synchronous offset commits, and a second member of the same group resuming
//! exactly at the committed offsets (no committed message is delivered again).
//!
//! Never skipped: without a broker the test fails and says how to start one
//! (`deploy/dev/kafka.sh start`, or run everything with `deploy/dev/test.sh`).
//! Every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::{Instant, timeout};

mod support;
use support::{assert_reachable, broker, create_topic, unique};

const PARTITIONS: i32 = 3;
/// Messages produced, consumed and committed by the first consumer.
const FIRST_BATCH: usize = 200;
/// Messages produced after the commit; the second consumer must see exactly these.
const SECOND_BATCH: usize = 20;
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn producer(broker: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("socket.timeout.ms", "10000")
        .create()
        .expect("create producer")
}

fn consumer(broker: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "10000")
        .set("socket.timeout.ms", "10000")
        .create()
        .expect("create consumer")
}

/// Produces `range` as keyed messages `key-i` → `value-i` and waits for every acknowledgement.
async fn produce(producer: &FutureProducer, topic: &str, range: std::ops::Range<usize>) {
    // Enqueue everything first (send_result does not wait), then collect the acknowledgements.
    let mut pending = Vec::new();
    for i in range {
        let key = format!("key-{i}");
        let payload = format!("value-{i}");
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        let delivery = producer.send_result(record).unwrap_or_else(|(e, _)| panic!("enqueue {key}: {e}"));
        pending.push((key, delivery));
    }
    let deadline = Instant::now() + STEP_TIMEOUT;
    for (key, delivery) in pending {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = timeout(left, delivery)
            .await
            .unwrap_or_else(|_| panic!("no delivery ack for {key} within {STEP_TIMEOUT:?}"))
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| panic!("delivery of {key} failed: {e}"));
        assert!((0..PARTITIONS).contains(&d.partition), "bad partition {}", d.partition);
        assert!(d.offset >= 0, "bad offset {}", d.offset);
    }
}

/// Receives until `want` messages arrived; returns key → (partition, offset, payload).
async fn receive(consumer: &StreamConsumer, want: usize) -> BTreeMap<String, (i32, i64, String)> {
    let mut got = BTreeMap::new();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match timeout(left, consumer.recv()).await {
            Ok(m) => m.expect("consumer error"),
            Err(_) => panic!("received {} of {want} messages within {STEP_TIMEOUT:?}", got.len()),
        };
        let key = String::from_utf8(msg.key().expect("message has a key").to_vec()).unwrap();
        let payload = String::from_utf8(msg.payload().expect("message has a payload").to_vec()).unwrap();
        let prev = got.insert(key.clone(), (msg.partition(), msg.offset(), payload));
        assert!(prev.is_none(), "message {key} delivered twice");
    }
    got
}

fn all_partitions(topic: &str) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    tpl
}

/// Sum of the group's committed offsets over the topic's partitions (unset = 0).
fn committed_total(consumer: &StreamConsumer, topic: &str) -> i64 {
    let committed =
        consumer.committed_offsets(all_partitions(topic), Duration::from_secs(10)).expect("committed_offsets");
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            Offset::Invalid => 0,
            other => panic!("unexpected committed offset {other:?} for partition {}", e.partition()),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_resumes_at_manually_committed_offsets() {
    let broker = broker();
    let producer = producer(&broker);
    assert_reachable(&producer, &broker);

    let topic = unique("edgelens-test-commits");
    let group = unique("edgelens-test-group");
    create_topic(&broker, &producer, &topic, PARTITIONS).await;

    produce(&producer, &topic, 0..FIRST_BATCH).await;

    // First member: read everything, then commit (synchronously) the offset after the last message
    // of each partition.
    {
        let c1 = consumer(&broker, &group);
        c1.subscribe(&[&topic]).expect("subscribe");
        let got = receive(&c1, FIRST_BATCH).await;
        let expected: BTreeSet<_> = (0..FIRST_BATCH).map(|i| format!("key-{i}")).collect();
        assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);
        for (key, (_, _, payload)) in &got {
            assert_eq!(payload, &key.replace("key-", "value-"));
        }
        let mut next = BTreeMap::<i32, i64>::new();
        for (p, o, _) in got.values() {
            let n = next.entry(*p).or_default();
            *n = (*n).max(o + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, n) in &next {
            tpl.add_partition_offset(&topic, *p, Offset::Offset(*n)).unwrap();
        }
        c1.commit(&tpl, CommitMode::Sync).expect("synchronous commit");
        assert_eq!(committed_total(&c1, &topic), FIRST_BATCH as i64, "committed offsets seen by the committer");
        c1.unsubscribe();
        // Dropping c1 closes it: it leaves the group so the next member gets all partitions.
    }

    // Second member of the same group: the committed offsets are visible to it, and it starts
    // after them — it sees only messages produced after the commit.
    let c2 = consumer(&broker, &group);
    assert_eq!(committed_total(&c2, &topic), FIRST_BATCH as i64, "committed offsets seen by a new member");
    produce(&producer, &topic, FIRST_BATCH..FIRST_BATCH + SECOND_BATCH).await;
    c2.subscribe(&[&topic]).expect("subscribe");
    let got = receive(&c2, SECOND_BATCH).await;
    let expected: BTreeSet<_> = (FIRST_BATCH..FIRST_BATCH + SECOND_BATCH).map(|i| format!("key-{i}")).collect();
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the second member must resume at the committed offsets"
    );
    // Nothing else arrives (in particular no already-committed message).
    if let Ok(extra) = timeout(Duration::from_secs(2), c2.recv()).await {
        let m = extra.expect("consumer error");
        panic!(
            "unexpected extra message key={:?} partition={} offset={}",
            m.key().map(String::from_utf8_lossy),
            m.partition(),
            m.offset()
        );
    }
    drop(c2);

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker).create().expect("create admin client");
    let _ = timeout(Duration::from_secs(10), admin.delete_topics(&[&topic], &AdminOptions::new())).await;
}
