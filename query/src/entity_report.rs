//! `GET /v1/reports/entities/{entity}`: the compliance report of one entity (organisation) over a
//! range: the sites attributed to it with each attribution's provenance (source, confidence,
//! validity), their traffic and share of all traffic per step and over the range, and the
//! incidents mitigated on those sites while they were attributed, with links to their reports.
//!
//! Semantics, the same as traffic share `by=entity`: a site's traffic counts toward the entity
//! for each minute at which an attribution of at least `min_confidence` was valid (the mapping
//! valid at the time of the traffic, not today's), fully and once however many attributions
//! overlap. Each attribution row is listed with the requests of its own validity. Shares are of
//! all requests of the step / range (of the caller's view: a tenant's own traffic).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::backend::View;
use crate::error::{QueryError, Result};
use crate::format::csv_text;
use crate::incidents::{self, IncidentList, IncidentListRequest, IncidentSummary, rfc3339_to_us};
use crate::lake::{column_f64, column_i64, column_string, column_u64};
use crate::params::{Step, TimeRange, rfc3339_us};

/// A validated report request.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityReportRequest {
    pub entity: String,
    pub range: TimeRange,
    pub step: Step,
    pub min_confidence: f64,
}

/// One attribution of a site to the entity, with the site's traffic while it held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub site: String,
    pub source: String,
    pub confidence: f64,
    pub valid_from: String,
    /// Null while the attribution holds.
    pub valid_to: Option<String>,
    /// The site's requests in the range while this attribution held.
    pub requests: u64,
    /// Those requests over all requests of the range.
    pub share: f64,
    /// The host name the attribution was imported under, when it counts for this site because
    /// the host is one of the site's (the `site_entities` row names the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributed_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportPoint {
    pub ts: String,
    /// The entity's requests in the step.
    pub requests: u64,
    /// Over all requests of the step.
    pub share: f64,
}

/// The report. JSON: `{"entity","from","to","step","min_confidence","requests","total_requests",
/// "share","sites":[...],"series":[...],"incidents":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityReport {
    pub entity: String,
    pub from: String,
    pub to: String,
    pub step: String,
    pub min_confidence: f64,
    /// The entity's requests over the range.
    pub requests: u64,
    /// All requests over the range.
    pub total_requests: u64,
    pub share: f64,
    pub sites: Vec<Attribution>,
    pub series: Vec<ReportPoint>,
    /// Incidents on the entity's sites that were under way at some time the site was attributed
    /// to it (as the traffic counts the requests made while it was).
    pub incidents: Vec<IncidentSummary>,
}

#[derive(Clone)]
struct Mapping {
    site: String,
    source: String,
    confidence: f64,
    from_us: i64,
    to_us: Option<i64>,
    /// The host name the attribution is kept under, when it counts for its registered site.
    via: Option<String>,
}

impl Mapping {
    fn holds_at(&self, us: i64) -> bool {
        us >= self.from_us && self.to_us.is_none_or(|t| us < t)
    }

    /// Whether it counts what is recorded under `name`: its site's, and when kept under a host
    /// name, that host name's (recorded before the site was registered).
    fn counts(&self, name: &str) -> bool {
        self.site == name || self.via.as_deref() == Some(name)
    }

    /// The attribution holds at some time in `[start, end)` (`end`: `None` while under way).
    fn overlaps(&self, start: i64, end: Option<i64>) -> bool {
        spans_overlap((self.from_us, self.to_us), (start, end))
    }
}

