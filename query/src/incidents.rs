//! `GET /v1/incidents` and `GET /v1/incidents/{id}`: the incidents list and one incident's report,
//! from the `incidents` and `incident_timeline` tables, on either backend.
//!
//! `incidents` holds one row per state change or update of an incident; its current state is the
//! row with the latest `updated_ts`. Both endpoints fetch the candidate rows with portable SQL and
//! keep the latest row per incident here, so the lake and ClickHouse answer identically. An
//! incident belongs to a range `[from, to)` when it overlaps it: it started before `to` and had
//! not ended before `from` (an incident that has not ended overlaps every later range).
//!
//! The report renders as JSON (the shapes below), CSV (the per-second timeline), Markdown and a
//! standalone HTML page whose timeline chart is inline SVG ([`crate::report`]).

use std::collections::HashMap;

use arrow::array::{Array, RecordBatch};
use serde::{Deserialize, Serialize};
use edgelens_schemas::tables::INCIDENT_VECTORS;

use crate::backend::{Dialect, View};
use crate::error::{QueryError, Result};
use crate::format::csv_text;
use crate::lake::{column_f64, column_i64, column_string, column_u64};
use crate::params::{TimeRange, rfc3339_us};

/// Default and largest number of incidents in one list answer.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// Incident states, as stored in `incidents.status`.
pub const STATUSES: [&str; 3] = ["active", "cooling", "ended"];

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentListRequest {
    pub range: TimeRange,
    /// Only incidents of these sites (all sites when `None`).
    pub sites: Option<Vec<String>>,
    pub status: Option<String>,
    pub vector: Option<String>,
    pub limit: usize,
}

/// One incident's current state (the list's rows and the head of a report). Timestamps RFC 3339
/// UTC; `end_ts` is null until the incident ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub incident_id: String,
    pub site: String,
    pub vector: String,
    pub status: String,
    pub start_ts: String,
    pub detected_ts: String,
    pub peak_ts: String,
    pub end_ts: Option<String>,
    pub updated_ts: String,
    pub peak_rps: f64,
    pub baseline_rps: f64,
    pub attack_requests: u64,
    pub distinct_ips: u64,
    /// Path of the incident's report.
    pub report: String,
}

/// The list answer: `{"from":..,"to":..,"total":N,"incidents":[...]}`, newest start first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentList {
    pub from: String,
    pub to: String,
    /// The incidents the request selects, before `limit`: more than `incidents` holds when the
    /// list was cut.
    pub total: usize,
    pub incidents: Vec<IncidentSummary>,
}

/// The current state with its signature and top attackers (JSON as stored, parsed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub summary: IncidentSummary,
    /// `{"predicates":[{"attr","op":"in","values":[..],"precision","coverage"}],"precision","coverage"}`.
    pub signature: serde_json::Value,
    /// `[{"ip":"203.0.113.7","requests":1234}]`, most requests first.
    pub top_attackers: serde_json::Value,
}

/// One second of an incident's site traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub ts: String,
    #[serde(skip)]
    pub ts_us: i64,
    pub requests: u64,
    /// Requests matching the incident's signature.
    pub matched_requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
}

/// The report answer: `{"incident":{...},"timeline":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentReport {
    pub incident: IncidentDetail,
    pub timeline: Vec<TimelinePoint>,
}

const SUMMARY_COLUMNS: &str = "incident_id, site, vector, status, peak_rps, baseline_rps, attack_requests, distinct_ips";
const TIME_COLUMNS: [&str; 5] = ["start_ts", "detected_ts", "peak_ts", "end_ts", "updated_ts"];

fn select_list(dialect: Dialect, detail: bool) -> String {
    let times: Vec<String> = TIME_COLUMNS.iter().map(|c| format!("{} AS {c}_us", dialect.epoch_us(c))).collect();
    let extra = if detail { ", signature, top_attackers" } else { "" };
    format!("{SUMMARY_COLUMNS}, {}{extra}", times.join(", "))
}

