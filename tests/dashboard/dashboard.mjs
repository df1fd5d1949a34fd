// End to end: the dashboard of a real `edgelens query` over a lake that `edgelens replay` wrote,
// in headless Chromium. Run by tests/dashboard.rs with
//   EDGELENS_URL         http://127.0.0.1:PORT of the query service
//   EDGELENS_END         end of the generated data (RFC 3339), EDGELENS_SPAN its length (e.g. 10m)
//   EDGELENS_SCREENSHOT  where to save a full-page screenshot (PNG)
//   EDGELENS_NODE_MODULES, EDGELENS_CHROMIUM  see browser.mjs
//
// Checks: no console errors, page errors or failed requests; the share chart has one area per
// series of the API's answer; the top-sites table lists the API's top site with its request count;
// the rate chart has a line; the incidents list has the API's incidents; clicking one shows its
// report (timeline, signature, attackers, link to the HTML report); the `by` selector re-draws the
// share chart from the API's answer for that grouping.

import { api, assert, assertEq, env, openPage, run, waitReady } from "./browser.mjs";

const base = env("EDGELENS_URL");
const end = env("EDGELENS_END");
const span = env("EDGELENS_SPAN");
const screenshot = env("EDGELENS_SCREENSHOT");

/** Number of vertices of an SVG path's `d` (M/L commands). */
const vertices = (d) => (d || "").split(/[ML]/).filter((s) => s.trim()).length;

