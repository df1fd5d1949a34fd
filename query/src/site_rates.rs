//! `GET /v1/sites/{site}/rates`: one site's request-rate series from `site_rates_10s`.
//!
//! Aggregation runs in the backend: rows of the site in the range, delta rows included, summed per
//! step. A step without rows has no point. Steps lie on a grid from the unix epoch, so the first
//! and last may reach outside the range asked for: `rps` is the step's requests divided by the
//! seconds of the step inside the range (the range rounded to 10 s), so a step the range only
//! partly covers shows no false drop. For a range reaching the present, the range ends where the
//! newest closed 10 s window of any site does (the windows after it are still open).
//! The rows are those recorded under the name asked for. A host of a registered site
//! (`www.shop.example` of `shop.example`) has rows of its own only from before the site was
//! registered: since then its traffic is counted with the site's other hosts under the site, and
//! the answer names that site (`registered_site`), not its rows as the host's.
//! The site name is a quoted literal of the backend's dialect. Distinct clients of a step are the
//! union of its rows' sketches: merged by a UDF in DataFusion; ClickHouse cannot read the sketch
//! format, so there the step's sketches are fetched and merged here.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use serde::{Deserialize, Serialize};

use crate::backend::{Dialect, View};
use crate::error::{QueryError, Result};
use crate::lake::{column_i64, column_u64};
use crate::params::{Step, TimeRange, rfc3339_us};

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
    /// The registered site `site` is a host of, when it is one.
    pub registered_site: Option<String>,
    pub range: TimeRange,
    pub step: Step,
}

/// The answer. JSON: `{"site":"shop.example","registered_site":null,"step":"10s","from":"..Z","to":"..Z","points":[{"ts":
/// "2026-11-01T00:00:00Z","requests":120,"rps":12.0,"bytes":..,"status_2xx":..,"status_3xx":..,
/// "status_4xx":..,"status_5xx":..,"cache_hits":..,"blocked":..,"distinct_clients":..}]}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRates {
    pub site: String,
    /// The registered site `site` is a host of (`www.shop.example` → `shop.example`): since its
    /// registration the host's traffic is counted under it, with its other hosts', so the points
    /// are the host's from before; `null` for any other name.
    pub registered_site: Option<String>,
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
    /// Requests per second over the part of the step inside the range.
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

/// Per step start: the estimate of the union of the sketches of `rows`' rows.
async fn merged_sketches(backend: View<'_>, rows: &str) -> Result<BTreeMap<i64, u64>> {
    let result = backend.query(&format!("SELECT bucket, clients_sketch FROM ({rows}) AS r")).await?;
    let mut unions: BTreeMap<i64, edgelens_schemas::sketch::SketchUnion> = BTreeMap::new();
    for batch in &result.batches {
        let bucket = column_i64(batch, "bucket")?;
        let sketch = arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Binary)?;
        let sketch = sketch.as_binary::<i32>();
        for row in 0..batch.num_rows() {
            if !sketch.is_null(row) {
                unions
                    .entry(bucket.value(row))
                    .or_default()
                    .add_bytes(sketch.value(row))
                    .map_err(|e| crate::error::QueryError::Backend(format!("site_rates_10s sketch: {e}")))?;
            }
        }
    }
    Ok(unions.into_iter().map(|(b, u)| (b, u.to_sketch().estimate_u64())).collect())
}

/// How far back from now a range's end may be for its newest step to be divided only by the
/// seconds whose windows are closed (an aggregator's usual delay, with room).
const LIVE_EDGE_US: i64 = 600 * 1_000_000;