/// One `incidents` row as read: the summary, its `updated_ts` in microseconds, and when asked for,
/// the stored signature and top attackers JSON texts.
type StateRow = (IncidentSummary, i64, Option<(String, String)>);

/// Latest row per incident among `batches` (signature and top attackers read when `detail`), in
/// first-seen order of the incidents.
fn latest_rows(batches: &[RecordBatch], detail: bool) -> Result<Vec<StateRow>> {
    let mut out: Vec<StateRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for batch in batches {
        let id = column_string(batch, "incident_id")?;
        let site = column_string(batch, "site")?;
        let vector = column_string(batch, "vector")?;
        let status = column_string(batch, "status")?;
        let peak_rps = column_f64(batch, "peak_rps")?;
        let baseline_rps = column_f64(batch, "baseline_rps")?;
        let attack_requests = column_u64(batch, "attack_requests")?;
        let distinct_ips = column_u64(batch, "distinct_ips")?;
        let times: Vec<_> = TIME_COLUMNS.iter().map(|c| column_i64(batch, &format!("{c}_us"))).collect::<Result<_>>()?;
        let extra = if detail {
            Some((column_string(batch, "signature")?, column_string(batch, "top_attackers")?))
        } else {
            None
        };
        for row in 0..batch.num_rows() {
            let updated = times[4].value(row);
            let incident_id = id.value(row).to_owned();
            let slot = index.get(&incident_id).copied();
            // Rows of one update tie on `updated_ts` only when two detections wrote the same id
            // (separate replays of one site's traffic into one lake): the one with the most attack
            // requests, then IPs, then peak, whatever order the rows are read in.
            let rank = (updated, attack_requests.value(row), distinct_ips.value(row), peak_rps.value(row).to_bits());
            if let Some(i) = slot
                && (out[i].1, out[i].0.attack_requests, out[i].0.distinct_ips, out[i].0.peak_rps.to_bits()) >= rank
            {
                continue;
            }
            let t = |i: usize| rfc3339_us(times[i].value(row));
            let summary = IncidentSummary {
                report: format!("/v1/incidents/{}", percent_encode_path(&incident_id)),
                incident_id: incident_id.clone(),
                site: site.value(row).to_owned(),
                vector: vector.value(row).to_owned(),
                status: status.value(row).to_owned(),
                start_ts: t(0),
                detected_ts: t(1),
                peak_ts: t(2),
                end_ts: (!times[3].is_null(row)).then(|| t(3)),
                updated_ts: t(4),
                peak_rps: peak_rps.value(row),
                baseline_rps: baseline_rps.value(row),
                attack_requests: attack_requests.value(row),
                distinct_ips: distinct_ips.value(row),
            };
            let extra = extra.as_ref().map(|(s, a)| (s.value(row).to_owned(), a.value(row).to_owned()));
            match slot {
                Some(i) => out[i] = (summary, updated, extra),
                None => {
                    index.insert(incident_id, out.len());
                    out.push((summary, updated, extra));
                }
            }
        }
    }
    Ok(out)
}

/// The incidents overlapping the request's range, current states, newest start first.
pub async fn list(backend: View<'_>, req: &IncidentListRequest) -> Result<IncidentList> {
    let dialect = backend.dialect();
    let mut conditions = vec![format!("{} < {}", dialect.epoch_us("start_ts"), req.range.to_us)];
    if let Some(sites) = &req.sites {
        if sites.is_empty() {
            return Ok(IncidentList { from: req.range.from_rfc3339(), to: req.range.to_rfc3339(), total: 0, incidents: Vec::new() });
        }
        let list: Vec<String> = sites.iter().map(|s| dialect.string(s)).collect();
        conditions.push(format!("site IN ({})", list.join(", ")));
    }
    let sql = format!("SELECT {} FROM incidents WHERE {}", select_list(dialect, false), conditions.join(" AND "));
    let result = backend.query(&sql).await?;
    let mut incidents: Vec<IncidentSummary> = latest_rows(&result.batches, false)?
        .into_iter()
        .map(|(s, _, _)| s)
        .filter(|s| {
            // `end_ts` is exclusive (the second after the last anomalous one).
            let ended_before = s.end_ts.as_deref().is_some_and(|e| rfc3339_to_us(e) <= req.range.from_us);
            !ended_before
                && req.status.as_deref().is_none_or(|st| s.status == st)
                && req.vector.as_deref().is_none_or(|v| s.vector == v)
        })
        .collect();
    incidents.sort_by(|a, b| b.start_ts.cmp(&a.start_ts).then_with(|| a.incident_id.cmp(&b.incident_id)));
    let total = incidents.len();
    incidents.truncate(req.limit);
    Ok(IncidentList { from: req.range.from_rfc3339(), to: req.range.to_rfc3339(), total, incidents })
}

