//! [`EventLog`] on a Kafka-protocol broker through `rdkafka`.
//!
//! Producer settings favour "never lose, never block the receiver forever": idempotent producer
//! with `acks=all` (no duplicates from producer retries, no loss on leader change), lz4 batches
//! with a short linger, and a bounded local queue. [`KafkaLog::append`] enqueues a whole batch
//! without blocking (a full queue is [`LogError::QueueFull`] at once) and then waits for every
//! acknowledgement, up to `ack_timeout` ([`LogError::Unavailable`] after that).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::error::LogError;
use crate::log::{EventLog, Record};

/// Settings of the producer.
#[derive(Debug, Clone)]
pub struct KafkaLogConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// How long a batch may wait for its acknowledgements.
    pub ack_timeout: Duration,
    /// Upper bound of messages in the local producer queue.
    pub queue_max_messages: u32,
}

pub struct KafkaLog {
    producer: FutureProducer,
    ack_timeout: Duration,
}

impl KafkaLog {
    pub fn new(cfg: &KafkaLogConfig) -> Result<Self, LogError> {
        let timeout_ms = cfg.ack_timeout.as_millis().max(1000).to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", cfg.queue_max_messages.to_string())
            .set("queue.buffering.max.kbytes", "1048576")
            // Give up on a message at the same time the batch's caller gives up on it.
            .set("message.timeout.ms", &timeout_ms)
            .set("partitioner", "murmur2_random")
            .create()
            .map_err(|e| LogError::Config(e.to_string()))?;
        Ok(Self { producer, ack_timeout: cfg.ack_timeout })
    }

    /// Wait until every queued message is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.producer.flush(timeout).map_err(classify)
    }
}

fn classify(e: KafkaError) -> LogError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => LogError::QueueFull,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed,
        ) => LogError::Rejected(e.to_string()),
        _ => LogError::Unavailable(e.to_string()),
    }
}

impl EventLog for KafkaLog {
    async fn append(&self, topic: &str, records: &[Record]) -> Result<(), LogError> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let rec = FutureRecord::to(topic).key(&r.key[..]).payload(&r.value[..]);
            match self.producer.send_result(rec) {
                Ok(delivery) => pending.push(delivery),
                // Already queued messages still go out; the caller retries the whole batch and
                // the aggregator drops the redelivered ones by RayID.
                Err((e, _)) => return Err(classify(e)),
            }
        }
        let acks = async {
            for delivery in pending {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(classify(e)),
                    Err(_canceled) => return Err(LogError::Unavailable("producer shut down".into())),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.ack_timeout, acks).await {
            Ok(r) => r,
            Err(_) => Err(LogError::Unavailable(format!("no acknowledgement within {:?}", self.ack_timeout))),
        }
    }
}
