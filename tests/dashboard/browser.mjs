// Shared by the dashboard scripts: Debian's Chromium driven by playwright-core (installed by
// `bash deploy/dev/install.sh` into $EDGELENS_NODE_MODULES; no browser download), the page's
// console and network problems collected, small assertion helpers.

import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** Every page's problem list, printed when a run fails. */
const allProblems = [];

export function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set`);
  }
  return v;
}

function playwright() {
  const modules = env("EDGELENS_NODE_MODULES");
  try {
    return require(path.join(modules, "playwright-core"));
  } catch (e) {
    throw new Error(`playwright-core not found in ${modules} (run: bash deploy/dev/install.sh): ${e.message}`);
  }
}

/** Headless Chromium; the flags keep it off the network (this machine refuses outside connections). */
export async function launch() {
  const { chromium } = playwright();
  return chromium.launch({
    executablePath: env("EDGELENS_CHROMIUM", "/usr/bin/chromium"),
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 30000,
  });
}

/**
 * A page whose console errors, uncaught exceptions, failed requests and HTTP error answers are
 * recorded in `problems` (each a string). `allow(text)` returning true excuses one.
 */
export async function openPage(browser, { width = 1360, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, timezoneId: "America/New_York", locale: "de-DE" });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  allProblems.push(problems);
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "assert") problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.stack || e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
  return { context, page, problems };
}

export function assert(cond, message) {
  if (!cond) throw new Error("assertion failed: " + message);
}

export function assertEq(actual, expected, message) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`assertion failed: ${message}\n  expected: ${e}\n  actual:   ${a}`);
}

/** GET a JSON answer of the query service directly (not through the page). */
export async function api(base, pathAndQuery) {
  const res = await fetch(new URL(pathAndQuery, base));
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${pathAndQuery}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Wait until the page finished a full refresh after `previous` (the body's data-ready counter). */
export async function waitReady(page, previous = 0) {
  await page.waitForFunction((p) => Number(document.body.dataset.ready || 0) > p, previous);
  return Number(await page.evaluate(() => document.body.dataset.ready));
}

/** Run `main`, print "ok" or the error, always close the browser; exits non-zero on failure. */
export async function run(main) {
  const deadline = setTimeout(() => {
    console.error("dashboard test: timed out after 90 s");
    process.exit(3);
  }, 90000);
  let browser;
  let code = 0;
  try {
    browser = await launch();
    await main(browser);
    console.log("ok");
  } catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    const seen = allProblems.flat();
    if (seen.length) console.error("browser problems seen:\n  " + seen.join("\n  "));
    code = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    clearTimeout(deadline);
  }
  process.exit(code);
}