/// One incident's report; `None` when no incident has that id.
pub async fn report(backend: View<'_>, incident_id: &str) -> Result<Option<IncidentReport>> {
    let dialect = backend.dialect();
    let id = dialect.string(incident_id);
    let result = backend
        .query(&format!("SELECT {} FROM incidents WHERE incident_id = {id}", select_list(dialect, true)))
        .await?;
    let Some((summary, _, extra)) = latest_rows(&result.batches, true)?.into_iter().next() else {
        return Ok(None);
    };
    let (signature, top_attackers) = extra.unwrap_or_default();
    let parse = |name: &str, text: &str| -> Result<serde_json::Value> {
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(text)
            .map_err(|e| QueryError::Backend(format!("incident {incident_id}: stored {name} is not JSON: {e}")))
    };
    let incident = IncidentDetail {
        signature: parse("signature", &signature)?,
        top_attackers: parse("top_attackers", &top_attackers)?,
        summary,
    };
    let timeline_sql = format!(
        "SELECT {ts} AS ts_us, SUM(requests) AS requests, SUM(matched_requests) AS matched_requests, \
         SUM(status_2xx) AS status_2xx, SUM(status_3xx) AS status_3xx, SUM(status_4xx) AS status_4xx, \
         SUM(status_5xx) AS status_5xx FROM incident_timeline WHERE incident_id = {id} GROUP BY ts_us ORDER BY ts_us",
        ts = dialect.epoch_us("ts"),
    );
    let result = backend.query(&timeline_sql).await?;
    let mut timeline = Vec::new();
    for batch in &result.batches {
        let ts = column_i64(batch, "ts_us")?;
        let m: Vec<_> = ["requests", "matched_requests", "status_2xx", "status_3xx", "status_4xx", "status_5xx"]
            .iter()
            .map(|c| column_u64(batch, c))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            timeline.push(TimelinePoint {
                ts: rfc3339_us(ts.value(row)),
                ts_us: ts.value(row),
                requests: m[0].value(row),
                matched_requests: m[1].value(row),
                status_2xx: m[2].value(row),
                status_3xx: m[3].value(row),
                status_4xx: m[4].value(row),
                status_5xx: m[5].value(row),
            });
        }
    }
    Ok(Some(IncidentReport { incident, timeline }))
}

impl IncidentList {
    /// CSV: one row per incident, the summary's fields as columns ([`incidents_csv`]).
    pub fn to_csv(&self) -> String {
        incidents_csv(&self.incidents)
    }
}

/// CSV of incident summaries: one row per incident, the summary's fields as columns (the incident
/// list's CSV, and the entity report's `part=incidents`).
pub fn incidents_csv(incidents: &[IncidentSummary]) -> String {
    let mut out = String::from(
        "incident_id,site,vector,status,start_ts,detected_ts,peak_ts,end_ts,updated_ts,peak_rps,baseline_rps,attack_requests,distinct_ips\n",
    );
    for s in incidents {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_text(&s.incident_id),
            csv_text(&s.site),
            csv_text(&s.vector),
            csv_text(&s.status),
            s.start_ts,
            s.detected_ts,
            s.peak_ts,
            s.end_ts.as_deref().unwrap_or(""),
            s.updated_ts,
            s.peak_rps,
            s.baseline_rps,
            s.attack_requests,
            s.distinct_ips
        ));
    }
    out
}

