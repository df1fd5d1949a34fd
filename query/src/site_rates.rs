//! `GET /v1/sites/{site}/rates`: one site's request-rate series from `site_rates_10s`.
//!
//! Aggregation runs in DataFusion: rows of the site in the range, delta rows included, summed per
//! step. A step without rows has no point. `rps` is the step's requests divided by the step length.
//! The site name travels as a query parameter, never spliced into SQL.

use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lake::{Lake, column_i64, column_u64};
use crate::params::{Step, TimeRange, rfc3339_us, step_start_sql};

/// Granularity of `site_rates_10s`.
pub const GRANULARITY: Step = Step::TEN_SECONDS;

/// Measures summed per step, in output order.
const MEASURES: [&str; 9] = [
    "requests",
    "bytes",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "cache_hits",
    "blocked",
    "distinct_clients",
];

/// A validated rates request.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRatesRequest {
    pub site: String,
    pub range: TimeRange,
    pub step: Step,
}

/// The answer. JSON: `{"site":"shop.example","step":"10s","from":"..Z","to":"..Z","points":[{"ts":
/// "2026-11-01T00:00:00Z","requests":120,"rps":12.0,"bytes":..,"status_2xx":..,"status_3xx":..,
/// "status_4xx":..,"status_5xx":..,"cache_hits":..,"blocked":..,"distinct_clients":..}]}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRates {
    pub site: String,
    pub step: String,
    pub from: String,
    pub to: String,
    pub points: Vec<RatePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatePoint {
    /// Start of the step, RFC 3339 UTC.
    pub ts: String,
    pub requests: u64,
    /// Requests per second over the step.
    pub rps: f64,
    pub bytes: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub cache_hits: u64,
    pub blocked: u64,
    /// Distinct clients over the whole step: the estimate of the union of its rows' sketches (a
    /// client seen in several 10-second windows counts once).
    pub distinct_clients: u64,
}

impl SiteRates {
    /// CSV with the points' fields as columns, `ts` first.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "ts,requests,rps,bytes,status_2xx,status_3xx,status_4xx,status_5xx,cache_hits,blocked,distinct_clients\n",
        );
        for p in &self.points {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                p.ts,
                p.requests,
                p.rps,
                p.bytes,
                p.status_2xx,
                p.status_3xx,
                p.status_4xx,
                p.status_5xx,
                p.cache_hits,
                p.blocked,
                p.distinct_clients
            ));
        }
        out
    }
}

/// Compute the rates series.
pub async fn site_rates(lake: &Lake, req: &SiteRatesRequest) -> Result<SiteRates> {
    req.step.check_granularity(GRANULARITY, "site_rates_10s")?;
    req.range.check_steps(req.step)?;
    // Distinct clients of a step: the union of its rows' sketches, not the sum of their estimates.
    let sums: Vec<String> = MEASURES
        .iter()
        .map(|m| if *m == "distinct_clients" { format!("{}(clients_sketch) AS {m}", crate::sketch_udf::NAME) } else { format!("SUM({m}) AS {m}") })
        .collect();
    let sql = format!(
        "SELECT bucket, {sums} FROM \
         (SELECT {bucket} AS bucket, * FROM site_rates_10s WHERE site = $1 AND {pred}) \
         GROUP BY bucket ORDER BY bucket",
        sums = sums.join(", "),
        bucket = step_start_sql("ts", req.step),
        pred = req.range.sql_predicate("ts"),
    );
    let result = lake.query(&sql, vec![ScalarValue::Utf8(Some(req.site.clone()))]).await?;
    let step_seconds = req.step.seconds() as f64;
    let mut points = Vec::new();
    for batch in &result.batches {
        let bucket = column_i64(batch, "bucket")?;
        let m: Vec<_> = MEASURES.iter().map(|name| column_u64(batch, name)).collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let v = |i: usize| m[i].value(row);
            points.push(RatePoint {
                ts: rfc3339_us(bucket.value(row)),
                requests: v(0),
                rps: v(0) as f64 / step_seconds,
                bytes: v(1),
                status_2xx: v(2),
                status_3xx: v(3),
                status_4xx: v(4),
                status_5xx: v(5),
                cache_hits: v(6),
                blocked: v(7),
                distinct_clients: v(8),
            });
        }
    }
    Ok(SiteRates {
        site: req.site.clone(),
        step: req.step.to_string(),
        from: req.range.from_rfc3339(),
        to: req.range.to_rfc3339(),
        points,
    })
}
