//! `GET /v1/traffic-share`: each key's share of all requests per step.
//!
//! Aggregation runs in the backend (DataFusion over the lake, or ClickHouse), grouped by step start
//! and key, delta rows summed by the GROUP BY, the top N chosen by a subquery; only
//! `steps × (top + 1)` rows come back. The same SQL serves both backends, with the dialect's time
//! and cast expressions. Guarantees:
//! - a point's `share` is the key's requests over *all* requests in that step (every key, not only
//!   the top N), so the shares of all series of a step add up to 1 for `site|country|asn|colo`;
//! - the top N keys are those with the most requests over the whole range (ties by key); the rest
//!   are folded into one series with key [`OTHER_KEY`] and `"folded": true` (in JSON; a key really
//!   named "other" has no such field; in CSV the `folded` column), listed last and present only
//!   when non-empty;
//! - every series has a point for every step that has traffic (0 where the key had none); steps
//!   without any traffic have no point;
//! - `by=entity|tag` go through the many-to-many registry (`site_entities`, `site_tags`), valid at
//!   the row's time: a site counts fully toward each of its keys (so shares may add up to more than
//!   1), once toward the folded rest however many of its keys are folded (so no series' share
//!   exceeds 1), sites with no key count only in the total, and `min_confidence` filters entities.
//!   Without registry rows the request is refused (400).
//!
//! Sources: `site|country|colo` from `traffic_1m`, `asn` from `asn_1m` (keys are the ASN numbers as
//! text), `entity|tag` from `traffic_1m` joined with the registry.

use std::collections::{BTreeMap, HashMap};

use arrow::array::Array;
use serde::{Deserialize, Serialize};

use crate::error::{QueryError, Result};
use crate::format::csv_text;
use crate::backend::{Dialect, View};
use crate::lake::{column_i64, column_string, column_u64};
use crate::params::{ShareBy, Step, TimeRange, rfc3339_us};

/// The key of the series that folds every key outside the top N.
pub const OTHER_KEY: &str = "other";

/// Granularity of `traffic_1m` and `asn_1m`.
pub const GRANULARITY: Step = Step::MINUTE;

/// A validated traffic-share request.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficShareRequest {
    pub range: TimeRange,
    pub step: Step,
    pub by: ShareBy,
    pub top: usize,
    /// Only for `by=entity`: attributions below this confidence are ignored.
    pub min_confidence: f64,
}

/// The answer. JSON:
/// `{"by":"site","step":"1h","from":"..Z","to":"..Z","total":N,"series":[{"key":"shop.example",
/// "requests":N,"share":0.5,"points":[{"ts":"2026-11-01T00:00:00Z","requests":1234,"share":0.0123}]}]}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficShare {
    pub by: String,
    pub step: String,
    pub from: String,
    pub to: String,
    /// All requests in the range (every key).
    pub total: u64,
    pub series: Vec<ShareSeries>,
}

/// One key's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareSeries {
    pub key: String,
    /// True on the series folding the keys outside the top N (key [`OTHER_KEY`]), which a key
    /// really named "other" does not have: the two are told apart by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    /// The key's requests over the whole range.
    pub requests: u64,
    /// The key's share of all requests over the whole range.
    pub share: f64,
    pub points: Vec<SharePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharePoint {
    /// Start of the step, RFC 3339 UTC.
    pub ts: String,
    pub requests: u64,
    /// The key's requests over all requests of the step.
    pub share: f64,
}

impl TrafficShare {
    /// CSV `ts,key,requests,share,folded`, ordered by `ts`, then in series order; `folded` is
    /// `true` on the rows of the folded rest (key `other`), `false` on a key really named so.
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<(&str, usize, &SharePoint)> = Vec::new();
        for (i, series) in self.series.iter().enumerate() {
            rows.extend(series.points.iter().map(|p| (p.ts.as_str(), i, p)));
        }
        rows.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        let mut out = String::from("ts,key,requests,share,folded\n");
        for (ts, i, p) in rows {
            let series = &self.series[i];
            out.push_str(&format!("{ts},{},{},{},{}\n", csv_text(&series.key), p.requests, p.share, series.folded));
        }
        out
    }
}