impl IncidentReport {
    /// CSV: the per-second timeline.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("ts,requests,matched_requests,status_2xx,status_3xx,status_4xx,status_5xx\n");
        for p in &self.timeline {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                p.ts, p.requests, p.matched_requests, p.status_2xx, p.status_3xx, p.status_4xx, p.status_5xx
            ));
        }
        out
    }
}

pub(crate) fn rfc3339_to_us(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_micros()).unwrap_or(i64::MIN)
}

/// `s` as one URL path segment (incident ids are `<site>-<time>`; sites are host names, but a
/// site fallback may hold any text).
pub fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Validate the `status` and `limit` parameters of the list.
pub fn parse_status(s: Option<&str>) -> Result<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if STATUSES.contains(&s) => Ok(Some(s.to_owned())),
        Some(s) => Err(QueryError::InvalidParameter(format!("invalid status {s:?}: expected active, cooling or ended"))),
    }
}

/// Validate the `vector` parameter of the list (left out: any; empty, as any other unknown
/// vector, a 400).
pub fn parse_vector(s: Option<&str>) -> Result<Option<String>> {
    match s {
        None => Ok(None),
        Some(s) if INCIDENT_VECTORS.contains(&s) => Ok(Some(s.to_owned())),
        Some(s) => Err(QueryError::InvalidParameter(format!("invalid vector {s:?}: expected one of {}", INCIDENT_VECTORS.join(", ")))),
    }
}

pub fn parse_limit(s: Option<&str>) -> Result<usize> {
    match s {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(QueryError::InvalidParameter(format!("invalid limit {s:?}: expected 1 to {MAX_LIMIT}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(percent_encode_path("shop.example-20261101T001500Z"), "shop.example-20261101T001500Z");
        assert_eq!(percent_encode_path("a/b c"), "a%2Fb%20c");
    }

    /// Regression: two rows of one id tying on `updated_ts` (two replays of one site's traffic
    /// into one lake detecting the same attack) gave whichever was read first, so the same
    /// request answered differently from one call to the next.
    #[test]
    fn rows_tying_on_their_update_give_one_answer_in_any_order() {
        use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, UInt64Array};
        use std::sync::Arc;
        let row = |attack: u64, peak: f64| {
            let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
            let time = |v: Option<i64>| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
            let mut columns: Vec<(&str, ArrayRef)> = vec![
                ("incident_id", text("z.example-20261101T000200Z")),
                ("site", text("z.example")),
                ("vector", text("http_flood")),
                ("status", text("ended")),
                ("peak_rps", Arc::new(Float64Array::from(vec![peak]))),
                ("baseline_rps", Arc::new(Float64Array::from(vec![1.0]))),
                ("attack_requests", Arc::new(UInt64Array::from(vec![attack]))),
                ("distinct_ips", Arc::new(UInt64Array::from(vec![10u64]))),
            ];
            for (c, v) in [("start_ts_us", Some(1)), ("detected_ts_us", Some(2)), ("peak_ts_us", Some(3)), ("end_ts_us", Some(4)), ("updated_ts_us", Some(5))] {
                columns.push((c, time(v)));
            }
            RecordBatch::try_from_iter(columns).unwrap()
        };
        let (a, b) = (row(6016, 97.0), row(5983, 102.0));
        for batches in [[a.clone(), b.clone()], [b, a]] {
            let rows = latest_rows(&batches, false).unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!((rows[0].0.attack_requests, rows[0].0.peak_rps), (6016, 97.0));
        }
    }

    #[test]
    fn status_and_limit_are_validated() {
        assert_eq!(parse_status(Some("ended")).unwrap().as_deref(), Some("ended"));
        assert!(parse_status(Some("over")).is_err());
        assert_eq!(parse_vector(Some("scraping")).unwrap().as_deref(), Some("scraping"));
        assert_eq!(parse_vector(None).unwrap(), None);
        assert!(parse_vector(Some("")).is_err(), "empty, as an empty status, is a 400");
        let e = parse_vector(Some("bogus")).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains("http_flood, cache_busting"), "{e}");
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("5")).unwrap(), 5);
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("100000")).is_err());
    }
}
