// Drives the analyser's dashboard in headless Chromium, as an analyst would. Run by
// crates/analyser/tests/api/dashboard.rs, which starts the services and checks the outcome
// through the API too:
//
//   node dashboard.mjs <analyser url> <user> <password> <flood id> <typo id> <screenshot dir> <viewer>
//
// On a desktop-sized page (1400x1000) it charts the flood (an incident on the newest step)
// and reads back what was drawn: the metric, the normal band and the incident's shading,
// sampled from the canvas's own pixels; then the price typo, whose chart must plot the
// price level; then approves the flood and waits for its row to say so; silences the
// typo's series for a day from its row and waits for the silence in the silences list;
// and sets the `shop` dataset's alarm threshold to 4 in the datasets form. On a
// phone-sized page (390x844) it checks that Approve is reachable without scrolling
// sideways, then dismisses the typo as expected. Signed in as the viewer (same password),
// it reads the page and counts the buttons it is offered. It saves a screenshot of each
// view. Any failed step exits non-zero with the reason (and a
// screenshot ending in -failed.png); page errors, console errors and failed requests are
// reported in the output's "problems".
import { chromium } from "playwright-core";

const [url, user, password, floodId, typoId, dir, viewer] = process.argv.slice(2);
if (!viewer) {
  console.error("usage: node dashboard.mjs <url> <user> <password> <flood id> <typo id> <screenshot dir> <viewer>");
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

async function open(viewport, username = user, path = "/") {
  const context = await browser.newContext({
    httpCredentials: { username, password },
    viewport,
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
  const response = await page.goto(new URL(path, url).href, { waitUntil: "load" });
  if (response.status() !== 200) throw new Error(`GET / answered ${response.status()}`);
  return page;
}

/** Charts the series of incident `id` from its row, and reads back what the canvas shows. */
async function chartOf(id) {
  const row = page.locator(`tr[data-anomaly-id="${id}"]`);
  await row.waitFor();
  const rowText = await row.innerText();
  await page.evaluate(() => (document.querySelector("#chart-status").textContent = ""));
  await row.locator("button.show").click();
  await page.waitForFunction(() => /shaded/.test(document.querySelector("#chart-status").textContent));
  const chart = await page.evaluate((id) => {
    const u = window.pulseChart;
    const canvas = document.querySelector("#chart canvas");
    const ctx = canvas.getContext("2d");
    const ratio = canvas.width / canvas.getBoundingClientRect().width;
    // The colour of the canvas at CSS pixel (x, y) of the plot area.
    const pixel = (x, y) => [...ctx.getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data];
    const shaded = JSON.parse(document.querySelector("#chart").dataset.shaded || "[]");
    const mark = shaded.find((m) => String(m.id) === String(id)) || null;
    // The incident's shading, sampled near the top of the plot where no line runs.
    const shade = mark ? pixel((mark.x0 + mark.x1) / 2, mark.top + 4) : null;
    // The band: the middle of the range between low and high, at steps away from any
    // incident, where neither line passes.
    const [xs, values, , lows, highs] = u.data;
    let band = null;
    for (let i = Math.floor(xs.length / 3); i < xs.length && !band; i++) {
      if (lows[i] === null || highs[i] === null) continue;
      const x = u.valToPos(xs[i], "x");
      const cx = x + u.bbox.left / ratio;
      if (shaded.some((m) => cx >= m.x0 - 4 && cx <= m.x1 + 4)) continue;
      const yHigh = u.valToPos(highs[i], "y");
      const yLow = u.valToPos(lows[i], "y");
      const yValue = u.valToPos(values[i], "y");
      if (yLow - yHigh < 12) continue;
      // A quarter of the way in from whichever edge is further from the value line.
      const y = Math.abs(yValue - yHigh) > Math.abs(yValue - yLow) ? yHigh + (yLow - yHigh) / 4 : yLow - (yLow - yHigh) / 4;
      band = { at: xs[i], color: pixel(cx, y + u.bbox.top / ratio) };
    }
    const last = xs.length - 1;
    return {
      metric: document.querySelector("#chart").dataset.metric,
      banded: Number(document.querySelector("#chart").dataset.banded),
      mark,
      shade,
      band,
      plotRight: (u.bbox.left + u.bbox.width) / ratio,
      newestValue: values[last],
      yMax: u.scales.y.max,
      // The y axis's tick labels as drawn (uPlot keeps the last ones it drew).
      yTicks: (u.axes[1]._values || []).join(" "),
      marks: [...document.querySelectorAll("#marks li")].map((li) => li.textContent),
      status: document.querySelector("#chart-status").textContent,
    };
  }, id);
  return { rowText, chart };
}

try {
  await open({ width: 1400, height: 1000 });
  const flood = await chartOf(floodId);
  await page.screenshot({ path: `${dir}/dashboard-flood.png`, fullPage: true });
  const typo = await chartOf(typoId);
  await page.screenshot({ path: `${dir}/dashboard-level.png`, fullPage: true });

  // Approve the flood; the row must say so without a reload.
  const row = page.locator(`tr[data-anomaly-id="${floodId}"]`);
  await row.locator("button.approve").click();
  await page.waitForFunction(
    (id) => document.querySelector(`tr[data-anomaly-id="${id}"] .status`).textContent.startsWith("approved"),
    floodId,
  );
  const status = await row.locator(".status").innerText();
  const buttonsLeft = await row.locator(".actions > button").count();

  // Silence the typo's series for a day from its row; the silences list shows it.
  const typoRow = page.locator(`tr[data-anomaly-id="${typoId}"]`);
  await typoRow.locator("select.silence-for").selectOption("1d");
  await typoRow.locator("button.silence").click();
  await page.waitForFunction(
    (id) => /^silenced for 1d/.test(document.querySelector(`tr[data-anomaly-id="${id}"] .status`).textContent),
    typoId,
  );
  const silenced = await typoRow.locator(".status").innerText();
  const silenceRow = page.locator("#silences tbody tr", { hasText: "shop / price / 4" });
  await silenceRow.waitFor();
  const silenceListed = await silenceRow.innerText();

  // Raise the shop dataset's alarm threshold in the datasets form.
  await page.locator('#datasets tr[data-dataset="shop"] button.edit-dataset').click();
  await page.locator('#dataset-form input[name="alarm_multiplier"]').fill("4");
  await page.locator("#dataset-form button[type=submit]").click();
  await page.waitForFunction(() => /^shop saved/.test(document.querySelector("#datasets-status").textContent));
  const datasetSaved = await page.locator("#datasets-status").innerText();
  const datasetListed = await page.locator('#datasets tr[data-dataset="shop"]').innerText();
  await page.screenshot({ path: `${dir}/dashboard-manage.png`, fullPage: true });

  // A phone: the typo's Approve is on screen without scrolling sideways.
  await open({ width: 390, height: 844 });
  const phoneRow = page.locator(`tr[data-anomaly-id="${typoId}"]`);
  await phoneRow.scrollIntoViewIfNeeded();
  const approve = await phoneRow.locator("button.approve").boundingBox();
  const phone = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    lastPull: document.querySelector("#last-pull").getBoundingClientRect().right,
  }));
  phone.approve = approve;
  await page.screenshot({ path: `${dir}/dashboard-phone.png`, fullPage: false });
  // Dismiss the typo as expected, on the phone.
  await phoneRow.locator("button.expected").click();
  await page.waitForFunction(
    (id) => document.querySelector(`tr[data-anomaly-id="${id}"] .status`).textContent.startsWith("dismissed"),
    typoId,
  );
  const expected = await phoneRow.locator(".status").innerText();

  // A viewer reads everything (every verdict listed) and is offered no verdict, silence
  // or dataset button.
  await open({ width: 1400, height: 1000 }, viewer, "/?status=any");
  await page.locator("#silences tbody tr").first().waitFor();
  await page.locator('#datasets tr[data-dataset="shop"]').waitFor();
  const viewerSees = await page.evaluate(() => ({
    rows: document.querySelectorAll("#anomalies tbody tr").length,
    buttons: [...document.querySelectorAll("#anomalies .actions button, #silences button, #datasets button, #dataset-form:not([hidden])")].map(
      (b) => b.className || b.id,
    ),
    silences: document.querySelectorAll("#silences tbody tr").length,
    role: document.body.dataset.role,
  }));
  await page.screenshot({ path: `${dir}/dashboard-viewer.png`, fullPage: true });

  console.log(
    JSON.stringify({
      flood, typo, status, buttonsLeft, silenced, silenceListed, datasetSaved, datasetListed,
      phone, expected, viewerSees, problems,
    }),
  );
} catch (error) {
  // What the page looked like when it went wrong, next to where the screenshots go.
  const failed = `${dir}/dashboard-failed.png`;
  await page?.screenshot({ path: failed, fullPage: true }).catch(() => {});
  console.error(`problems so far: ${JSON.stringify(problems)}; page at failure: ${failed}`);
  throw error;
} finally {
  await browser.close();
}
