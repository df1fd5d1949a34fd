//! Incident reports rendered for people: Markdown, and a standalone HTML page with the timeline as
//! an inline SVG chart (no scripts, no external assets, so it can be saved, mailed or attached to a
//! ticket). Pure functions of an [`IncidentReport`]; golden files pin their output.

use std::fmt::Write;

use crate::incidents::{IncidentReport, TimelinePoint};

/// What the timeline's "Matched" column counts, under the timeline in Markdown and HTML.
const TIMELINE_NOTE: &str = "Matched: the requests matching the signature, counted from 7 s after the start; the seconds before are estimated from a sample of their requests (so the top attackers, counted from that sample until then, may be low). An incident without a signature counts the requests over the baseline.";

/// The report as Markdown: summary, signature, top attackers, per-second timeline.
pub fn markdown(r: &IncidentReport) -> String {
    let s = &r.incident.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# Incident {}\n", md(&s.incident_id));
    out.push_str("| | |\n|---|---|\n");
    for (k, v) in summary_rows(r) {
        let _ = writeln!(out, "| {k} | {} |", md(&v));
    }
    out.push_str("\n## Signature\n\n");
    match signature_rows(&r.incident.signature) {
        Some((rows, precision, coverage)) => {
            let _ = writeln!(
                out,
                "Requests matching all predicates below (estimated precision {precision}, coverage {coverage}).\n"
            );
            out.push_str("| Attribute | Values | Precision | Coverage |\n|---|---|---|---|\n");
            for p in rows {
                let _ = writeln!(out, "| {} | {} | {} | {} |", md(&p.attr), md(&values_text(&p.values)), p.precision, p.coverage);
            }
        }
        None => out.push_str("No signature: the incident was confirmed on its request rate alone.\n"),
    }
    out.push_str("\n## Top attackers\n\n");
    let attackers = attacker_rows(&r.incident.top_attackers);
    if attackers.is_empty() {
        out.push_str("None recorded.\n");
    } else {
        out.push_str("| IP | Requests |\n|---|---|\n");
        for (ip, n) in attackers {
            let _ = writeln!(out, "| {} | {n} |", md(&ip));
        }
    }
    out.push_str("\n## Timeline\n\n");
    if r.timeline.is_empty() {
        out.push_str("No timeline rows.\n");
    } else {
        out.push_str(TIMELINE_NOTE);
        out.push_str("\n\n");
        out.push_str("| Second (UTC) | Requests | Matched | 2xx | 3xx | 4xx | 5xx |\n|---|---|---|---|---|---|---|\n");
        for p in &r.timeline {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                p.ts, p.requests, p.matched_requests, p.status_2xx, p.status_3xx, p.status_4xx, p.status_5xx
            );
        }
    }
    out
}

/// The report as one HTML page.
pub fn html(r: &IncidentReport) -> String {
    let s = &r.incident.summary;
    let mut out = String::new();
    page_start(&mut out, &format!("Incident {}", s.incident_id));
    out.push_str("<table class=\"summary\">\n");
    for (k, v) in summary_rows(r) {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    out.push_str("</table>\n<h2>Timeline</h2>\n");
    out.push_str(&timeline_svg(r));
    out.push_str("<p class=\"legend\"><span class=\"key all\"></span> all requests of the site <span class=\"key matched\"></span> requests matching the signature</p>\n");
    out.push_str("<h2>Signature</h2>\n");
    match signature_rows(&r.incident.signature) {
        Some((rows, precision, coverage)) => {
            let _ = writeln!(
                out,
                "<p>Requests matching all predicates below (estimated precision {precision}, coverage {coverage}).</p>"
            );
            out.push_str("<table class=\"signature\">\n<tr><th>Attribute</th><th>Values</th><th>Precision</th><th>Coverage</th></tr>\n");
            for p in rows {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&p.attr),
                    esc(&values_text(&p.values)),
                    p.precision,
                    p.coverage
                );
            }
            out.push_str("</table>\n");
        }
        None => out.push_str("<p>No signature: the incident was confirmed on its request rate alone.</p>\n"),
    }
    out.push_str("<h2>Top attackers</h2>\n");
    let attackers = attacker_rows(&r.incident.top_attackers);
    if attackers.is_empty() {
        out.push_str("<p>None recorded.</p>\n");
    } else {
        out.push_str("<table class=\"attackers\">\n<tr><th>IP</th><th>Requests</th></tr>\n");
        for (ip, n) in attackers {
            let _ = writeln!(out, "<tr><td>{}</td><td>{n}</td></tr>", esc(&ip));
        }
        out.push_str("</table>\n");
    }
    let _ = writeln!(out, "<details>\n<summary>Timeline, {} seconds</summary>", r.timeline.len());
    let _ = writeln!(out, "<p class=\"legend\">{}</p>", esc(TIMELINE_NOTE));
    out.push_str("<table class=\"timeline\">\n<tr><th>Second (UTC)</th><th>Requests</th><th>Matched</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>\n");
    for p in &r.timeline {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.ts, p.requests, p.matched_requests, p.status_2xx, p.status_3xx, p.status_4xx, p.status_5xx
        );
    }
    out.push_str("</table>\n</details>\n</body>\n</html>\n");
    out
}

