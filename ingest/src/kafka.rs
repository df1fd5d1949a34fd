//! [`EventLog`] on a Kafka-protocol broker through `rdkafka`.
//!
//! Producer settings favour "never lose, never block the receiver forever": idempotent producer
//! with `acks=all` (no duplicates from producer retries, no loss on leader change), lz4 batches
//! with a short linger, and a bounded local queue. [`KafkaLog::append`] enqueues a whole batch
//! without blocking (a full queue is [`LogError::QueueFull`] at once) and then waits for every
//! acknowledgement, up to `ack_timeout` ([`LogError::Unavailable`] after that).
//!
//! Delivery reports are served by a thread of the log's own that polls for a second at a time.
//! rdkafka's poll rounds the time left down to whole milliseconds and so spins through the last
//! millisecond of each poll: 0.1 % of a core this way, where `FutureProducer`'s 100 ms polls
//! cost 1 %, idle or not.
//!
//! After a broker outage the idempotent producer can fail fatally (e.g. `ProducerFenced` once
//! timed-out batches made it bump its epoch); a fatal producer never recovers, so the log then
//! replaces it with a new one — the batches it held were answered 503 and are sent again by their
//! clients.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

use crate::error::LogError;
use crate::log::{EventLog, Record, MESSAGE_ID_HEADER, RESEND_HEADER};

/// Settings of the producer.
#[derive(Debug, Clone)]
pub struct KafkaLogConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// How long a batch may wait for its acknowledgements.
    pub ack_timeout: Duration,
    /// Upper bound of messages in the local producer queue.
    pub queue_max_messages: u32,
    /// The largest message value produced (a packed message, or one line up to the line limit);
    /// the producer takes messages of that size ([`producer_max_message_bytes`]).
    pub max_message_bytes: usize,
}

/// `message.max.bytes` of a producer whose values reach `max_value` bytes: the value, its key and
/// the record's framing, and never below librdkafka's default (1,000,000).
pub fn producer_max_message_bytes(max_value: usize) -> usize {
    max_value.saturating_add(64 << 10).clamp(1_000_000, 1_000_000_000)
}

/// Checks a broker list as librdkafka takes it: `host[:port][,host[:port]…]` (port 9092 when none
/// is given; IPv6 in brackets, `[::1]:9092`; an optional `plaintext://` before each). An empty list
/// or entry, or a port that is not 1–65535, is refused here: librdkafka would take it and then fail
/// each connection attempt for as long as it was asked to wait.
pub fn check_brokers(list: &str) -> Result<(), String> {
    if list.trim().is_empty() {
        return Err("is empty: expected host:port[,host:port…]".into());
    }
    for entry in list.split(',').map(str::trim) {
        let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
        let (host, port) = match address.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((host, rest)) => (host, rest.strip_prefix(':')),
                None => ("", None),
            },
            None => match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("entry {entry:?} is not host:port"));
        }
        if let Some(port) = port
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!("entry {entry:?} has port {port:?}: expected 1-65535"));
        }
    }
    Ok(())
}

pub struct KafkaLog {
    cfg: KafkaLogConfig,
    /// The producer and its generation (bumped on each replacement).
    producer: std::sync::RwLock<(u64, Arc<Polled>)>,
    ack_timeout: Duration,
    /// Set while a failed append asks the brokers whether its topic exists (one at a time).
    asking_for_topic: AtomicBool,
}

/// Appends in a row without an answer after which, if the brokers answer a metadata request, the
/// producer is taken as stuck and replaced. A broker that lost its producer state (restarted on
/// storage that does not keep it) answers such a producer's every request with
/// `UnknownProducerId`, which librdkafka retries until the messages time out: no delivery error
/// ever said the producer was broken, and the receiver answered 503 for good.
const STALLED_APPENDS: u32 = 3;

/// The youngest a producer is replaced for being stalled: a broker that is only slow (overloaded,
/// electing leaders) costs at most one new producer per this time.
const STALLED_MIN_AGE: Duration = Duration::from_secs(30);

/// Each message carries the sender of its acknowledgement.
struct Acks;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), KafkaError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        // The appender may have given up waiting: nobody to tell then.
        let _ = ack.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// How long the delivery thread waits for reports in one poll.