/// Compute the traffic share. Fails with a user error when the step does not fit the table or the
/// registry needed by `by=entity|tag` is empty.
pub async fn traffic_share(backend: View<'_>, req: &TrafficShareRequest) -> Result<TrafficShare> {
    let dialect = backend.dialect();
    let source_table = if req.by == ShareBy::Asn { "asn_1m" } else { "traffic_1m" };
    req.step.check_granularity(GRANULARITY, source_table)?;
    let req = &TrafficShareRequest { range: req.range.covered_by_rows(GRANULARITY), ..req.clone() };
    req.range.check_steps(req.step)?;

    let mapped = matches!(req.by, ShareBy::Entity | ShareBy::Tag);
    if mapped {
        let registry = if req.by == ShareBy::Entity { "site_entities" } else { "site_tags" };
        // Whether anything is imported at all (a tenant without rows of its own gets an empty
        // answer, not this error).
        if !View::all(backend.backend()).has_rows(registry).await? {
            return Err(QueryError::InvalidParameter(format!(
                "registry not loaded: by={} needs rows in {registry}; import a registry with `edgelens registry import`",
                req.by.as_str()
            )));
        }
    }

    // (step start µs, top key or None for the rest, requests)
    let hosts = match req.by {
        ShareBy::Entity => crate::registry_api::hosts_of_sites(backend, &["site_entities"]).await?,
        ShareBy::Tag => crate::registry_api::hosts_of_sites(backend, &["site_tags"]).await?,
        _ => Vec::new(),
    };
    let sql = share_sql(req, source_table, dialect, &hosts);
    let mut cells: Vec<(i64, Option<String>, u64)> = Vec::new();
    for batch in backend.query(&sql).await?.batches {
        let (bucket, key, requests) =
            (column_i64(&batch, "bucket")?, column_string(&batch, "key")?, column_u64(&batch, "requests")?);
        for row in 0..batch.num_rows() {
            let key = (!key.is_null(row)).then(|| key.value(row).to_owned());
            cells.push((bucket.value(row), key, requests.value(row)));
        }
    }

    // Totals per step: every request of the step, counted once.
    let mut step_totals: BTreeMap<i64, u64> = BTreeMap::new();
    if mapped {
        let sql = format!(
            "SELECT bucket, SUM(requests) AS requests FROM \
             (SELECT {bucket} AS bucket, requests FROM traffic_1m WHERE {pred}) AS t GROUP BY bucket",
            bucket = dialect.step_start("ts", req.step),
            pred = dialect.range_predicate(&req.range, "ts"),
        );
        for batch in backend.query(&sql).await?.batches {
            let (bucket, requests) = (column_i64(&batch, "bucket")?, column_u64(&batch, "requests")?);
            for row in 0..batch.num_rows() {
                *step_totals.entry(bucket.value(row)).or_default() += requests.value(row);
            }
        }
    } else {
        for (bucket, _, requests) in &cells {
            *step_totals.entry(*bucket).or_default() += requests;
        }
    }
    step_totals.retain(|_, total| *total > 0);
    let total: u64 = step_totals.values().sum();

    let mut per_key: HashMap<Option<String>, (u64, HashMap<i64, u64>)> = HashMap::new();
    for (bucket, key, requests) in cells {
        let entry = per_key.entry(key).or_default();
        entry.0 += requests;
        *entry.1.entry(bucket).or_default() += requests;
    }
    let mut keys: Vec<(Option<String>, u64)> =
        per_key.iter().filter(|(_, (sum, _))| *sum > 0).map(|(k, (sum, _))| (k.clone(), *sum)).collect();
    // Top keys by requests (ties by key), the folded rest last.
    keys.sort_by(|a, b| a.0.is_none().cmp(&b.0.is_none()).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));

    let ratio = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
    let series = keys
        .into_iter()
        .map(|(key, requests)| {
            let by_bucket = &per_key[&key].1;
            let points = step_totals
                .iter()
                .map(|(bucket, step_total)| {
                    let r = by_bucket.get(bucket).copied().unwrap_or(0);
                    SharePoint { ts: rfc3339_us(*bucket), requests: r, share: ratio(r, *step_total) }
                })
                .collect();
            ShareSeries {
                folded: key.is_none(),
                key: key.unwrap_or_else(|| OTHER_KEY.to_owned()),
                requests,
                share: ratio(requests, total),
                points,
            }
        })
        .collect();

    Ok(TrafficShare {
        by: req.by.as_str().to_owned(),
        step: req.step.to_string(),
        from: req.range.from_rfc3339(),
        to: req.range.to_rfc3339(),
        total,
        series,
    })
}