/// The head of a report page, up to and including its `<h1>` title (`title` is escaped here).
fn page_start(out: &mut String, title: &str) {
    let title = esc(title);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<link rel=\"icon\" href=\"data:,\">\n<title>{title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
}

const CSS: &str = "body { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; margin: 24px; max-width: 1000px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #dde1e8; padding: 3px 8px; text-align: left; }
svg.timeline { width: 100%; height: auto; }
svg.timeline text { font-size: 11px; fill: #6b7385; }
.key { display: inline-block; width: 12px; height: 12px; vertical-align: middle; }
.key.all { background: #9fb7d4; } .key.matched { background: #e15759; }
";

const W: f64 = 960.0;
const H: f64 = 260.0;
/// Room for the y-axis labels (`12.345 %`, `12345/s` at 11 px; 56 clipped them).
const PAD_L: f64 = 72.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 28.0;

/// The per-second timeline as an SVG chart: the site's requests as an area, the requests matching
/// the signature as a line, the detection second as a dashed rule.
pub fn timeline_svg(r: &IncidentReport) -> String {
    let points = &r.timeline;
    let mut out = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"requests per second during the incident\">\n"
    );
    let (x0, x1) = (PAD_L, W - PAD_R);
    let (y0, y1) = (H - PAD_B, PAD_T);
    let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#dde1e8\"/>");
    if points.is_empty() {
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\">no timeline rows</text>", x0 + 8.0, H / 2.0);
        out.push_str("</svg>\n");
        return out;
    }
    let t_first = points[0].ts_us;
    let t_last = points[points.len() - 1].ts_us.max(t_first + 1_000_000);
    let y_max = nice_ceiling(points.iter().map(|p| p.requests.max(p.matched_requests)).max().unwrap_or(0));
    let x = |t: i64| x0 + (t - t_first) as f64 / (t_last - t_first) as f64 * (x1 - x0);
    let y = |v: u64| y0 - v as f64 / y_max as f64 * (y0 - y1);
    for i in 0..=2u64 {
        let v = y_max * i / 2;
        let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{yv:.1}\" x2=\"{x1}\" y2=\"{yv:.1}\" stroke=\"#eef0f4\"/>", yv = y(v));
        let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}/s</text>", x0 - 6.0, y(v) + 4.0);
    }
    // Time ticks on whole multiples of a readable interval, at most 7 of them.
    let span_s = (t_last - t_first) / 1_000_000;
    let every_s = [1i64, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 21_600, 43_200, 86_400]
        .into_iter()
        .find(|e| span_s / e <= 6)
        .unwrap_or(86_400 * (span_s / 86_400 / 6 + 1));
    let every = every_s * 1_000_000;
    let mut t = t_first.div_euclid(every) * every;
    while t <= t_last {
        if t >= t_first {
            let label =
                chrono::DateTime::from_timestamp_micros(t).map(|d| d.format("%H:%M:%S").to_string()).unwrap_or_default();
            let anchor = if x(t) < x0 + 30.0 { "start" } else if x(t) > x1 - 30.0 { "end" } else { "middle" };
            let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>", x(t), H - 8.0);
        }
        t += every;
    }
    let area = series_path(points, |p| p.requests, &x, &y, Some(y0));
    let _ = writeln!(out, "<path class=\"requests\" d=\"{area}\" fill=\"#9fb7d4\" fill-opacity=\"0.6\" stroke=\"#4e79a7\" stroke-width=\"1\"/>");
    let line = series_path(points, |p| p.matched_requests, &x, &y, None);
    let _ = writeln!(out, "<path class=\"matched\" d=\"{line}\" fill=\"none\" stroke=\"#e15759\" stroke-width=\"1.5\"/>");
    if let Ok(detected) = chrono::DateTime::parse_from_rfc3339(&r.incident.summary.detected_ts) {
        let t = detected.timestamp_micros();
        if (t_first..=t_last).contains(&t) {
            let _ = writeln!(
                out,
                "<line class=\"detected\" x1=\"{xd:.1}\" y1=\"{y1}\" x2=\"{xd:.1}\" y2=\"{y0}\" stroke=\"#1d2330\" stroke-dasharray=\"4 3\"/>\n<text x=\"{xt:.1}\" y=\"{yt}\">detected</text>",
                xd = x(t),
                xt = x(t) + 4.0,
                yt = y1 + 10.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn series_path(
    points: &[TimelinePoint],
    value: impl Fn(&TimelinePoint) -> u64,
    x: &impl Fn(i64) -> f64,
    y: &impl Fn(u64) -> f64,
    close_at: Option<f64>,
) -> String {
    let mut d = String::new();
    if let Some(base) = close_at {
        let _ = write!(d, "M{:.1},{base:.1}", x(points[0].ts_us));
    }
    for (i, p) in points.iter().enumerate() {
        let cmd = if i == 0 && close_at.is_none() { 'M' } else { 'L' };
        let _ = write!(d, "{cmd}{:.1},{:.1}", x(p.ts_us), y(value(p)));
    }
    if let Some(base) = close_at {
        let _ = write!(d, "L{:.1},{base:.1}Z", x(points[points.len() - 1].ts_us));
    }
    d
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (at least 1).
fn nice_ceiling(v: u64) -> u64 {
    let mut base = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * base >= v {
                return m * base;
            }
        }
        base = base.saturating_mul(10);
    }
}

fn summary_rows(r: &IncidentReport) -> Vec<(&'static str, String)> {
    let s = &r.incident.summary;
    let secs = |a: &str, b: &str| -> Option<i64> {
        let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
        let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
        Some((b - a).num_seconds())
    };
    let ratio = if s.baseline_rps > 0.0 { format!(", {:.1}× baseline", s.peak_rps / s.baseline_rps) } else { String::new() };
    vec![
        ("Site", s.site.clone()),
        ("Vector", s.vector.clone()),
        ("Status", s.status.clone()),
        ("Start", s.start_ts.clone()),
        (
            "Detected",
            match secs(&s.start_ts, &s.detected_ts) {
                Some(d) => format!("{} ({d} s after start)", s.detected_ts),
                None => s.detected_ts.clone(),
            },
        ),
        ("Peak", format!("{} at {:.1} rps{ratio}", s.peak_ts, s.peak_rps)),
        ("Baseline", format!("{:.1} rps", s.baseline_rps)),
        (
            "End",
            match &s.end_ts {
                Some(e) => match secs(&s.start_ts, e) {
                    Some(d) => format!("{e} (lasted {d} s)"),
                    None => e.clone(),
                },
                None => "not ended".to_owned(),
            },
        ),
        ("Attack requests", s.attack_requests.to_string()),
        ("Distinct attacking IPs", s.distinct_ips.to_string()),
        ("Last update", s.updated_ts.clone()),
    ]
}

struct PredicateRow {
    attr: String,
    values: Vec<String>,
    precision: String,
    coverage: String,
}

fn num(v: Option<&serde_json::Value>) -> String {
    match v.and_then(serde_json::Value::as_f64) {
        Some(x) => format!("{x:.4}").trim_end_matches('0').trim_end_matches('.').to_owned(),
        None => "n/a".to_owned(),
    }
}

/// The signature's predicates, overall precision and coverage; `None` without predicates.
fn signature_rows(sig: &serde_json::Value) -> Option<(Vec<PredicateRow>, String, String)> {
    let predicates = sig.get("predicates")?.as_array()?;
    if predicates.is_empty() {
        return None;
    }
    let rows = predicates
        .iter()
        .map(|p| PredicateRow {
            attr: p.get("attr").and_then(|a| a.as_str()).unwrap_or("?").to_owned(),
            values: p
                .get("values")
                .and_then(|v| v.as_array())
                .map(|vs| vs.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect())
                .unwrap_or_default(),
            precision: num(p.get("precision")),
            coverage: num(p.get("coverage")),
        })
        .collect();
    Some((rows, num(sig.get("precision")), num(sig.get("coverage"))))
}

fn attacker_rows(top: &serde_json::Value) -> Vec<(String, u64)> {
    top.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e.get("ip").and_then(|v| v.as_str()).unwrap_or("?").to_owned(),
                        e.get("requests").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// HTML text escape.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Markdown table cell escape: pipes, and line breaks flattened; HTML (`<`, `>`, `&` as entities),
/// link, code and emphasis syntax (`[`, `]`, `` ` ``, `*`, `~`) kept literal, since the values come
/// from the traffic (a user agent, a path) and a renderer must show them, not run them.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '[' | ']' | '`' | '*' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The entity report as Markdown: totals, attributions with provenance and traffic, incidents
/// with links to their reports, the per-step series.
pub fn entity_markdown(r: &crate::entity_report::EntityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Entity report: {}\n", md(&r.entity));
    let _ = writeln!(
        out,
        "{} to {}, attributions with confidence ≥ {}.\n\n{} requests of {} in the range: a share of {}.\n",
        r.from,
        r.to,
        r.min_confidence,
        r.requests,
        r.total_requests,
        percent(r.share)
    );
    out.push_str("## Sites\n\n");
    if r.sites.is_empty() {
        out.push_str("No site is attributed to this entity in the range.\n");
    } else {
        out.push_str("| Site | Source | Confidence | Valid from | Valid to | Requests | Share |\n|---|---|---|---|---|---|---|\n");
        for a in &r.sites {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                site_label(&a.site, a.attributed_as.as_deref(), md),
                md(&a.source),
                a.confidence,
                a.valid_from,
                a.valid_to.as_deref().unwrap_or("open"),
                a.requests,
                percent(a.share)
            );
        }
        if let Some(note) = r.overlap_note() {
            let _ = writeln!(out, "\n{note}");
        }
    }
    out.push_str("\n## Incidents mitigated\n\n");
    if r.incidents.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| Incident | Site | Vector | Start | Peak rps | Attack requests | Status |\n|---|---|---|---|---|---|---|\n");
        for i in &r.incidents {
            let _ = writeln!(
                out,
                "| [{}]({}?format=html) | {} | {} | {} | {:.1} | {} | {} |",
                md(&i.incident_id),
                i.report,
                md(&i.site),
                md(&i.vector),
                i.start_ts,
                i.peak_rps,
                i.attack_requests,
                md(&i.status)
            );
        }
    }
    let _ = writeln!(out, "\n## Traffic per {}\n", r.step);
    out.push_str("| Step (UTC) | Requests | Share |\n|---|---|---|\n");
    for p in &r.series {
        let _ = writeln!(out, "| {} | {} | {} |", p.ts, p.requests, percent(p.share));
    }
    out
}

/// The entity report as one HTML page, with the share per step as an SVG chart.
pub fn entity_html(r: &crate::entity_report::EntityReport) -> String {
    let mut out = String::new();
    page_start(&mut out, &format!("Entity report: {}", r.entity));
    let _ = writeln!(
        out,
        "<p>{} to {}, attributions with confidence ≥ {}.</p>\n<p class=\"totals\"><b>{}</b> requests of {} in the range: a share of <b>{}</b>.</p>",
        esc(&r.from),
        esc(&r.to),
        r.min_confidence,
        r.requests,
        r.total_requests,
        percent(r.share)
    );
    let _ = writeln!(out, "<h2>Share of all traffic per {}</h2>", esc(&r.step));
    out.push_str(&share_svg(&r.series));
    out.push_str("<h2>Sites</h2>\n");
    if r.sites.is_empty() {
        out.push_str("<p>No site is attributed to this entity in the range.</p>\n");
    } else {
        out.push_str("<table class=\"sites\">\n<tr><th>Site</th><th>Source</th><th>Confidence</th><th>Valid from</th><th>Valid to</th><th>Requests</th><th>Share</th></tr>\n");
        for a in &r.sites {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                site_label(&a.site, a.attributed_as.as_deref(), esc),
                esc(&a.source),
                a.confidence,
                esc(&a.valid_from),
                esc(a.valid_to.as_deref().unwrap_or("open")),
                a.requests,
                percent(a.share)
            );
        }
        out.push_str("</table>\n");
        if let Some(note) = r.overlap_note() {
            let _ = writeln!(out, "<p>{}</p>", esc(&note));
        }
    }
    out.push_str("<h2>Incidents mitigated</h2>\n");
    if r.incidents.is_empty() {
        out.push_str("<p>None.</p>\n");
    } else {
        out.push_str("<table class=\"incidents\">\n<tr><th>Incident</th><th>Site</th><th>Vector</th><th>Start</th><th>Peak rps</th><th>Attack requests</th><th>Status</th></tr>\n");
        for i in &r.incidents {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"{}?format=html\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                esc(&i.report),
                esc(&i.incident_id),
                esc(&i.site),
                esc(&i.vector),
                esc(&i.start_ts),
                i.peak_rps,
                i.attack_requests,
                esc(&i.status)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn percent(share: f64) -> String {
    format!("{:.3} %", share * 100.0)
}

/// Bars of the entity's share per step.
fn share_svg(points: &[crate::entity_report::ReportPoint]) -> String {
    let mut out = format!("<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"share of all traffic per step\">\n");
    let (x0, x1, y0, y1) = (PAD_L, W - PAD_R, H - PAD_B, PAD_T);
    let _ = writeln!(out, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#dde1e8\"/>");
    if points.is_empty() {
        let _ = writeln!(out, "<text x=\"{}\" y=\"{}\">no traffic in the range</text>", x0 + 8.0, H / 2.0);
        out.push_str("</svg>\n");
        return out;
    }
    let max = points.iter().map(|p| p.share).fold(0.0f64, f64::max).max(1e-9);
    let width = (x1 - x0) / points.len() as f64;
    let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", x0 - 6.0, y1 + 4.0, percent(max));
    let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">0</text>", x0 - 6.0, y0 + 4.0);
    for (i, p) in points.iter().enumerate() {
        let h = p.share / max * (y0 - y1);
        let _ = writeln!(
            out,
            "<rect class=\"share\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4e79a7\"><title>{} {}</title></rect>",
            x0 + i as f64 * width,
            y0 - h,
            (width - 1.0).max(0.5),
            esc(&p.ts),
            percent(p.share)
        );
    }
    let (first, last) = (&points[0].ts, &points[points.len() - 1].ts);
    let _ = writeln!(out, "<text x=\"{x0}\" y=\"{}\">{}</text>", H - 8.0, esc(first));
    let _ = writeln!(out, "<text x=\"{x1}\" y=\"{}\" text-anchor=\"end\">{}</text>", H - 8.0, esc(last));
    out.push_str("</svg>\n");
    out
}

/// A site as an attribution row shows it: with the host name it was imported under, if another.
fn site_label(site: &str, via: Option<&str>, quote: impl Fn(&str) -> String) -> String {
    match via {
        Some(host) => format!("{} (attributed as {})", quote(site), quote(host)),
        None => quote(site),
    }
}

/// A predicate's values as one text: joined with `, `, each in double quotes when any has a
/// comma, a quote or spaces at its ends (user agents: `"… (KHTML, like Gecko) …"`), so that where
/// one ends and the next begins stays clear.
pub fn values_text(values: &[String]) -> String {
    let ambiguous = values.iter().any(|v| v.contains(',') || v.contains('"') || v.trim() != v || v.is_empty());
    if !ambiguous {
        return values.join(", ");
    }
    values.iter().map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: user agents, which nearly all hold ", ", were joined with ", " in the Markdown
    /// and HTML reports, so where one ended and the next began could not be told.
    #[test]
    fn values_with_commas_are_quoted() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(values_text(&v(&["64500", "64501"])), "64500, 64501");
        assert_eq!(
            values_text(&v(&["Mozilla/5.0 (KHTML, like Gecko) Chrome/88.0", "curl/8.0", "say \"hi\""])),
            r#""Mozilla/5.0 (KHTML, like Gecko) Chrome/88.0", "curl/8.0", "say \"hi\"""#
        );
    }
    use crate::incidents::{IncidentDetail, IncidentSummary};

    /// A fixed report: a 12-second flood with a signature of two predicates.
    pub(crate) fn sample() -> IncidentReport {
        let base = 1_793_491_200_000_000i64; // 2026-11-01T00:00:00Z
        let timeline = (0..12)
            .map(|i| {
                let attack = if (2..10).contains(&i) { 400 + i * 10 } else { 0 };
                let requests = 20 + attack;
                TimelinePoint {
                    ts: crate::params::rfc3339_us(base + i * 1_000_000),
                    ts_us: base + i * 1_000_000,
                    requests: requests as u64,
                    matched_requests: attack as u64,
                    status_2xx: requests as u64 - 3,
                    status_3xx: 0,
                    status_4xx: 3,
                    status_5xx: 0,
                }
            })
            .collect();
        IncidentReport {
            incident: IncidentDetail {
                summary: IncidentSummary {
                    incident_id: "shop.example-20261101T000002Z".into(),
                    site: "shop.example".into(),
                    vector: "http_flood".into(),
                    status: "ended".into(),
                    start_ts: "2026-11-01T00:00:02Z".into(),
                    detected_ts: "2026-11-01T00:00:05Z".into(),
                    peak_ts: "2026-11-01T00:00:09Z".into(),
                    end_ts: Some("2026-11-01T00:00:10Z".into()),
                    updated_ts: "2026-11-01T00:00:16Z".into(),
                    peak_rps: 510.0,
                    baseline_rps: 20.0,
                    attack_requests: 3480,
                    distinct_ips: 812,
                    report: "/v1/incidents/shop.example-20261101T000002Z".into(),
                },
                signature: serde_json::json!({"predicates":[
                    {"attr":"asn","op":"in","values":["64500","64501"],"precision":0.995,"coverage":0.98},
                    {"attr":"user_agent","op":"in","values":["curl/8.0 | <bot>"],"precision":0.999,"coverage":0.97}
                ],"precision":0.999,"coverage":0.96}),
                top_attackers: serde_json::json!([{"ip":"203.0.113.7","requests":120},{"ip":"2001:db8::1","requests":90}]),
            },
            timeline,
        }
    }

    fn golden(name: &str, actual: &str) {
        let path = crate::crate_dir().join("tests/golden").join(name);
        if std::env::var_os("EDGELENS_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (EDGELENS_UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(actual, expected, "{name} differs from its golden file (EDGELENS_UPDATE_GOLDEN=1 rewrites it)");
    }

    #[test]
    fn markdown_report_matches_golden() {
        golden("incident_report.md", &markdown(&sample()));
    }

    #[test]
    fn html_report_matches_golden() {
        golden("incident_report.html", &html(&sample()));
    }

    #[test]
    fn text_is_escaped() {
        let md = markdown(&sample());
        // Values from the traffic render as text: no HTML, no links, no table breaks.
        assert!(md.contains("curl/8.0 \\| &lt;bot&gt;"), "{md}");
        assert!(!md.contains("<bot>"), "{md}");
        assert_eq!(super::md("[x](javascript:y) `z` a&b\nc"), "\\[x\\](javascript:y) \\`z\\` a&amp;b c");
        // Regression: `*b*` and `~~s~~` in a value rendered as emphasis and strikethrough.
        assert_eq!(super::md("*b* ~~s~~"), "\\*b\\* \\~\\~s\\~\\~");
        let html = html(&sample());
        assert!(html.contains("curl/8.0 | &lt;bot&gt;"));
        assert!(!html.contains("<bot>"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn chart_scales_to_the_timeline() {
        let svg = timeline_svg(&sample());
        // Peak 510 rounds up to a 1000/s axis; the area starts and ends on the baseline.
        assert!(svg.contains(">1000/s<"), "{svg}");
        assert!(svg.contains("class=\"requests\" d=\"M72.0,232.0L72.0,"), "{svg}");
        assert!(svg.contains("class=\"detected\""));
        let empty = IncidentReport { timeline: Vec::new(), ..sample() };
        assert!(timeline_svg(&empty).contains("no timeline rows"));
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(510), 1000);
        assert_eq!(nice_ceiling(200), 200);
        assert_eq!(nice_ceiling(201), 500);
    }

    /// Regression: the y-axis labels of the charts were clipped at the left edge (`12.345 %` of
    /// the entity report's share chart did not fit its 56 units). Right-aligned 6 units left of
    /// the axis, a label of 11 px text (at most 0.6 em a character) must fit in `PAD_L`.
    #[test]
    fn axis_labels_fit_left_of_the_axis() {
        let widest = [percent(0.12345), percent(1.0), format!("{}/s", nice_ceiling(99_999))];
        for label in widest {
            let width = label.chars().count() as f64 * 11.0 * 0.6;
            assert!(width <= PAD_L - 6.0, "{label:?} takes {width} of {}", PAD_L - 6.0);
        }
    }
}