const POLL_FOR: Duration = Duration::from_secs(1);

/// A producer and the thread serving its delivery reports; the thread ends within [`POLL_FOR`]
/// of the producer's last handle being dropped, and drops the producer then (unjoined: nothing
/// unacknowledged is lost with it, since every append waits for its acknowledgements).
struct Polled {
    producer: Arc<BaseProducer<Acks>>,
    stop: Arc<AtomicBool>,
    created: std::time::Instant,
    /// Appends in a row through this producer that got no answer in time.
    unanswered: std::sync::atomic::AtomicU32,
}

impl Polled {
    fn start(producer: BaseProducer<Acks>) -> Result<Self, LogError> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("kafka-acks".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.poll(POLL_FOR);
                }
            })
            .map_err(|e| LogError::Config(format!("starting the producer's delivery thread: {e}")))?;
        Ok(Self { producer, stop, created: std::time::Instant::now(), unanswered: std::sync::atomic::AtomicU32::new(0) })
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn create_producer(cfg: &KafkaLogConfig) -> Result<Polled, LogError> {
    let timeout_ms = cfg.ack_timeout.as_millis().max(1000).to_string();
    ClientConfig::new()
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
        // A valid line up to the line limit is one message; librdkafka's default (1,000,000)
        // is below the default limit (1 MiB), and such a line was refused on every retry.
        .set("message.max.bytes", producer_max_message_bytes(cfg.max_message_bytes).to_string())
        .create_with_context(Acks)
        .map_err(|e| LogError::Config(e.to_string()))
        .and_then(Polled::start)
}

impl KafkaLog {
    pub fn new(cfg: &KafkaLogConfig) -> Result<Self, LogError> {
        let producer = create_producer(cfg)?;
        Ok(Self {
            cfg: cfg.clone(),
            producer: std::sync::RwLock::new((0, Arc::new(producer))),
            ack_timeout: cfg.ack_timeout,
            asking_for_topic: AtomicBool::new(false),
        })
    }

    /// The reason of an append to `topic` that was not acknowledged, saying so when the brokers
    /// answer and do not have the topic (librdkafka waits for it until the messages time out).
    /// Asked by one failed append at a time; the others keep their reason.
    async fn name_missing_topic(&self, topic: &str, reason: String) -> String {
        if self.asking_for_topic.swap(true, Ordering::AcqRel) {
            return reason;
        }
        let (_, polled) = self.current();
        let name = topic.to_owned();
        let answer = tokio::task::spawn_blocking(move || missing_topics(&polled.producer, &[&name], Duration::from_secs(2))).await;
        self.asking_for_topic.store(false, Ordering::Release);
        match answer {
            Ok(Ok(missing)) if !missing.is_empty() => format!("the brokers do not have topic {topic}: create it, or fix the topic's name in the config ({reason})"),
            _ => reason,
        }
    }

    /// Topics of `topics` the brokers say they do not have, or the error of brokers that did not
    /// answer within `timeout`. Appends to such a topic wait for its creation and time out.
    pub fn missing_topics(&self, topics: &[&str], timeout: Duration) -> Result<Vec<String>, KafkaError> {
        missing_topics(&self.current().1.producer, topics, timeout)
    }

