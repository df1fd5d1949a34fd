//! Helpers of the tests against the real broker at `$EDGELENS_TEST_KAFKA`: never skipped, they
//! fail with how to start the broker when it is missing.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::time::{Instant, timeout};

pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

pub fn broker() -> String {
    match std::env::var("EDGELENS_TEST_KAFKA") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "EDGELENS_TEST_KAFKA is not set: this test needs a real Kafka-protocol broker. \
             Start one with `deploy/dev/kafka.sh start` and set EDGELENS_TEST_KAFKA=127.0.0.1:19092, \
             or run the tests through `deploy/dev/test.sh`."
        ),
    }
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Fails with a useful message if nothing answers at `broker`.
pub fn assert_reachable(producer: &FutureProducer, broker: &str) {
    if let Err(e) = producer.client().fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "Kafka broker at {broker} (EDGELENS_TEST_KAFKA) is unreachable: {e}. \
             Start it with `deploy/dev/kafka.sh start`, or run the tests through `deploy/dev/test.sh`."
        );
    }
}

pub async fn create_topic(broker: &str, producer: &FutureProducer, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker).create().expect("create admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = timeout(
        STEP_TIMEOUT,
        admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &options),
    )
    .await
    .expect("create_topics timed out")
    .expect("create_topics request failed");
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => panic!("creating topic {t}: {code:?}"),
        }
    }
    // Wait until the topic's partitions show up in metadata.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let md = producer.client().fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = md
            && md.topics().iter().any(|t| t.name() == topic && t.partitions().len() == partitions as usize)
        {
            return;
        }
        assert!(Instant::now() < deadline, "topic {topic} did not appear in metadata within {STEP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}


/// Every message of `topic` (all `partitions`, from the beginning) as (partition, key, value),
/// in partition then offset order; waits until `want` arrived (bounded by [`STEP_TIMEOUT`]).
pub fn read_topic(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    read_topic_with_ids(broker, topic, partitions, want).into_iter().map(|(p, k, v, _, _)| (p, k, v)).collect()
}

/// [`read_topic`], with each message's `edgelens-message-id` header and whether it has
/// `edgelens-resend`.
#[allow(dead_code)]
pub fn read_topic_with_ids(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<(i32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, bool)> {
    read_topic_counting(broker, topic, partitions, want, |_| 1)
}

/// Every message of an events topic, like [`read_topic`], waiting until the messages hold `want`
/// events, however they are packed.
#[allow(dead_code)]
pub fn read_event_messages(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    read_topic_counting(broker, topic, partitions, want, |v| edgelens_ingest::log::message_lines(v).count()).into_iter().map(|(p, k, v, _, _)| (p, k, v)).collect()
}

/// Messages of `topic` until `count` of their values adds up to `want`.
fn read_topic_counting(broker: &str, topic: &str, partitions: i32, want: usize, count: impl Fn(&[u8]) -> usize) -> Vec<(i32, Vec<u8>, Vec<u8>, Option<Vec<u8>>, bool)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", unique("edgelens-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut got = 0;
    let deadline = std::time::Instant::now() + STEP_TIMEOUT;
    while got < want {
        assert!(std::time::Instant::now() < deadline, "only {got} of {want} records of {topic} arrived within {STEP_TIMEOUT:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let value = m.payload().unwrap_or_default().to_vec();
            got += count(&value);
            let header = |name: &str| m.headers().and_then(|h| h.iter().find(|h| h.key == name)).map(|h| h.value.unwrap_or_default().to_vec());
            let (id, resend) = (header(edgelens_ingest::log::MESSAGE_ID_HEADER), header(edgelens_ingest::log::RESEND_HEADER).is_some());
            out.push((m.partition(), m.key().unwrap_or_default().to_vec(), value, m.offset(), id, resend));
        }
    }
    assert_eq!(got, want, "more than {want} records in {topic}");
    // Nothing beyond `want` within a short grace period.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        panic!("more than {want} messages in {topic}: also offset {} of partition {}", m.offset(), m.partition());
    }
    out.sort_by_key(|m| (m.0, m.3));
    out.into_iter().map(|(p, k, v, _, id, resend)| (p, k, v, id, resend)).collect()
}

/// Create `topics` (name, partitions) on `broker`, failing with how to start it when unreachable.
pub fn create_topics_blocking(broker: &str, topics: &[(&str, i32)]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let probe: FutureProducer = ClientConfig::new().set("bootstrap.servers", broker).create().unwrap();
        assert_reachable(&probe, broker);
        for (topic, partitions) in topics {
            create_topic(broker, &probe, topic, *partitions).await;
        }
    });
}

/// Per partition of `topic`: (group's committed offset or -1, end offset).
pub fn group_progress(broker: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    // Same group id, never subscribing: reads the group's offsets without joining it.
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker).set("group.id", group).create().expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    (0..partitions)
        .map(|p| {
            let c = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
            (c, high)
        })
        .collect()
}