await run(async (browser) => {
  const { page, problems } = await openPage(browser);
  await page.goto(`${base}/?end=${encodeURIComponent(end)}&span=${span}`);
  let ready = await waitReady(page);

  // Traffic share: one stacked area per series of the answer the page asked for.
  const shareSrc = await page.getAttribute("#share-chart", "data-src");
  assert(shareSrc && shareSrc.includes("by=site"), `share chart source: ${shareSrc}`);
  const share = await api(base, shareSrc);
  assert(share.series.length >= 3, `the API has several series: ${share.series.length}`);
  const areas = await page.$$eval("#share-chart path.area", (ps) => ps.map((p) => ({ key: p.dataset.key, d: p.getAttribute("d") })));
  assertEq(areas.map((a) => a.key), share.series.map((s) => s.key), "share chart areas = API series, in order");
  for (const a of areas) assert(vertices(a.d) >= 4, `area of ${a.key} has a shape: ${a.d.slice(0, 80)}`);
  assertEq(await page.locator("#share-legend span").count(), share.series.length, "one legend entry per series");
  assertEq(await page.textContent("#share-error"), "", "no share error");

  // Top sites: the API's top site first, with its request count.
  const topSrc = await page.getAttribute("#top-sites", "data-src");
  const top = (await api(base, topSrc)).series.filter((s) => s.key !== "other");
  const firstRow = page.locator("#top-sites tbody tr").first();
  assertEq(await firstRow.getAttribute("data-site"), top[0].key, "top site");
  const shownRequests = (await firstRow.locator("td[data-requests]").textContent()).replace(/,/g, "");
  assertEq(shownRequests, String(top[0].requests), "top site's request count as shown");
  assertEq(await page.locator("#top-sites tbody tr").count(), top.length, "one row per top site");

  // Request rate of the selected (top) site: a line with the API's points.
  const rateSrc = await page.getAttribute("#rate-chart", "data-src");
  assert(rateSrc.startsWith(`/v1/sites/${encodeURIComponent(top[0].key)}/rates`), `rate chart source: ${rateSrc}`);
  const rates = await api(base, rateSrc);
  assert(rates.points.length > 10, `rate points: ${rates.points.length}`);
  assert(vertices(await page.getAttribute("#rate-line", "d")) >= rates.points.length, "rate line has a vertex per point");

  // Incidents: the API's list, newest first, at least one (the generated flood).
  const incSrc = await page.getAttribute("#incident-list", "data-src");
  const incidents = (await api(base, incSrc)).incidents;
  assert(incidents.length >= 1, `the API lists incidents: ${JSON.stringify(incidents).slice(0, 200)}`);
  const rows = await page.$$eval("#incident-list tbody tr", (trs) => trs.map((tr) => tr.dataset.incident));
  assertEq(rows, incidents.map((i) => i.incident_id), "incident rows = API incidents");
  assert(await page.locator("#incidents-empty").isHidden(), "no 'no incidents' note");

  // Drill-down: click the first incident; its report shows inline.
  const inc = incidents[0];
  const reportPath = inc.report || `/v1/incidents/${encodeURIComponent(inc.incident_id)}`;
  const report = await api(base, reportPath);
  await page.locator("#incident-list tbody tr").first().click();
  await page.waitForSelector(`#report[data-loaded="${inc.incident_id}"]`);
  assert(await page.locator("#report").isVisible(), "report visible");
  assertEq(await page.textContent("#report-title"), inc.incident_id, "report title");
  assertEq(await page.textContent("#report-error"), "", "no report error");
  assert(report.timeline.length > 0, "the API's report has a timeline");
  assertEq(await page.getAttribute("#timeline-chart", "data-points"), String(report.timeline.length), "timeline points");
  assert(vertices(await page.getAttribute("#timeline-requests", "d")) >= report.timeline.length, "timeline requests line");
  assert(vertices(await page.getAttribute("#timeline-matched", "d")) >= report.timeline.length, "timeline matched area");
  const predicates = (report.incident.signature && report.incident.signature.predicates) || [];
  assert(predicates.length >= 1, `the flood has a signature: ${JSON.stringify(report.incident.signature)}`);
  assertEq(await page.$$eval("#signature tbody tr", (trs) => trs.map((tr) => tr.dataset.attr)), predicates.map((p) => p.attr), "signature predicates");
  const sigText = await page.textContent("#signature");
  for (const p of predicates) assert(sigText.includes(`${(p.precision * 100).toFixed(1)}%`), `precision of ${p.attr} shown`);
  const attackers = report.incident.top_attackers || [];
  assertEq(await page.locator("#attackers tbody tr").count(), Math.min(10, attackers.length), "top attackers rows");
  if (attackers.length) assertEq(await page.textContent("#attackers tbody tr:first-child td:first-child"), attackers[0].ip, "first attacker");
  const facts = await page.textContent("#report-facts");
  assert(facts.includes("peak") && facts.includes("baseline"), "peak and baseline shown");
  assert(page.url().includes(`incident=${encodeURIComponent(inc.incident_id)}`), `page address names the incident: ${page.url()}`);
  // The full HTML report behind the link.
  const href = await page.getAttribute("#report-html", "href");
  assertEq(href, `${reportPath}?format=html`, "full report link");
  const html = await fetch(new URL(href, base));
  assertEq(html.status, 200, `GET ${href}`);
  assert((html.headers.get("content-type") || "").startsWith("text/html"), `HTML report content type: ${html.headers.get("content-type")}`);
  // The rate chart now shows the incident's site, with the incident as a band.
  await page.waitForSelector(`#rate-chart[data-src^="/v1/sites/${encodeURIComponent(inc.site)}/rates"] #rate-line`);
  assert(await page.locator(`#rate-chart rect.incident-band[data-incident="${inc.incident_id}"]`).count() === 1, "incident band on the rate chart");
  // Regression: a site typed in upper case showed its rates without its incident bands.
  await page.evaluate(() => document.querySelectorAll("#rate-chart rect.incident-band").forEach((b) => b.remove()));
  await page.fill("#site", `${inc.site.toUpperCase()}.`);
  await page.press("#site", "Enter");
  await page.locator("#site").blur();
  await page.waitForFunction((id) => document.querySelector(`#rate-chart rect.incident-band[data-incident="${id}"]`), inc.incident_id, { timeout: 20000 });
  assertEq(await page.inputValue("#site"), inc.site, "site as typed, normalized");

  await page.evaluate(() => { document.getElementById("tip").hidden = true; window.scrollTo(0, 0); });
  await page.screenshot({ path: screenshot, fullPage: true });

  // Another grouping: the share chart follows the API's answer for it.
  await page.selectOption("#by", "country");
  ready = await waitReady(page, ready);
  const countrySrc = await page.getAttribute("#share-chart", "data-src");
  assert(countrySrc.includes("by=country"), `share source after the switch: ${countrySrc}`);
  const byCountry = await api(base, countrySrc);
  assertEq(await page.$$eval("#share-chart path.area", (ps) => ps.map((p) => p.dataset.key)), byCountry.series.map((s) => s.key), "areas by country");
  assert(page.url().includes("by=country"), "page address keeps the grouping");

  // Closing the report.
  await page.click("#report-close");
  assert(await page.locator("#report").isHidden(), "report closed");

  assertEq(problems, [], "no console errors, page errors or failed requests");
});