    fn current(&self) -> (u64, Arc<Polled>) {
        self.producer.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replace producer generation `generation` if it failed fatally or lost its producer
    /// identity (once, whoever notices first).
    fn replace_if_broken(&self, generation: u64, producer: &BaseProducer<Acks>, last: Option<RDKafkaErrorCode>) {
        let (code, reason) = match (producer.client().fatal_error(), last) {
            (Some(f), _) => f,
            (None, Some(c)) if breaks_producer(c) => (c, c.to_string()),
            _ => return,
        };
        self.replace(generation, &format!("{code:?}: {reason}"));
    }

    /// Replace producer generation `generation` (unless another caller did already).
    fn replace(&self, generation: u64, why: &str) {
        let mut slot = self.producer.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.0 != generation {
            return;
        }
        match create_producer(&self.cfg) {
            Ok(p) => {
                tracing::warn!(reason = %why, "Kafka producer replaced by a new one");
                let old = std::mem::replace(&mut *slot, (generation + 1, Arc::new(p))).1;
                // The old producer sends nothing more (what it still holds was not acknowledged,
                // so its batches are answered with an error and sent again through the new one).
                old.producer.purge(rdkafka::producer::PurgeConfig::default().queue());
            }
            Err(e) => tracing::error!(error = %e, "replacing the failed Kafka producer"),
        }
    }

    /// An append through producer `generation` got no answer in time: after [`STALLED_APPENDS`]
    /// in a row (through that producer, at least [`STALLED_MIN_AGE`] old), replace it if the
    /// brokers answer (a broker down is waited for instead).
    async fn replace_if_stalled(&self, generation: u64, polled: Arc<Polled>) {
        let n = polled.unanswered.fetch_add(1, Ordering::Relaxed) + 1;
        if n < STALLED_APPENDS || polled.created.elapsed() < STALLED_MIN_AGE || self.current().0 != generation {
            return;
        }
        let answers = tokio::task::spawn_blocking(move || polled.producer.client().fetch_metadata(None, Duration::from_secs(2)).is_ok()).await.unwrap_or(false);
        if answers {
            self.replace(generation, &format!("the brokers answer, but acknowledged none of the last {n} appends"));
        }
    }

    /// Wait until every queued message is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.current().1.producer.flush(timeout).map_err(classify)
    }
}

/// What a metadata answer says of one topic: the one judgement behind the readiness probe, the
/// start-up warning and the name of a missing topic in a 503.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TopicState {
    /// Known, with partitions.
    Known,
    /// Not there: not listed, unknown, or without partitions.
    Missing,
    /// Listed with another error (e.g. no leader yet): there, but not usable now.
    Unusable(String),
}

/// [`TopicState`] of a topic from its entry in a metadata answer: `None` when it is not listed,
/// else its partition count and error.
fn topic_state(entry: Option<(usize, Option<RDKafkaErrorCode>)>) -> TopicState {
    match entry {
        None | Some((_, Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic))) | Some((0, None)) => TopicState::Missing,
        Some((_, Some(e))) => TopicState::Unusable(e.to_string()),
        Some((_, None)) => TopicState::Known,
    }
}

/// The [`TopicState`] of `topic` in `md`.
fn state_in(md: &rdkafka::metadata::Metadata, topic: &str) -> TopicState {
    topic_state(md.topics().iter().find(|t| t.name() == topic).map(|t| (t.partitions().len(), t.error().map(RDKafkaErrorCode::from))))
}

/// Topics of `topics` the brokers, asked through `producer`, say they do not have.
fn missing_topics(producer: &BaseProducer<Acks>, topics: &[&str], timeout: Duration) -> Result<Vec<String>, KafkaError> {
    let mut missing = Vec::new();
    for topic in topics.iter().filter(|t| !t.is_empty()) {
        let md = producer.client().fetch_metadata(Some(topic), timeout)?;
        if state_in(&md, topic) == TopicState::Missing {
            missing.push((*topic).to_owned());
        }
    }
    Ok(missing)
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
        let (generation, polled) = self.current();
        let mut code = None;
        let res = append_with(&polled.producer, self.ack_timeout, topic, records, &mut code).await;
        match &res {
            Ok(()) => polled.unanswered.store(0, Ordering::Relaxed),
            Err(LogError::Unavailable(_)) if matches!(code, None | Some(RDKafkaErrorCode::MessageTimedOut)) => {
                self.replace_if_broken(generation, &polled.producer, code);
                self.replace_if_stalled(generation, polled).await;
            }
            Err(_) => self.replace_if_broken(generation, &polled.producer, code),
        }
        match res {
            Err(LogError::Unavailable(e)) => Err(LogError::Unavailable(self.name_missing_topic(topic, e).await)),
            res => res,
        }
    }

    /// The brokers answer a metadata request for `topic` within 2 s and know it. (A producer
    /// they answer but never acknowledge is replaced by the appends themselves.)
    async fn probe(&self, topic: &str) -> Result<(), LogError> {
        let (_, polled) = self.current();
        let topic = topic.to_owned();
        let answer = tokio::task::spawn_blocking(move || polled.producer.client().fetch_metadata(Some(&topic), Duration::from_secs(2)).map(|md| (md, topic)))
            .await
            .map_err(|e| LogError::Unavailable(format!("metadata request failed: {e}")))?;
        let (md, topic) = answer.map_err(|e| LogError::Unavailable(format!("the brokers did not answer: {e}")))?;
        match state_in(&md, &topic) {
            TopicState::Known => Ok(()),
            TopicState::Missing => Err(LogError::Rejected(format!("the brokers do not have topic {topic}"))),
            TopicState::Unusable(e) => Err(LogError::Unavailable(format!("topic {topic} is not usable now: {e}"))),
        }
    }
}