/// Whether two half-open spans `[from, to)` (`to`: `None` while open) share a time. An incident's
/// `end_ts` is the second after its last one.
fn spans_overlap(a: (i64, Option<i64>), b: (i64, Option<i64>)) -> bool {
    b.1.is_none_or(|e| e > a.0) && a.1.is_none_or(|t| b.0 < t)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The entity's attributions of at least `min_confidence` overlapping `range`, by site and start.
/// Rows kept under a host name of a registered site are the site's, with the host name in `via`.
/// A withdrawn row (`valid_to` = `valid_from`) held at no time: it is none.
async fn attributions(view: View<'_>, entity: &str, range: &TimeRange, min_confidence: f64) -> Result<Vec<Mapping>> {
    let d = view.dialect();
    let (from, to) = (range.from_us, range.to_us);
    let sql = format!(
        "SELECT DISTINCT site, source, confidence, {vf} AS from_us, {vt} AS to_us FROM site_entities \
         WHERE entity = {entity} AND confidence >= {conf:?} AND {vf} < {to} AND ({vt} IS NULL OR ({vt} > {from} AND {vt} > {vf}))",
        vf = d.epoch_us("valid_from"),
        vt = d.epoch_us("valid_to"),
        entity = d.string(entity),
        conf = min_confidence,
    );
    let mut mappings = Vec::new();
    for b in view.query(&sql).await?.batches {
        let (site, source, conf, vf, vt) = (
            column_string(&b, "site")?,
            column_string(&b, "source")?,
            column_f64(&b, "confidence")?,
            column_i64(&b, "from_us")?,
            column_i64(&b, "to_us")?,
        );
        for i in 0..b.num_rows() {
            use arrow::array::Array;
            mappings.push(Mapping {
                site: site.value(i).to_owned(),
                source: source.value(i).to_owned(),
                confidence: conf.value(i),
                from_us: vf.value(i),
                to_us: (!vt.is_null(i)).then(|| vt.value(i)),
                via: None,
            });
        }
    }
    // An attribution kept under a host name of a site registered since (imported before the site
    // was registered) is the site's, and still the host name's.
    let hosts = crate::registry_api::hosts_of_sites(view, &["site_entities"]).await?;
    for m in &mut mappings {
        if let Ok(i) = hosts.binary_search_by(|(h, _)| h.as_str().cmp(&m.site)) {
            m.via = Some(std::mem::replace(&mut m.site, hosts[i].1.clone()));
        }
    }
    // A site attributed both directly and through a host name with the same period, source and
    // confidence: once, as the one through the host name (which counts the host name's traffic
    // too). Attributions that differ in any of these are listed each (their traffic is counted
    // once: see the series).
    mappings.sort_by(|a, b| {
        (&a.site, a.from_us, &a.source, a.to_us.is_none(), a.to_us)
            .cmp(&(&b.site, b.from_us, &b.source, b.to_us.is_none(), b.to_us))
            .then(a.confidence.total_cmp(&b.confidence))
            .then(b.via.is_some().cmp(&a.via.is_some()))
    });
    mappings.dedup_by(|later, first| {
        (&later.site, later.from_us, &later.source, later.to_us) == (&first.site, first.from_us, &first.source, first.to_us) && later.confidence == first.confidence
    });
    Ok(mappings)
}

/// The names the traffic and incidents `mappings` count are recorded under: their sites, and the
/// host names of those kept under one.
fn recorded_names(mappings: &[Mapping]) -> BTreeSet<String> {
    mappings.iter().flat_map(|m| std::iter::once(m.site.clone()).chain(m.via.clone())).collect()
}

/// The incidents `req` selects (status, vector, sites; not cut to its limit) among those recorded
/// under a name an attribution counts ([`Mapping::counts`]) that were under way at some time it
/// held.
async fn incidents_of(view: View<'_>, mappings: &[Mapping], req: &IncidentListRequest) -> Result<Vec<IncidentSummary>> {
    let recorded: Vec<String> =
        recorded_names(mappings).into_iter().filter(|s| req.sites.as_ref().is_none_or(|only| only.contains(s))).collect();
    // Every incident of those sites: cutting the list here would cut the count of the entity's.
    let all = IncidentListRequest { sites: Some(recorded), limit: usize::MAX, ..req.clone() };
    let out: Vec<IncidentSummary> = incidents::list(view, &all)
        .await?
        .incidents
        .into_iter()
        .filter(|i| {
            let start = rfc3339_to_us(&i.start_ts);
            let end = i.end_ts.as_deref().map(rfc3339_to_us);
            mappings.iter().any(|m| m.counts(&i.site) && m.overlaps(start, end))
        })
        .collect();
    Ok(out)
}

/// `GET /v1/incidents?entity=`: the incidents `req` selects against an entity's sites (see
/// [`incidents_of`]).
pub async fn entity_incidents(
    view: View<'_>,
    entity: &str,
    min_confidence: f64,
    req: &IncidentListRequest,
) -> Result<IncidentList> {
    let mappings = attributions(view, entity, &req.range, min_confidence).await?;
    if mappings.is_empty() {
        ensure_known(view, entity).await?;
    }
    let mut incidents = incidents_of(view, &mappings, req).await?;
    let total = incidents.len();
    incidents.truncate(req.limit);
    Ok(IncidentList { from: req.range.from_rfc3339(), to: req.range.to_rfc3339(), total, incidents })
}

/// 404 for an entity the registry attributes no site to at any time: a mistyped name would
/// otherwise read as an entity without traffic or incidents.
async fn ensure_known(view: View<'_>, entity: &str) -> Result<()> {
    let sql = format!("SELECT site FROM site_entities WHERE entity = {} LIMIT 1", view.dialect().string(entity));
    if view.query(&sql).await?.batches.iter().any(|b| b.num_rows() > 0) {
        return Ok(());
    }
    Err(QueryError::NotFound(format!("no site is attributed to the entity {entity:?} in the registry (names are matched exactly)")))
}

/// Build the report.
pub async fn entity_report(view: View<'_>, req: &EntityReportRequest) -> Result<EntityReport> {
    req.step.check_granularity(crate::traffic_share::GRANULARITY, "traffic_1m")?;
    // Incidents (kept to the second) are those of the range asked for, as `/v1/incidents?entity=`
    // lists them; the attributions those that held at some time of it.
    let asked = req.range;
    // The minute rows selected cover the range rounded up to minutes: the report states that.
    let req = &EntityReportRequest { range: req.range.covered_by_rows(crate::traffic_share::GRANULARITY), ..req.clone() };
    req.range.check_steps(req.step)?;
    let d = view.dialect();
    let mappings = &attributions(view, &req.entity, &asked, req.min_confidence).await?;
    if mappings.is_empty() {
        ensure_known(view, &req.entity).await?;
    }
    let bucket_of = |us: i64| us.div_euclid(req.step.micros()) * req.step.micros();

    // All requests per step.
    let mut totals: BTreeMap<i64, u64> = BTreeMap::new();
    let sql = format!(
        "SELECT {bucket} AS bucket, SUM(requests) AS requests FROM traffic_1m WHERE {pred} GROUP BY bucket",
        bucket = d.step_start("ts", req.step),
        pred = d.range_predicate(&req.range, "ts"),
    );
    for b in view.query(&sql).await?.batches {
        let (bucket, n) = (column_i64(&b, "bucket")?, column_u64(&b, "requests")?);
        for i in 0..b.num_rows() {
            *totals.entry(bucket.value(i)).or_default() += n.value(i);
        }
    }
    let total_requests: u64 = totals.values().sum();

    // The traffic of the names the attributions count per minute, attributed by the mappings
    // holding at that minute.
    let mut per_mapping = vec![0u64; mappings.len()];
    let mut series: BTreeMap<i64, u64> = BTreeMap::new();
    if !mappings.is_empty() {
        let list: Vec<String> = recorded_names(mappings).iter().map(|s| d.string(s)).collect();
        let sql = format!(
            "SELECT {t} AS t, site, SUM(requests) AS requests FROM traffic_1m WHERE {pred} AND site IN ({list}) GROUP BY t, site",
            t = d.epoch_us("ts"),
            pred = d.range_predicate(&req.range, "ts"),
            list = list.join(", "),
        );
        for b in view.query(&sql).await?.batches {
            let (t, site, n) = (column_i64(&b, "t")?, column_string(&b, "site")?, column_u64(&b, "requests")?);
            for i in 0..b.num_rows() {
                let (t, name, n) = (t.value(i), site.value(i), n.value(i));
                let mut counted = false;
                for (k, m) in mappings.iter().enumerate() {
                    if m.counts(name) && m.holds_at(t) {
                        per_mapping[k] += n;
                        counted = true;
                    }
                }
                if counted {
                    *series.entry(bucket_of(t)).or_default() += n;
                }
            }
        }
    }
    let requests: u64 = series.values().sum();

    let every = IncidentListRequest { range: asked, sites: None, status: None, vector: None, limit: usize::MAX };
    let incidents = incidents_of(view, mappings, &every).await?;

    Ok(EntityReport {
        entity: req.entity.clone(),
        from: req.range.from_rfc3339(),
        to: req.range.to_rfc3339(),
        step: req.step.to_string(),
        min_confidence: req.min_confidence,
        requests,
        total_requests,
        share: ratio(requests, total_requests),
        sites: mappings
            .iter()
            .zip(&per_mapping)
            .map(|(m, &n)| Attribution {
                site: m.site.clone(),
                source: m.source.clone(),
                confidence: m.confidence,
                valid_from: rfc3339_us(m.from_us),
                valid_to: m.to_us.map(rfc3339_us),
                requests: n,
                share: ratio(n, total_requests),
                attributed_as: m.via.clone(),
            })
            .collect(),
        series: totals
            .iter()
            .map(|(&b, &all)| {
                let n = series.get(&b).copied().unwrap_or(0);
                ReportPoint { ts: rfc3339_us(b), requests: n, share: ratio(n, all) }
            })
            .collect(),
        incidents,
    })
}

impl EntityReport {
    /// Said under the sites' table when their requests add up to more than the entity's: a site
    /// with attributions that overlap in time counts in each row, and once in the total.
    pub fn overlap_note(&self) -> Option<String> {
        let rows: u64 = self.sites.iter().map(|a| a.requests).sum();
        (rows > self.requests).then(|| {
            format!(
                "The rows add up to {rows} requests, more than the entity's {}: a site's requests count in each of its attributions that held at the time, and once in the total.",
                self.requests
            )
        })
    }

    /// CSV: one row per attribution with its traffic, the incidents of its site while it held,
    /// and the host name it was imported under when that is not the site.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("site,source,confidence,valid_from,valid_to,requests,share,incidents,attributed_as\n");
        for a in &self.sites {
            let n = self.incidents_during(a);
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{n},{}\n",
                csv_text(&a.site),
                csv_text(&a.source),
                a.confidence,
                a.valid_from,
                a.valid_to.as_deref().unwrap_or(""),
                a.requests,
                a.share,
                csv_text(a.attributed_as.as_deref().unwrap_or(""))
            ));
        }
        out
    }

    /// CSV of the entity's traffic per step (`part=series`): `ts,requests,share`, as the JSON's
    /// `series`.
    pub fn series_csv(&self) -> String {
        let mut out = String::from("ts,requests,share\n");
        for p in &self.series {
            out.push_str(&format!("{},{},{}\n", p.ts, p.requests, p.share));
        }
        out
    }

    /// The report's incidents `a` counts — recorded under its site, or under the host name it was
    /// imported under — that overlap the time `a` held (an incident counts once per attribution it
    /// falls in, not once per attribution row of its site).
    pub fn incidents_during(&self, a: &Attribution) -> usize {
        let held = (rfc3339_to_us(&a.valid_from), a.valid_to.as_deref().map(rfc3339_to_us));
        self.incidents
            .iter()
            .filter(|i| i.site == a.site || a.attributed_as.as_deref() == Some(i.site.as_str()))
            .filter(|i| spans_overlap(held, (rfc3339_to_us(&i.start_ts), i.end_ts.as_deref().map(rfc3339_to_us))))
            .count()
    }
}

