//! The `incidents` Kafka topic: every incident row (each state change and update) as one JSON
//! message keyed by incident id, for alerting.
//!
//! Published after the lake and ClickHouse accepted the flush that carries the rows, through any
//! [`EventLog`] (the ingest crate's Kafka producer: idempotent, acks=all). Delivery is at least
//! once: an aggregator that crashes after publishing and before committing publishes the same
//! rows again when its successor redoes the span. The rows are deterministic, so consumers
//! deduplicate on `(incident_id, updated_ts, status)`.

use edgelens_ingest::log::{EventLog, Record};
use serde_json::{json, Value};

use crate::detect::IncidentRow;
use crate::error::SinkError;

/// Default topic name.
pub const INCIDENTS_TOPIC: &str = "incidents";

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The message of one incident row (the `incidents` columns, timestamps in RFC 3339, signature
/// and top attackers as JSON values).
pub fn incident_json(r: &IncidentRow) -> Value {
    json!({
        "incident_id": r.incident_id,
        "site": &*r.site,
        "vector": r.vector,
        "status": r.status,
        "start_ts": rfc3339(r.start_ts),
        "detected_ts": rfc3339(r.detected_ts),
        "peak_ts": rfc3339(r.peak_ts),
        "end_ts": r.end_ts.map(rfc3339),
        "updated_ts": rfc3339(r.updated_ts),
        "peak_rps": r.peak_rps,
        "baseline_rps": r.baseline_rps,
        "attack_requests": r.attack_requests,
        "distinct_ips": r.distinct_ips,
        "signature": serde_json::from_str::<Value>(&r.signature).unwrap_or(Value::Null),
        "top_attackers": serde_json::from_str::<Value>(&r.top_attackers).unwrap_or(Value::Null),
    })
}

/// Create `topic` (one partition) on the brokers unless it exists, so a fresh cluster needs no
/// manual step. Brokers that do not answer within a few seconds give a retryable error.
pub fn ensure_topic(brokers: &str, topic: &str) -> Result<(), SinkError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::types::RDKafkaErrorCode;
    let err = |m: String| SinkError::Alerts { message: format!("creating topic {topic}: {m}"), retryable: true };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| err(e.to_string()))?;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| err(e.to_string()))?;
    let options = AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(5))).request_timeout(Some(std::time::Duration::from_secs(5)));
    let results = rt
        .block_on(admin.create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &options))
        .map_err(|e| err(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                // Brokers that cannot do it yet may later; anything else (authorisation, an invalid
                // name) will not change by waiting.
                let retryable = matches!(
                    code,
                    RDKafkaErrorCode::OperationTimedOut
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::BrokerNotAvailable
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::NotController
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::BrokerTransportFailure
                );
                return Err(SinkError::Alerts { message: format!("creating topic {topic}: {code:?}"), retryable });
            }
        }
    }
    Ok(())
}

/// Publishes incident rows to a topic of an [`EventLog`], blocking the (synchronous) sink path on
/// its own small runtime.
pub struct IncidentTopic<L> {
    log: L,
    topic: String,
    rt: tokio::runtime::Runtime,
    pub published: u64,
}

impl<L: EventLog> IncidentTopic<L> {
    pub fn new(log: L, topic: impl Into<String>) -> Result<Self, SinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SinkError::Config(format!("incidents topic runtime: {e}")))?;
        Ok(Self { log, topic: topic.into(), rt, published: 0 })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publish `rows`; returns once the log acknowledged every one.
    pub fn publish(&mut self, rows: &[IncidentRow]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> =
            rows.iter().map(|r| Record { key: r.incident_id.as_bytes().to_vec(), value: incident_json(r).to_string().into_bytes(), id: None, resend: false }).collect();
        self.rt
            .block_on(self.log.append(&self.topic, &records))
            .map_err(|e| SinkError::Alerts { message: format!("topic {}: {e}", self.topic), retryable: e.is_retryable() })?;
        self.published += records.len() as u64;
        Ok(())
    }
}

impl<L> std::fmt::Debug for IncidentTopic<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentTopic").field("topic", &self.topic).field("published", &self.published).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use edgelens_ingest::error::LogError;
    use edgelens_ingest::log::MemoryLog;

    use super::*;

    fn row(status: &'static str) -> IncidentRow {
        IncidentRow {
            incident_id: "shop.example-20261101T000523Z".into(),
            site: Arc::from("shop.example"),
            vector: "http_flood",
            status,
            start_ts: 1_793_491_523_000_000_000,
            detected_ts: 1_793_491_527_000_000_000,
            peak_ts: 1_793_491_530_000_000_000,
            end_ts: None,
            peak_rps: 2000.0,
            baseline_rps: 100.0,
            attack_requests: 50_000,
            distinct_ips: 3000,
            signature: r#"{"predicates":[{"attr":"asn","op":"in","values":["64496"],"precision":1.0,"coverage":0.99}],"precision":1.0,"coverage":0.99}"#.into(),
            top_attackers: r#"[{"ip":"203.0.113.7","requests":90}]"#.into(),
            updated_ts: 1_793_491_527_000_000_000,
        }
    }

    #[test]
    fn publishes_one_json_message_per_row_keyed_by_incident() {
        let log = Arc::new(MemoryLog::new());
        let mut t = IncidentTopic::new(Arc::clone(&log), INCIDENTS_TOPIC).unwrap();
        t.publish(&[row("active"), row("cooling")]).unwrap();
        let recs = log.records(INCIDENTS_TOPIC);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, b"shop.example-20261101T000523Z");
        let v: Value = serde_json::from_slice(&recs[1].value).unwrap();
        assert_eq!(v["status"], "cooling");
        assert_eq!(v["start_ts"], "2026-11-01T00:05:23Z");
        assert_eq!(v["end_ts"], Value::Null);
        assert_eq!(v["signature"]["predicates"][0]["attr"], "asn");
        assert_eq!(v["top_attackers"][0]["ip"], "203.0.113.7");
        assert_eq!(t.published, 2);
    }

    #[test]
    fn a_failing_log_is_an_error_not_a_silent_drop() {
        let log = Arc::new(MemoryLog::new());
        log.fail_with(Some(LogError::Unavailable("broker down".into())));
        let mut t = IncidentTopic::new(Arc::clone(&log), INCIDENTS_TOPIC).unwrap();
        let e = t.publish(&[row("active")]).unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(log.records(INCIDENTS_TOPIC).is_empty());
    }
}