/// Errors after which an idempotent producer's identity is unusable: only a new producer helps.
fn breaks_producer(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::Fatal
    )
}

async fn append_with(producer: &BaseProducer<Acks>, ack_timeout: Duration, topic: &str, records: &[Record], code: &mut Option<RDKafkaErrorCode>) -> Result<(), LogError> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let (ack, delivery) = oneshot::channel();
        let mut rec = BaseRecord::with_opaque_to(topic, Box::new(ack)).key(&r.key[..]).payload(&r.value[..]);
        if let Some(id) = &r.id {
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header { key: MESSAGE_ID_HEADER, value: Some(&id[..]) });
            if r.resend {
                headers = headers.insert(Header { key: RESEND_HEADER, value: Some(&b"1"[..]) });
            }
            rec = rec.headers(headers);
        }
        match producer.send(rec) {
            Ok(()) => pending.push(delivery),
            // Already queued messages still go out; the caller retries the whole batch and
            // the aggregator drops the redelivered ones by their id.
            Err((e, _)) => {
                *code = e.rdkafka_error_code();
                return Err(classify(e));
            }
        }
    }
    let acks = async {
        for delivery in pending {
            match delivery.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err((e.rdkafka_error_code(), classify(e))),
                Err(_dropped) => return Err((None, LogError::Unavailable("producer shut down".into()))),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(ack_timeout, acks).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err((c, e))) => {
            *code = c;
            Err(e)
        }
        Err(_) => Err(LogError::Unavailable(format!("no acknowledgement from topic {topic} within {ack_timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_brokers, topic_state, RDKafkaErrorCode, TopicState};

    /// Regression: the readiness probe took a topic listed with a passing error (no leader yet)
    /// for one the brokers do not have, and the start-up warning and a 503's reason took a topic
    /// not listed at all for one they have; both judge by `topic_state` now.
    #[test]
    fn a_topic_is_known_missing_or_unusable_alike_for_every_caller() {
        assert_eq!(topic_state(Some((8, None))), TopicState::Known);
        for missing in [None, Some((0, None)), Some((0, Some(RDKafkaErrorCode::UnknownTopicOrPartition))), Some((1, Some(RDKafkaErrorCode::UnknownTopic)))] {
            assert_eq!(topic_state(missing), TopicState::Missing, "{missing:?}");
        }
        let TopicState::Unusable(why) = topic_state(Some((8, Some(RDKafkaErrorCode::LeaderNotAvailable)))) else { panic!("a topic without a leader is there") };
        assert!(why.contains("eader"), "{why}");
    }

    #[test]
    fn broker_lists_librdkafka_could_never_connect_with_are_refused() {
        for good in ["127.0.0.1:19092", "kafka-1:9092, kafka-2:9092", "localhost", "[::1]:9092", "plaintext://broker.example:9093"] {
            assert_eq!(check_brokers(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "is empty"),
            ("  ", "is empty"),
            ("127.0.0.1:99999", "port \"99999\""),
            ("127.0.0.1:0", "port \"0\""),
            ("127.0.0.1:", "port \"\""),
            ("a:9092,,b:9092", "entry \"\" is not host:port"),
            (":9092", "entry \":9092\" is not host:port"),
            ("[::1", "is not host:port"),
            ("host:port", "port \"port\""),
        ] {
            let err = check_brokers(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