/// For a range reaching the present, the end of the range as far as its windows are closed: the range's end, or, when the newest
/// 10 s window of any site within the range's last step ends before it (the windows of the
/// present are still open), that window's end. Without it, the newest step of a range reaching
/// the present was divided by seconds not counted yet: a false drop of its `rps`. All sites'
/// newest window, not the site's own: a site without requests in its last windows had none.
async fn closed_until(backend: View<'_>, range: &TimeRange, step_us: i64) -> Result<i64> {
    // Only a range reaching into the last 10 minutes: the end of older data is the end of its
    // traffic, not windows still open.
    if range.to_us < crate::api::now_us() - LIVE_EDGE_US {
        return Ok(range.to_us);
    }
    let last = TimeRange { from_us: range.from_us.max(range.to_us - step_us), to_us: range.to_us };
    let dialect = backend.dialect();
    let sql = format!("SELECT MAX({}) AS newest FROM site_rates_10s WHERE {}", dialect.epoch_us("ts"), dialect.range_predicate(&last, "ts"));
    let result = match backend.query(&sql).await {
        Ok(r) => r,
        Err(QueryError::NoSchema(_)) => return Ok(range.to_us),
        Err(e) => return Err(e),
    };
    let newest = result.batches.iter().filter(|b| b.num_rows() > 0).find_map(|b| column_i64(b, "newest").ok().filter(|c| !c.is_null(0)).map(|c| c.value(0)));
    // ClickHouse answers its zero time for no rows: outside the last step, so not taken.
    Ok(match newest {
        Some(n) if n >= last.from_us => range.to_us.min(n + GRANULARITY.seconds() as i64 * 1_000_000),
        _ => range.to_us,
    })
}

/// Compute the rates series.
pub async fn site_rates(backend: View<'_>, req: &SiteRatesRequest) -> Result<SiteRates> {
    req.step.check_granularity(GRANULARITY, "site_rates_10s")?;
    let req = &SiteRatesRequest { range: req.range.covered_by_rows(GRANULARITY), ..req.clone() };
    req.range.check_steps(req.step)?;
    let dialect = backend.dialect();
    let rows = format!(
        "SELECT {bucket} AS bucket, * FROM site_rates_10s WHERE site = {site} AND {pred}",
        bucket = dialect.step_start("ts", req.step),
        site = dialect.string(&req.site),
        pred = dialect.range_predicate(&req.range, "ts"),
    );
    // Distinct clients of a step: the union of its rows' sketches, not the sum of their estimates.
    let sums: Vec<String> = MEASURES
        .iter()
        .map(|m| match (*m, dialect) {
            ("distinct_clients", Dialect::DataFusion) => format!("{}(clients_sketch) AS {m}", crate::sketch_udf::NAME),
            ("distinct_clients", Dialect::ClickHouse) => format!("toUInt64(0) AS {m}"),
            _ => format!("SUM({m}) AS {m}"),
        })
        .collect();
    let sql = format!("SELECT bucket, {sums} FROM ({rows}) AS r GROUP BY bucket ORDER BY bucket", sums = sums.join(", "));
    let result = backend.query(&sql).await?;
    let distinct = match dialect {
        Dialect::DataFusion => None,
        Dialect::ClickHouse => Some(merged_sketches(backend, &rows).await?),
    };
    let step_us = req.step.seconds() as i64 * 1_000_000;
    let from_us = req.range.from_us;
    let to_us = closed_until(backend, &req.range, step_us).await?;
    // The seconds of the step starting at `start` that are inside the range.
    let covered = |start: i64| ((start + step_us).min(to_us) - start.max(from_us)).max(1) as f64 / 1e6;
    let mut points = Vec::new();
    for batch in &result.batches {
        let bucket = column_i64(batch, "bucket")?;
        let m: Vec<_> = MEASURES.iter().map(|name| column_u64(batch, name)).collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let v = |i: usize| m[i].value(row);
            points.push(RatePoint {
                ts: rfc3339_us(bucket.value(row)),
                requests: v(0),
                rps: v(0) as f64 / covered(bucket.value(row)),
                bytes: v(1),
                status_2xx: v(2),
                status_3xx: v(3),
                status_4xx: v(4),
                status_5xx: v(5),
                cache_hits: v(6),
                blocked: v(7),
                // Never more clients than requests (the sketches' estimate can be a little above).
                distinct_clients: distinct.as_ref().map_or(v(8), |d| d.get(&bucket.value(row)).copied().unwrap_or(0)).min(v(0)),
            });
        }
    }
    Ok(SiteRates {
        site: req.site.clone(),
        registered_site: req.registered_site.clone(),
        step: req.step.to_string(),
        from: req.range.from_rfc3339(),
        to: req.range.to_rfc3339(),
        points,
    })
}
