// Drives Sigil's log explorer in Debian's Chromium (headless, through playwright-core) for
// tests/tests/explorer.rs. Every request the page makes outside the server under test is
// refused and counted; a test double in front of the server (a proxy started here) serves
// Rekor v1 entries with one inclusion-proof hash altered.
//
// Usage: node explorer.mjs <server URL> <screenshot dir> <artifact file> <artifact sha256> <identity>
//          <an earlier Rekor v1 checkpoint>
// Prints one JSON object: what each step saw.

import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

// With `--reader-token TOKEN <server URL> <screenshot dir>`: a log with authenticated reads;
// the page must say a credential is needed, then read with the token typed into it.
if (process.argv[2] === '--reader-token') {
  const [, token, url, dir] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  const res = {};
  const cardsSettled = () => page.waitForFunction(() => document.querySelectorAll('section.card').length >= 3
    && [...document.querySelectorAll('section.card')].every((c) => c.querySelector('table, .error')), null, { timeout: 20000 });
  try {
    await page.goto(`${url}/ui/`);
    await cardsSettled();
    res.without = await page.locator('section.card .error').allTextContents();
    res.credentialOpen = await page.locator('#credential').evaluate((d) => d.open);
    await page.getByLabel('Token for logs that require one (kept for this tab only)').fill(token);
    await page.getByRole('button', { name: 'Use' }).click();
    await page.waitForFunction(() => document.querySelectorAll('section.card table').length >= 3, null, { timeout: 20000 });
    res.with = await page.locator('section.card').evaluateAll((cs) => cs.map((c) => c.textContent));
    await page.screenshot({ path: path.join(dir, 'reader-token.png'), fullPage: true });
  } catch (e) {
    res.error = String(e && e.stack || e);
  }
  await browser.close();
  console.log(JSON.stringify(res));
  process.exit(0);
}

const [base, shots, artifact, digest, identity, earlier] = process.argv.slice(2);
const out = { steps: [], external: [], consoleErrors: [] };
const step = (name, data) => out.steps.push({ name, ...data });

