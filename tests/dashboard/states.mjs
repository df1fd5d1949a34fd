// The dashboard's edge states, in headless Chromium, against a real `edgelens query` over an empty
// lake (some answers replaced in the browser with page.route). Run by tests/dashboard.rs with
// EDGELENS_URL, EDGELENS_NODE_MODULES, EDGELENS_CHROMIUM (see browser.mjs).
//
// Checks: a `?token=` reaches every API request as `Authorization: Bearer`, leaves the address bar
// and is remembered; empty data says so in every panel; API errors (500, 401) are shown where they
// happen, a 401 asks for a token and the token input fixes it; incidents without signature,
// attackers or timeline, and a signature stored as JSON text, render; a bad end time is reported;
// without an end time the page is live; a site named "other" is not the folded rest; an end time
// inside a minute is taken up to the minute. No uncaught exception anywhere, and no console error other
// than the browser's own note about the error answers the test provoked.

import { assert, assertEq, env, openPage, run, waitReady } from "./browser.mjs";

const base = env("EDGELENS_URL");
const range = "end=2026-11-01T00:10:00Z&span=10m";
const json = (status, body) => ({ status, contentType: "application/json", body: JSON.stringify(body) });
const isApi = (path) => (url) => url.pathname === path;

/** Only the error answers this test provoked itself, and the browser's console note about them. */
function unexpected(problems, statuses) {
  return problems.filter((p) => !statuses.some((s) => p.startsWith(`HTTP ${s}: `) || p === `console error: Failed to load resource: the server responded with a status of ${s} ()`
    || p.startsWith(`console error: Failed to load resource: the server responded with a status of ${s} (`)));
}

const incident = (over) => ({
  incident_id: "quiet.example-20261101T000500Z", site: "quiet.example", vector: "credential_stuffing", status: "active",
  start_ts: "2026-11-01T00:05:00Z", detected_ts: "2026-11-01T00:05:20Z", peak_ts: "2026-11-01T00:06:00Z", end_ts: null,
  updated_ts: "2026-11-01T00:09:50Z", peak_rps: 250.5, baseline_rps: 3.25, attack_requests: 51234, distinct_ips: 17,
  report: "/v1/incidents/quiet.example-20261101T000500Z", ...over,
});