#[cfg(test)]
mod tests {
    /// Regression: the CSV gave each attribution row of a site every incident of the site (one
    /// incident counted once per row); an incident counts in the rows whose time it overlaps.
    #[test]
    fn an_incident_counts_in_the_attributions_it_overlaps() {
        let attribution = |from: &str, to: Option<&str>| Attribution {
            site: "a.example".into(),
            source: "whois".into(),
            confidence: 0.9,
            valid_from: from.into(),
            valid_to: to.map(str::to_owned),
            requests: 0,
            share: 0.0,
            attributed_as: None,
        };
        let incident = |start: &str, end: Option<&str>| IncidentSummary {
            incident_id: format!("a.example-{start}"),
            site: "a.example".into(),
            vector: "http_flood".into(),
            status: "ended".into(),
            start_ts: start.into(),
            detected_ts: start.into(),
            peak_ts: start.into(),
            end_ts: end.map(str::to_owned),
            updated_ts: start.into(),
            peak_rps: 1.0,
            baseline_rps: 1.0,
            attack_requests: 1,
            distinct_ips: 1,
            report: String::new(),
        };
        let report = EntityReport {
            entity: "Org".into(),
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-02T00:00:00Z".into(),
            step: "1h".into(),
            min_confidence: 0.0,
            requests: 0,
            total_requests: 0,
            share: 0.0,
            sites: vec![attribution("2026-11-01T00:00:00Z", Some("2026-11-01T12:00:00Z")), attribution("2026-11-01T12:00:00Z", None)],
            series: Vec::new(),
            incidents: vec![incident("2026-11-01T01:00:00Z", Some("2026-11-01T01:10:00Z")), incident("2026-11-01T13:00:00Z", None)],
        };
        assert_eq!(report.sites.iter().map(|a| report.incidents_during(a)).collect::<Vec<_>>(), [1, 1]);
        let csv = report.to_csv();
        assert_eq!(csv.lines().skip(1).map(|l| l.split(',').nth(7).unwrap()).collect::<Vec<_>>(), ["1", "1"], "{csv}");
        // Regression: an incident recorded under the host name an attribution of the site was
        // imported under counted in no row (the report's incident list had it).
        let mut hosted = report.clone();
        hosted.sites[1].attributed_as = Some("www.a.example".into());
        hosted.incidents[1].site = "www.a.example".into();
        hosted.incidents[0].site = "www.a.example".into();
        assert_eq!(hosted.sites.iter().map(|a| hosted.incidents_during(a)).collect::<Vec<_>>(), [0, 1], "a direct row of the site counts the site's own only");
        hosted.incidents[0].site = "a.example".into();
        assert_eq!(hosted.sites.iter().map(|a| hosted.incidents_during(a)).collect::<Vec<_>>(), [1, 1]);
        // Rows that add up to the total need no word; overlapping ones are explained, in the
        // Markdown and HTML reports.
        assert_eq!(report.overlap_note(), None);
        let mut overlapping = report.clone();
        overlapping.sites[0].requests = 30;
        overlapping.sites[1].requests = 20;
        overlapping.requests = 40;
        let note = overlapping.overlap_note().expect("50 in the rows, 40 in all");
        assert!(note.starts_with("The rows add up to 50 requests, more than the entity's 40"), "{note}");
        assert!(crate::report::entity_markdown(&overlapping).contains(&note));
        assert!(crate::report::entity_html(&overlapping).contains(&note.replace('\'', "&#39;")));
    }

    use super::*;

    #[test]
    fn an_incident_belongs_to_an_attribution_it_overlaps() {
        let m = Mapping { site: "s.example".into(), source: "whois".into(), confidence: 1.0, from_us: 100, to_us: Some(200), via: None };
        assert!(m.overlaps(50, Some(150)), "started before the attribution, went on during it");
        assert!(m.overlaps(150, Some(300)));
        assert!(m.overlaps(150, None), "under way");
        assert!(m.overlaps(50, None));
        assert!(!m.overlaps(10, Some(99)), "over before it");
        assert!(!m.overlaps(200, None), "started after it");
        let open = Mapping { to_us: None, ..m };
        assert!(open.overlaps(1_000, Some(2_000)));
        assert!(!open.overlaps(10, Some(50)));
    }
}