// The test double: everything passes through, except that entry reads get a wrong proof hash.
const proxy = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const headers = { ...req.headers };
  delete headers.host;
  const upstream = await fetch(base + req.url, {
    method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined, redirect: 'manual',
  });
  let body = Buffer.from(await upstream.arrayBuffer());
  if (req.method === 'GET' && req.url.startsWith('/api/v1/log/entries') && upstream.ok) {
    const j = JSON.parse(body.toString());
    for (const e of Object.values(j)) {
      const hashes = e.verification.inclusionProof.hashes;
      if (hashes.length) hashes[0] = (hashes[0][0] === '0' ? '1' : '0') + hashes[0].slice(1);
    }
    body = Buffer.from(JSON.stringify(j));
  }
  const keep = {};
  for (const [k, v] of upstream.headers) {
    if (!['content-encoding', 'content-length', 'transfer-encoding', 'connection'].includes(k)) keep[k] = v;
  }
  res.writeHead(upstream.status, keep);
  res.end(body);
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
const tampered = `http://127.0.0.1:${proxy.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const context = await browser.newContext();
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(base) || url.startsWith(tampered) || url.startsWith('data:')) return route.continue();
  out.external.push(url);
  return route.abort();
});
const page = await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
page.on('pageerror', (e) => out.consoleErrors.push(String(e)));

const verdict = async (p) => {
  const v = p.locator('.verdict[data-verified]').first();
  await v.waitFor({ timeout: 20000 });
  return { verified: await v.getAttribute('data-verified'), text: await v.textContent() };
};
const shot = (p, name) => p.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
const search = async (q) => {
  await page.getByLabel('Search the logs').fill(q);
  await page.getByLabel('Search the logs').press('Enter');
  await page.locator('#main h2').filter({ hasText: 'Results for' }).waitFor({ timeout: 20000 });
  return page.locator('ul.results a').evaluateAll((as) => as.map((a) => ({ href: a.getAttribute('href'), text: a.textContent })));
};

try {
  // The log page: `/` leads to the explorer; each log's checkpoint verified, newest entries.
  await page.goto(`${base}/`);
  await page.locator('#log-v1').waitFor({ timeout: 20000 });
  await page.locator('section.card table').first().waitFor({ timeout: 20000 });
  await page.waitForFunction(() => document.querySelectorAll('section.card').length >= 3 && [...document.querySelectorAll('section.card')].every((c) => c.querySelector('table, .error')), null, { timeout: 20000 });
  const cards = await page.locator('section.card').evaluateAll((cs) => cs.map((c) => ({
    title: c.querySelector('h3').textContent, text: c.textContent, error: c.querySelector('.error')?.textContent || null,
    entries: [...c.querySelectorAll('tbody a')].map((a) => a.getAttribute('href')),
  })));
  step('home', { url: page.url(), cards });
  await shot(page, 'home');

  // The second visit checks the log grew consistently from the checkpoint remembered.
  await page.reload();
  await page.waitForFunction(() => [...document.querySelectorAll('section.card')].length >= 3 && [...document.querySelectorAll('section.card')].every((c) => c.querySelector('table, .error')), null, { timeout: 20000 });
  step('home again', { text: await page.locator('#main').textContent() });

  // An earlier checkpoint pasted in: consistent with the current one; with its root altered,
  // its signature no longer verifies.
  const paste = async (text) => {
    const form = page.locator('form.consistency[data-log="v1"]');
    await form.locator('textarea').fill(text);
    await form.getByRole('button', { name: 'Check' }).click();
    const v = form.locator('.result .verdict');
    await v.waitFor({ timeout: 20000 });
    return { verified: await v.getAttribute('data-verified'), text: await v.textContent() };
  };
  const lines = earlier.split('\n');
  const root = Buffer.from(lines[2], 'base64');
  root[0] ^= 1;
  lines[2] = root.toString('base64');
  step('pasted checkpoint', { genuine: await paste(earlier), altered: await paste(lines.join('\n')) });

  // By artifact SHA-256: typed, and from a file hashed in the browser.
  const bySha = await search(digest);
  step('search sha256', { links: bySha });
  await page.goto(`${base}/ui/#/`);
  await page.locator('#log-v1').waitFor({ timeout: 20000 });
  await page.setInputFiles('#file', artifact);
  await page.locator('#main h2').filter({ hasText: 'Results for' }).waitFor({ timeout: 20000 });
  step('search upload', { query: await page.getByLabel('Search the logs').inputValue(), links: await page.locator('ul.results a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))) });

  // Open each entry found: Rekor v1 by UUID, Rekor v2 by index.
  for (const l of bySha) {
    await page.goto(`${base}/ui/${l.href}`);
    const v = await verdict(page);
    const facts = await page.locator('#main dl').first().evaluate((d) => Object.fromEntries([...d.querySelectorAll('dt')].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
    const checks = await page.locator('ol.steps li').allTextContents();
    const certs = await page.locator('.card h3').allTextContents();
    step('entry', { href: l.href, ...v, facts, checks, certs });
    await shot(page, `entry-${l.href.split('/')[1]}`);
  }

  // By UUID, by index, by identity.
  const v1 = out.steps.find((s) => s.name === 'entry' && s.href.startsWith('#/v1/'));
  if (v1) {
    step('search uuid', { links: await search(v1.facts.UUID) });
    step('search index', { links: await search(v1.facts['Log index']) });
  }
  step('search identity', { links: await search(identity) });

  // A certificate in the CT log, from the log page's newest entries.
  const ct = cards.find((c) => c.title.includes('Certificate Transparency'));
  if (ct && ct.entries.length) {
    await page.goto(`${base}/ui/${ct.entries[0]}`);
    const v = await verdict(page);
    step('ct entry', { href: ct.entries[0], ...v, certs: await page.locator('.card h3').allTextContents(), checks: await page.locator('ol.steps li').allTextContents() });
    await shot(page, 'entry-ct');
  }

  // First render of an entry page, in a fresh page: navigation start to the verdict.
  if (v1) {
    const fresh = await context.newPage();
    const times = [];
    for (let i = 0; i < 5; i++) {
      await fresh.goto('about:blank');
      await fresh.goto(`${base}/ui/${v1.href}`);
      await verdict(fresh);
      times.push(Number(await fresh.evaluate(() => document.documentElement.dataset.renderMs)));
    }
    step('first render', { ms: times });
    await fresh.close();

    // The test double's altered proof.
    await page.goto(`${tampered}/ui/${v1.href}`);
    step('tampered', await verdict(page));
    await shot(page, 'entry-tampered');
  }

  // Keyboard: the search box is reachable with Tab and submits with Enter.
  await page.goto(`${base}/ui/#/`);
  await page.locator('#log-v1').waitFor({ timeout: 20000 });
  let focused = '';
  for (let i = 0; i < 5 && focused !== 'q'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  }
  await page.keyboard.type(identity);
  await page.keyboard.press('Enter');
  await page.locator('#main h2').filter({ hasText: 'Results for' }).waitFor({ timeout: 20000 });
  step('keyboard', { focused, links: await page.locator('ul.results a').count() });

  // A phone-sized screen: nothing wider than the screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : (out.external.push(route.request().url()), route.abort())));
  const p2 = await phone.newPage();
  await p2.goto(`${base}/ui/${v1 ? v1.href : '#/'}`);
  await verdict(p2).catch(() => null);
  step('phone', await p2.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth })));
  await shot(p2, 'phone');
} catch (e) {
  out.error = String(e && e.stack || e);
  await shot(page, 'error').catch(() => {});
}
await browser.close();
proxy.close();
console.log(JSON.stringify(out));
