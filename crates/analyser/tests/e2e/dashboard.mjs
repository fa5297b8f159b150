// Drives the analyser's dashboard in headless Chromium, as an analyst would. Run by
// crates/analyser/tests/api/dashboard.rs, which starts the services and checks the outcome
// through the API too:
//
//   node dashboard.mjs <analyser url> <user> <password> <anomaly id> <screenshot.png>
//
// It loads the page, waits for the chart's canvas to be drawn, charts the series of the
// given anomaly, approves it, waits for its row to say so, and saves a screenshot. Any
// failed step exits non-zero with the reason (and a screenshot ending in -failed.png); page
// errors, console errors and failed requests are reported in the output's "problems".
import { chromium } from "playwright-core";

const [url, user, password, anomalyId, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error("usage: node dashboard.mjs <url> <user> <password> <anomaly id> <screenshot.png>");
  process.exit(2);
}
const TIMEOUT_MS = 30_000;

const problems = [];
let page = null;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-quic",
    "--disable-component-update",
    "--disable-sync",
  ],
  timeout: TIMEOUT_MS,
});
try {
  const context = await browser.newContext({
    httpCredentials: { username: user, password },
    viewport: { width: 1280, height: 900 },
  });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
  );

  const response = await page.goto(url, { waitUntil: "load" });
  if (response.status() !== 200) throw new Error(`GET / answered ${response.status()}`);

  // The flood's row, then its series on the chart.
  const row = page.locator(`tr[data-anomaly-id="${anomalyId}"]`);
  await row.waitFor();
  const rowText = await row.innerText();
  await row.locator("button.show").click();
  await page.waitForFunction(() => /anomal(y|ies) shaded/.test(document.querySelector("#chart-status").textContent));
  const chart = await page.evaluate(() => {
    const canvas = document.querySelector("#chart canvas");
    if (!canvas) return null;
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
    return {
      width: canvas.width,
      height: canvas.height,
      drawn,
      status: document.querySelector("#chart-status").textContent,
      marks: [...document.querySelectorAll("#marks li")].map((li) => li.textContent),
      query: location.search,
    };
  });
  if (!chart) throw new Error("no canvas in #chart");

  // Approve it; the row must say so without a reload.
  await row.locator("button.approve").click();
  await page.waitForFunction(
    (id) => document.querySelector(`tr[data-anomaly-id="${id}"] .status`).textContent.startsWith("approved"),
    anomalyId,
  );
  const status = await row.locator(".status").innerText();
  const buttonsLeft = await row.locator(".actions button").count();
  await page.screenshot({ path: screenshot, fullPage: true });

  console.log(JSON.stringify({ rowText, chart, status, buttonsLeft, problems }));
} catch (error) {
  // What the page looked like when it went wrong, next to where the screenshot goes.
  const failed = screenshot.replace(/\.png$/, "") + "-failed.png";
  await page?.screenshot({ path: failed, fullPage: true }).catch(() => {});
  console.error(`problems so far: ${JSON.stringify(problems)}; page at failure: ${failed}`);
  throw error;
} finally {
  await browser.close();
}