await run(async (browser) => {
  // 1. Empty lake, token in the page address.
  {
    const { context, page, problems } = await openPage(browser);
    const auth = [];
    page.on("request", (r) => { if (new URL(r.url()).pathname.startsWith("/v1/")) auth.push([new URL(r.url()).pathname, r.headers().authorization]); });
    await page.goto(`${base}/?token=s3cret&${range}`);
    await waitReady(page);
    assert(auth.length >= 2, `API requests seen: ${JSON.stringify(auth)}`);
    for (const [path, header] of auth) assertEq(header, "Bearer s3cret", `Authorization of ${path}`);
    assert(!page.url().includes("s3cret"), `token left in the address: ${page.url()}`);
    assert(page.url().includes("end=2026-11-01T00%3A10%3A00Z") || page.url().includes("end=2026-11-01T00:10:00Z"), `end kept in the address: ${page.url()}`);
    assertEq(await page.evaluate(() => localStorage.getItem("edgelens.token")), "s3cret", "token remembered");
    assertEq(await page.locator("#share-chart path.area").count(), 0, "no areas without data");
    assert((await page.textContent("#share-chart .empty-text")).startsWith("no traffic"), "share chart says there is no traffic");
    assert(await page.locator("#top-empty").isVisible(), "top sites say there is no traffic");
    assertEq(await page.textContent("#rate-chart .empty-text"), "no site to show", "rate chart says there is no site");
    assert(await page.locator("#incidents-empty").isVisible(), "incidents say there are none");
    for (const id of ["share-error", "top-error", "rate-error", "incidents-error"]) assertEq(await page.textContent(`#${id}`), "", `#${id} empty`);
    assert(await page.locator("#auth-error").isHidden(), "no auth banner");
    assert(await page.locator("#live").isHidden(), "not live with an end time");
    assertEq(problems, [], "problems with an empty lake");
    await context.close();
  }

  // 2. API errors: 500 from the traffic share, 401 from incidents until a token is entered.
  {
    const { context, page, problems } = await openPage(browser);
    await page.route(isApi("/v1/traffic-share"), (route) => route.fulfill(json(500, { error: "backend exploded" })));
    await page.route(isApi("/v1/incidents"), (route) => {
      const ok = route.request().headers().authorization === "Bearer typed-token";
      return route.fulfill(ok ? json(200, { incidents: [incident({})] }) : json(401, { error: "missing or unknown bearer token" }));
    });
    await page.goto(`${base}/?${range}`);
    let ready = await waitReady(page);
    assertEq(await page.textContent("#share-error"), "traffic share: HTTP 500: backend exploded", "share error shown");
    assertEq(await page.textContent("#top-error"), "top sites: HTTP 500: backend exploded", "top sites error shown");
    assertEq(await page.textContent("#incidents-error"), "incidents: HTTP 401: missing or unknown bearer token", "incidents error shown");
    assert(await page.locator("#auth-error").isVisible(), "auth banner shown");
    assert((await page.textContent("#auth-error")).includes("token"), "auth banner asks for a token");
    assert(await page.locator("#token-bar").isVisible(), "token input offered");
    await page.fill("#token", "typed-token");
    await page.click("#token-form button[type=submit]");
    ready = await waitReady(page, ready);
    assertEq(await page.textContent("#incidents-error"), "", "incidents load with the token");
    assertEq(await page.locator("#incident-list tbody tr").count(), 1, "the incident is listed");
    assert(await page.locator("#auth-error").isHidden(), "auth banner gone");
    assertEq(await page.evaluate(() => localStorage.getItem("edgelens.token")), "typed-token", "typed token remembered");
    assertEq(unexpected(problems, [500, 401]), [], "problems besides the provoked errors");
    await context.close();
  }

  // 3. Incident reports with little in them, one with its signature as JSON text, one failing.
  {
    const { context, page, problems } = await openPage(browser);
    const bare = incident({});
    const text = incident({ incident_id: "shop.example-20261101T000100Z", site: "shop.example", vector: "http_flood", status: "ended", start_ts: "2026-11-01T00:01:00Z", end_ts: "2026-11-01T00:03:30Z", report: undefined });
    const broken = incident({ incident_id: "gone.example-20261101T000000Z", site: "gone.example", status: "cooling", start_ts: "2026-11-01T00:00:00Z", report: "/v1/incidents/gone.example-20261101T000000Z" });
    await page.route(isApi("/v1/incidents"), (route) => route.fulfill(json(200, { incidents: [bare, text, broken] })));
    await page.route(isApi(bare.report), (route) => route.fulfill(json(200, { incident: { ...bare, signature: null, top_attackers: [] }, timeline: [] })));
    const signature = { predicates: [{ attr: "asn", op: "in", values: ["64500", "64501"], precision: 0.995, coverage: 0.9 }, { attr: "path", op: "in", values: ["/login"], precision: 0.98, coverage: 0.97 }], precision: 0.999, coverage: 0.88 };
    await page.route(isApi(`/v1/incidents/${text.incident_id}`), (route) => route.fulfill(json(200, {
      incident: { ...text, signature: JSON.stringify(signature), top_attackers: JSON.stringify([{ ip: "203.0.113.7", requests: 900 }]) },
      timeline: [0, 1, 2, 4].map((s) => ({ ts: `2026-11-01T00:01:0${s}Z`, requests: 100 + s, matched_requests: 90, status_2xx: 100, status_3xx: 0, status_4xx: s, status_5xx: 0 })),
    })));
    await page.route(isApi(broken.report), (route) => route.fulfill(json(404, { error: "no incident gone.example-20261101T000000Z" })));
    await page.goto(`${base}/?${range}`);
    await waitReady(page);
    assertEq(await page.$$eval("#incident-list tbody tr", (trs) => trs.map((t) => t.dataset.incident)), [bare, text, broken].map((i) => i.incident_id), "listed in the API's order");
    const firstRow = await page.textContent("#incident-list tbody tr:first-child");
    for (const part of ["quiet.example", "credential stuffing", "active", "2026-11-01 00:05:00", "251", "51,234"]) assert(firstRow.includes(part), `first row shows ${part}: ${firstRow}`);

    await page.click(`#incident-list tr[data-incident="${bare.incident_id}"]`);
    await page.waitForSelector(`#report[data-loaded="${bare.incident_id}"]`);
    assert(await page.locator("#signature-empty").isVisible(), "no signature said");
    assert(await page.locator("#attackers-empty").isVisible(), "no attackers said");
    assertEq(await page.textContent("#timeline-chart .empty-text"), "no timeline recorded for this incident", "no timeline said");
    assert((await page.textContent("#report-facts")).includes("ongoing"), "an active incident is ongoing");
    assertEq(await page.getAttribute("#report-html", "href"), `${bare.report}?format=html`, "full report link");

    await page.click(`#incident-list tr[data-incident="${text.incident_id}"]`);
    await page.waitForSelector(`#report[data-loaded="${text.incident_id}"]`);
    assertEq(await page.$$eval("#signature tbody tr", (trs) => trs.map((t) => t.dataset.attr)), ["asn", "path"], "signature from JSON text");
    assert((await page.textContent("#signature")).includes("99.5%"), "predicate precision shown");
    assertEq(await page.textContent("#attackers tbody tr td"), "203.0.113.7", "attacker from JSON text");
    assertEq(await page.getAttribute("#timeline-chart", "data-points"), "4", "timeline points");
    assert((await page.getAttribute("#timeline-requests", "d")).length > 10, "timeline drawn");
    assertEq(await page.getAttribute("#report-html", "href"), `/v1/incidents/${text.incident_id}?format=html`, "report path built from the id");

    await page.click(`#incident-list tr[data-incident="${broken.incident_id}"]`);
    await page.waitForFunction(() => document.getElementById("report-error").textContent !== "");
    assertEq(await page.textContent("#report-error"), `report of ${broken.incident_id}: HTTP 404: no incident gone.example-20261101T000000Z`, "report error shown");
    assert(await page.locator("#report-body").isHidden(), "no stale report under the error");
    await page.click("#report-close");
    assert(await page.locator("#report").isHidden(), "report closed");
    assert(!page.url().includes("incident="), "address forgets the closed incident");
    assertEq(unexpected(problems, [404]), [], "problems besides the provoked 404");
    await context.close();
  }

  // 4. A bad end time; 5. live without one.
  {
    const { context, page, problems } = await openPage(browser);
    await page.goto(`${base}/?end=yesterday`);
    await waitReady(page);
    assert((await page.textContent("#share-error")).includes('not a time: "yesterday"'), "bad end time reported");
    const requests = [];
    page.on("request", (r) => { if (r.url().includes("/v1/traffic-share")) requests.push(new URL(r.url())); });
    const before = Date.now();
    await page.fill("#end", "");
    await page.click("#now");
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("updated"));
    assert(await page.locator("#live").isVisible(), "live without an end time");
    assert(requests.length >= 1, "traffic share asked again");
    const to = Date.parse(requests[requests.length - 1].searchParams.get("to"));
    assert(Math.abs(to - before) < 60000, `live range ends now: ${requests[requests.length - 1]}`);
    assertEq(problems, [], "problems with bad and live end times");
    await context.close();
  }

  // 6. A site really named "other" beside the folded rest, and an end time inside a minute.
  {
    const { context, page, problems } = await openPage(browser);
    const asked = [];
    const point = (requests, share) => [{ ts: "2026-11-01T00:05:00Z", requests, share }];
    await page.route(isApi("/v1/traffic-share"), (route) => {
      asked.push(new URL(route.request().url()));
      return route.fulfill(json(200, {
        by: "site", step: "1m", from: "2026-11-01T00:01:00Z", to: "2026-11-01T00:11:00Z", total: 1000,
        series: [
          { key: "shop.example", requests: 600, share: 0.6, points: point(600, 0.6) },
          { key: "other", requests: 300, share: 0.3, points: point(300, 0.3) },
          { key: "other", folded: true, requests: 100, share: 0.1, points: point(100, 0.1) },
        ],
      }));
    });
    await page.goto(`${base}/?end=2026-11-01T00:10:30Z&span=10m`);
    await waitReady(page);
    assertEq(await page.$$eval("#top-sites tbody tr", (trs) => trs.map((t) => t.dataset.site)), ["shop.example", "other"], "a site named other is a site");
    assert((await page.textContent("#top-sites tfoot")).includes("all other sites100"), `folded rest in the foot: ${await page.textContent("#top-sites tfoot")}`);
    assertEq(await page.$$eval("#site-list option", (os) => os.map((o) => o.value)), ["shop.example", "other"], "the site named other can be picked");
    // The share and top sites count the minutes that start in the range: the range shown is those.
    for (const u of asked) {
      assertEq([u.searchParams.get("from"), u.searchParams.get("to")], ["2026-11-01T00:01:00Z", "2026-11-01T00:11:00Z"], `range asked: ${u}`);
    }
    assert((await page.textContent("#share-note")).includes("2026-11-01 00:01:00 – 2026-11-01 00:11:00"), `share note: ${await page.textContent("#share-note")}`);
    assertEq(problems, [], "problems with a site named other");
    await context.close();
  }

  // 7. Regressions: another token's answers must not stay on screen; a refresh that fails says so
  // and leaves no stale chart; the incident list says how many it leaves out and keeps the active
  // ones; an answer of an unexpected shape is an error, not a frozen page; a site outside the top
  // sites can be typed; the rate chart's lines let clicks through to the incident bands.
  {
    const { context, page, problems } = await openPage(browser);
    const mine = incident({ incident_id: "mine.example-20261101T000500Z", site: "mine.example", status: "ended", end_ts: "2026-11-01T00:07:00Z", report: "/v1/incidents/mine.example-20261101T000500Z" });
    const old = incident({ incident_id: "old.example-20261031T230000Z", site: "old.example", start_ts: "2026-10-31T23:00:00Z", report: undefined });
    let shareAnswer = "good";
    const rateAsked = [];
    // A "hung" answer waits for release().
    let release = () => {};
    await page.route(isApi("/v1/traffic-share"), async (route) => {
      if (shareAnswer === "hung") await new Promise((resolve) => { const prev = release; release = () => { prev(); resolve(); }; });
      if (shareAnswer === "down") return route.fulfill(json(503, { error: "the backend is unavailable" }));
      if (shareAnswer === "odd") return route.fulfill(json(200, { unexpected: true }));
      return route.fulfill(json(200, {
        by: "site", step: "1m", from: "2026-11-01T00:00:00Z", to: "2026-11-01T00:10:00Z", total: 500,
        series: [{ key: "mine.example", requests: 500, share: 1, points: [{ ts: "2026-11-01T00:05:00Z", requests: 500, share: 1 }] }],
      }));
    });
    await page.route(isApi("/v1/incidents"), (route) => {
      const u = new URL(route.request().url());
      if (route.request().headers().authorization !== "Bearer token-a") return route.fulfill(json(200, { total: 0, incidents: [] }));
      if (u.searchParams.get("status") === "active") return route.fulfill(json(200, { total: 1, incidents: [old] }));
      return route.fulfill(json(200, { total: 139, incidents: [mine] }));
    });
    await page.route(isApi(mine.report), (route) => route.fulfill(route.request().headers().authorization === "Bearer token-a"
      ? json(200, { incident: { ...mine, signature: null, top_attackers: [{ ip: "198.51.100.9", requests: 77 }] }, timeline: [] })
      : json(404, { error: `no incident "${mine.incident_id}"` })));
    await page.route((url) => url.pathname.startsWith("/v1/sites/"), (route) => {
      rateAsked.push(decodeURIComponent(new URL(route.request().url()).pathname));
      const point = { ts: "2026-11-01T00:05:00Z", requests: 50, rps: 5, bytes: 0, status_2xx: 40, status_3xx: 0, status_4xx: 0, status_5xx: 10, cache_hits: 0, blocked: 0, distinct_clients: 3 };
      return route.fulfill(json(200, { site: "x", step: "10s", from: "2026-11-01T00:00:00Z", to: "2026-11-01T00:10:00Z", points: [point] }));
    });
    await page.goto(`${base}/?token=token-a&${range}&incident=${mine.incident_id}`);
    let ready = await waitReady(page);
    await page.waitForSelector(`#report[data-loaded="${mine.incident_id}"]`);
    assertEq(await page.$$eval("#incident-list tbody tr", (trs) => trs.map((t) => t.dataset.incident)), [mine.incident_id, old.incident_id], "the older active incident is listed too");
    assert((await page.textContent("#incidents-note")).startsWith("2 of 139 overlapping the range"), `incidents note: ${await page.textContent("#incidents-note")}`);
    assertEq(await page.textContent("#attackers tbody tr td"), "198.51.100.9", "token A's report shown");
    for (const line of [".rate-area", ".rate-line", ".rate-5xx"]) {
      assertEq(await page.$eval(`#rate-chart ${line}`, (e) => getComputedStyle(e).pointerEvents), "none", `${line} lets clicks through to the bands`);
    }

    // Another token: nothing of token A's answers stays.
    await page.click("#token-toggle");
    await page.fill("#token", "token-b");
    await page.click("#token-form button[type=submit]");
    ready = await waitReady(page, ready);
    await page.waitForFunction(() => document.getElementById("report-error").textContent !== "");
    assert(await page.locator("#report-body").isHidden(), "token A's report hidden under token B");
    assert(!(await page.textContent("main")).includes("198.51.100.9"), "token A's attacker gone");
    assertEq(await page.locator("#incident-list tbody tr").count(), 0, "token A's incidents gone");

    // Regression: a service that does not answer showed "loading…" until the page gave up
    // (150 s); after a few seconds the status says how long it has waited.
    shareAnswer = "hung";
    await page.click("#refresh");
    await page.waitForFunction(() => /no answer from the query service for \d+ s/.test(document.getElementById("status").textContent), null, { timeout: 15000 });
    shareAnswer = "good";
    release();
    ready = await waitReady(page, ready);
    assert((await page.textContent("#status")).includes("updated"), `status once answered: ${await page.textContent("#status")}`);

    // A failing refresh says so and empties what failed; an answer of another shape is an error.
    shareAnswer = "down";
    await page.click("#refresh");
    ready = await waitReady(page, ready);
    assert((await page.textContent("#status")).includes("update failed at"), `status after a failed refresh: ${await page.textContent("#status")}`);
    assertEq(await page.textContent("#share-note"), "", "no stale share total");
    assertEq(await page.locator("#share-chart path.area").count(), 0, "no stale share chart");
    shareAnswer = "odd";
    await page.click("#refresh");
    ready = await waitReady(page, ready);
    assert((await page.textContent("#share-error")).includes("unexpected answer"), `odd answer: ${await page.textContent("#share-error")}`);
    shareAnswer = "good";
    await page.click("#refresh");
    ready = await waitReady(page, ready);
    assert((await page.textContent("#status")).includes("updated"), `status after recovery: ${await page.textContent("#status")}`);

    // Any site can be typed into the rate chart's site field.
    await page.fill("#site", "quiet-corner.example");
    await page.press("#site", "Enter");
    await page.waitForFunction(() => location.search.includes("site=quiet-corner.example"));
    await page.waitForFunction(() => document.getElementById("rate-chart").dataset.src?.includes("quiet-corner.example"));
    assert(rateAsked.includes("/v1/sites/quiet-corner.example/rates"), `rates asked: ${rateAsked}`);
    assertEq(unexpected(problems, [503, 404]), [], "problems besides the provoked errors");
    await context.close();
  }

  // 8. An end time that is not RFC 3339 or unix seconds is refused (a browser would read it in
  // its own time zone: the same link would show other times to other viewers).
  {
    const { context, page, problems } = await openPage(browser);
    await page.goto(`${base}/?end=${encodeURIComponent("2026/11/01 00:20")}`);
    let ready = await waitReady(page);
    assert((await page.textContent("#share-error")).includes('not a time: "2026/11/01 00:20"'), `refused: ${await page.textContent("#share-error")}`);
    const asked = [];
    page.on("request", (r) => { if (r.url().includes("/v1/traffic-share")) asked.push(new URL(r.url()).searchParams.get("to")); });
    for (const [end, want] of [["2026-11-01T00:20", "2026-11-01T00:20:00Z"], ["2026-11-01 00:20:00+01:00", "2026-10-31T23:20:00Z"], ["1793492400", "2026-11-01T00:20:00Z"]]) {
      asked.length = 0;
      await page.fill("#end", end);
      await page.press("#end", "Enter");
      ready = await waitReady(page, ready);
      assertEq(await page.textContent("#share-error"), "", `${end} taken`);
      assert(asked.includes(want), `${end}: asked ${asked}`);
    }
    assertEq(problems, [], "problems with end times");
    await context.close();
  }
});
