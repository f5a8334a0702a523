// Drives Debian's Chromium (headless) through the OHIF viewer for tests/ohif_browser.rs.
//
// Usage: node driver.js '<json>' with
//   { "viewer": "http://127.0.0.1:PORT", "study": "<StudyInstanceUID>", "mode": "view" | "signin-error" | "blocked",
//     "screenshot": "/path/out.png", "chromium": "/usr/bin/chromium", "timeoutMs": 90000 }
// playwright-core comes from NODE_PATH (the test installs a pinned version outside the repository).
// Prints one JSON line: what the page showed, the red pixels of the viewport, the console, the requests
// to other origins (method, URL, status), and the time to the first red pixel.
'use strict';
const { chromium } = require('playwright-core');

const args = JSON.parse(process.argv[2]);
const timeout = args.timeoutMs || 90000;

function countRed(data) {
  let red = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 200 && data[i + 1] < 60 && data[i + 2] < 60) red++;
  }
  return red;
}

(async () => {
  const out = { console: [], requests: [], failed: [], page: '', url: '' };
  const t0 = Date.now();
  const browser = await chromium.launch({
    executablePath: args.chromium || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    const viewerOrigin = new URL(args.viewer).origin;
    page.on('console', (m) => out.console.push(`[${m.type()}] ${m.text().slice(0, 300)}`));
    page.on('pageerror', (e) => out.console.push(`[pageerror] ${String(e).slice(0, 300)}`));
    ctx.on('request', (r) => {
      if (!r.url().startsWith(viewerOrigin)) out.requests.push({ m: r.method(), url: r.url().slice(0, 600) });
    });
    ctx.on('response', (r) => {
      const x = out.requests.find((q) => q.url === r.url().slice(0, 600) && q.status === undefined);
      if (x) x.status = r.status();
    });
    ctx.on('requestfailed', (r) => out.failed.push(`${r.method()} ${r.url().slice(0, 200)} ${r.failure() && r.failure().errorText}`));

    await page.goto(`${args.viewer}/viewer?StudyInstanceUIDs=${args.study}`, { waitUntil: 'load', timeout });
    // OHIF sends the browser to the sign-in page: the button, or an error on the page.
    await page.waitForSelector('#signin, #msg', { timeout });
    if (await page.$('#msg')) {
      out.signinError = (await page.textContent('#msg')).trim();
    } else {
      out.signinPage = true;
      await page.click('#signin');
    }
    if (args.mode === 'view') {
      // Wait for the red triangle in the viewport's canvas.
      const deadline = Date.now() + timeout;
      let red = 0;
      while (Date.now() < deadline) {
        red = await page.evaluate(() => {
          let n = 0;
          for (const c of document.querySelectorAll('.cornerstone-viewport-element canvas, [data-viewport-uid] canvas')) {
            try {
              const x = c.getContext('2d');
              if (!x || !c.width || !c.height) continue;
              const d = x.getImageData(0, 0, c.width, c.height).data;
              for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 60 && d[i + 2] < 60) n++;
            } catch (e) { /* a WebGL canvas has no 2d context */ }
          }
          return n;
        }).catch(() => 0);
        if (red > 1000) break;
        await page.waitForTimeout(500);
      }
      out.canvasRed = red;
      out.firstRedMs = red > 1000 ? Date.now() - t0 : null;
      // The canvas can hold the image a while before the page shows it (a software rasterizer on a
      // busy machine): the viewport is shot a few times, a second apart, and the test reads them all.
      const vp = await page.$('.cornerstone-viewport-element, [data-viewport-uid]');
      out.shots = [];
      for (let k = 0; k < 5; k++) {
        await page.waitForTimeout(1000);
        const path = k === 0 ? args.screenshot : args.screenshot.replace(/\.png$/, `-${k}.png`);
        if (vp) {
          await vp.screenshot({ path });
          out.viewportShot = true;
        } else {
          await page.screenshot({ path });
        }
        out.shots.push(path);
      }
    } else if (args.mode === 'blocked') {
      // Signed in: OHIF's requests to the service are blocked; wait for its message.
      await page.waitForFunction(() => /not available|blocked|Error/i.test(document.body.innerText), null, { timeout })
        .catch(() => {});
      await page.waitForTimeout(2000);
      await page.screenshot({ path: args.screenshot });
    } else {
      await page.screenshot({ path: args.screenshot });
    }
    out.url = page.url();
    out.page = (await page.evaluate(() => document.body.innerText)).slice(0, 2000);
  } catch (e) {
    out.error = String(e).slice(0, 500);
  } finally {
    out.ms = Date.now() - t0;
    await browser.close();
    process.stdout.write(JSON.stringify(out) + '\n');
  }
})();