/// SQL of `(bucket BIGINT, key VARCHAR, requests)`: requests per step of each of the top N keys
/// (by requests over the range, ties by key) and of the rest (`key` NULL).
///
/// For `site|country|colo|asn` every row has one key, so the rest is a plain sum. For
/// `entity|tag` a site may have several keys: the rest counts each site's minute once, however
/// many keys outside the top N it has (else overlapping keys would make its share exceed 1).
fn share_sql(req: &TrafficShareRequest, source_table: &str, dialect: Dialect, hosts: &[(String, String)]) -> String {
    let top = req.top;
    let bucket = dialect.step_start("ts", req.step);
    // `units`: (bucket, key, requests), plus (ts, site) for a mapped `by`, whose rest is counted
    // once per site and minute.
    let (units, keep) = match req.by {
        ShareBy::Site | ShareBy::Country | ShareBy::Colo | ShareBy::Asn => {
            let key = dialect.to_text(req.by.as_str());
            let pred = dialect.range_predicate(&req.range, "ts");
            let rows = format!("SELECT {bucket} AS bucket, {key} AS key, requests FROM {source_table} WHERE {pred}");
            (format!("SELECT bucket, key, SUM(requests) AS requests FROM ({rows}) AS r GROUP BY bucket, key"), "bucket")
        }
        ShareBy::Entity | ShareBy::Tag => {
            let rows = mapped_sql(req, dialect, hosts);
            (format!("SELECT {bucket} AS bucket, ts, site, key, requests FROM ({rows}) AS r"), "DISTINCT bucket, ts, site")
        }
    };
    match dialect {
        // DataFusion plans a join with the top keys; it cannot run `IN (subquery)` inside CASE.
        Dialect::DataFusion => format!(
            "WITH units AS ({units}), \
             top_keys AS (SELECT key AS top_key FROM units GROUP BY key ORDER BY SUM(requests) DESC, key ASC LIMIT {top}), \
             folded AS (SELECT {keep}, requests, top_key FROM units LEFT JOIN top_keys ON units.key = top_keys.top_key) \
             SELECT bucket, top_key AS key, SUM(requests) AS requests FROM folded GROUP BY bucket, top_key"
        ),
        // ClickHouse 18.16 has no table CTEs, and its LEFT JOIN fills defaults instead of NULLs.
        Dialect::ClickHouse => format!(
            "SELECT bucket, top_key AS key, SUM(requests) AS requests FROM ( \
               SELECT {keep}, requests, CASE WHEN key IN ( \
                 SELECT key FROM ({units}) AS u2 GROUP BY key ORDER BY SUM(requests) DESC, key ASC LIMIT {top} \
               ) THEN key ELSE NULL END AS top_key FROM ({units}) AS u1 \
             ) AS folded GROUP BY bucket, top_key"
        ),
    }
}

/// SQL of `(ts, site, key, requests)` for `by=entity|tag`: each minute's requests recorded under
/// a name (`site`) once per key of the registry valid at that minute for that name. A registry
/// row kept under a host name of `hosts` is valid for the host name and for its site (see
/// [`crate::registry_api::hosts_of_sites`]).
fn mapped_sql(req: &TrafficShareRequest, dialect: Dialect, hosts: &[(String, String)]) -> String {
    let pred = dialect.range_predicate(&req.range, "ts");
    let (table, key_column, confidence) = if req.by == ShareBy::Entity {
        ("site_entities", "entity", format!(" AND m.confidence >= {:?}", req.min_confidence))
    } else {
        ("site_tags", "tag", String::new())
    };
    let registry = if hosts.is_empty() {
        table.to_owned()
    } else {
        // The rows kept under host names once more, under their sites.
        let columns = if req.by == ShareBy::Entity { "entity, confidence" } else { "tag" };
        let names: Vec<String> = hosts.iter().map(|(h, _)| dialect.string(h)).collect();
        format!(
            "(SELECT {site} AS site, {columns}, valid_from, valid_to FROM \
             (SELECT site AS host, {columns}, valid_from, valid_to FROM {table} WHERE site IN ({names})) AS h \
             UNION ALL SELECT site, {columns}, valid_from, valid_to FROM {table})",
            site = crate::registry_api::site_of_host_sql(dialect, "host", hosts),
            names = names.join(", "),
        )
    };
    // Per (minute, name) first, then each key valid at that minute; DISTINCT keeps a name from
    // counting twice toward one key when the registry repeats an attribution.
    format!(
        "SELECT DISTINCT s.ts AS ts, s.site AS site, s.requests AS requests, m.{key_column} AS key \
         FROM (SELECT ts, site, SUM(requests) AS requests FROM traffic_1m WHERE {pred} GROUP BY ts, site) s \
         JOIN {registry} m ON s.site = m.site \
         WHERE s.ts >= m.valid_from AND (m.valid_to IS NULL OR s.ts < m.valid_to){confidence}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the CSV had no way to tell the folded rest from a key really named "other".
    #[test]
    fn csv_tells_the_folded_rest_from_a_key_named_other() {
        let series = |key: &str, folded: bool, requests: u64| ShareSeries {
            key: key.into(),
            folded,
            requests,
            share: requests as f64 / 10.0,
            points: vec![SharePoint { ts: "2026-11-01T00:00:00Z".into(), requests, share: requests as f64 / 10.0 }],
        };
        let share = TrafficShare {
            by: "site".into(),
            step: "1h".into(),
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-01T01:00:00Z".into(),
            total: 10,
            series: vec![series("other", false, 6), series(OTHER_KEY, true, 4)],
        };
        assert_eq!(
            share.to_csv(),
            "ts,key,requests,share,folded\n2026-11-01T00:00:00Z,other,6,0.6,false\n2026-11-01T00:00:00Z,other,4,0.4,true\n"
        );
    }
}
