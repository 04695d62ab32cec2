// The GraphiQL playground as its users meet it: arcbase's page at GET /graphql in headless
// Chromium (driven by Playwright), with the page's own script and style URLs answered from the
// pinned npm packages of the same versions (this machine has no CDN). Checks:
//
//   the page loads GraphiQL, introspects the schema, and runs a query typed into its editor;
//   a subscription started with the run button shows each upsert made elsewhere as it happens
//   (Hypi's `subscribe { Author { name } }`, over the page's own graphql-ws WebSocket);
//   the stop button ends it: the socket sends `complete` and later upserts show nothing.
//
//   node playground.mjs http://127.0.0.1:PORT/graphql      (ARCBASE_CHROMIUM: the browser,
//                                                          default /usr/bin/chromium)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const url = process.argv[2] || process.env.ARCBASE_URL;
if (!url) {
  console.error('usage: node playground.mjs http://HOST:PORT/graphql');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
// The installed packages: the nearest node_modules at or above this script (the test copies the
// scripts into a folder beside the cached install).
let modules = here;
while (!fs.existsSync(path.join(modules, 'node_modules', 'graphiql')) && path.dirname(modules) !== modules) {
  modules = path.dirname(modules);
}
modules = path.join(modules, 'node_modules');
const executablePath = process.env.ARCBASE_CHROMIUM || '/usr/bin/chromium';

const timer = setTimeout(() => {
  console.error('playground: no verdict in 150 s');
  process.exit(1);
}, 150_000);

let failures = 0;
async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function post(query, variables) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}
const upsertAuthor = (name) =>
  post('mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }', { v: { Author: [{ name }] } }).then(
    (d) => d.upsert[0].id,
  );

/** `https://unpkg.com/<package>@<version>/<file>` → the installed package's file, refusing a
 *  version other than the one installed (the page and package.json must pin the same). */
function cdnFile(requestUrl) {
  const { pathname } = new URL(requestUrl);
  const m = pathname.match(/^\/((?:@[^/]+\/)?[^/@]+)@([^/]+)\/(.+)$/);
  if (!m) throw new Error(`not a package URL: ${requestUrl}`);
  const [, name, version, file] = m;
  const pkg = JSON.parse(fs.readFileSync(path.join(modules, name, 'package.json'), 'utf8'));
  if (pkg.version !== version) {
    throw new Error(`the page asks for ${name}@${version}, the tests pin ${pkg.version}: update tests/clients/browser/package.json`);
  }
  const full = path.join(modules, name, file);
  const type = file.endsWith('.css') ? 'text/css' : 'application/javascript';
  return { body: fs.readFileSync(full), contentType: type };
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const context = await browser.newContext();
const page = await context.newPage();
const served = [];
const pageErrors = [];
const foreign = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.on('console', (m) => {
  if (m.type() === 'error') pageErrors.push(m.text());
});
await context.route('**/*', async (route) => {
  const req = route.request();
  const u = new URL(req.url());
  if (u.hostname === 'unpkg.com') {
    try {
      const file = cdnFile(req.url());
      served.push(u.pathname);
      return route.fulfill({ status: 200, body: file.body, contentType: file.contentType });
    } catch (e) {
      pageErrors.push(String(e));
      return route.abort();
    }
  }
  if (u.host === new URL(url).host) return route.continue();
  foreign.push(req.url());
  return route.abort();
});

// Frames on the page's subscription socket, as the browser sent and received them.
const frames = [];
page.on('websocket', (ws) => {
  ws.on('framesent', (f) => frames.push({ dir: 'sent', data: JSON.parse(f.payload) }));
  ws.on('framereceived', (f) => frames.push({ dir: 'received', data: JSON.parse(f.payload) }));
});
async function waitFor(what, predicate, ms = 15_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const pane = await responseText().catch((e) => `(no response pane: ${e})`);
  throw new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(frames)}; response pane: ${pane}`);
}

/** Replace the query editor's text, as typing would (GraphiQL 3's editors are CodeMirror 5). */
async function setQuery(text) {
  await page.evaluate((t) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(t), text);
  // GraphiQL parses the editor's text a moment after each change (debounced), as after typing.
  await new Promise((r) => setTimeout(r, 400));
}
const responseText = () =>
  page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());
/** Wait until the response pane's text contains `text`. */
const paneShows = (text, timeout) =>
  page.waitForFunction(
    (t) => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue().includes(t),
    text,
    { timeout },
  );
const runButton = () => page.locator('button.graphiql-execute-button');

await check('the page loads GraphiQL and introspects the schema', async () => {
  const introspected = page.waitForResponse(
    (r) => r.url() === url && r.request().method() === 'POST' && (r.request().postData() || '').includes('__schema'),
  );
  const res = await page.goto(url);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /text\/html/);
  const schema = await introspected;
  assert.equal(schema.status(), 200);
  const body = await schema.json();
  assert.ok(body.data.__schema.subscriptionType, 'the schema has a subscription type');
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor({ timeout: 20_000 });
  for (const want of ['/graphiql@', '/react@', '/react-dom@']) {
    assert.ok(served.some((p) => p.startsWith(want)), `the page loaded ${want}: ${served}`);
  }
  assert.deepEqual(foreign, [], 'no request leaves for another host');
});

await check('a query typed into the editor answers in the response pane', async () => {
  const name = `Query-${Date.now()}`;
  await upsertAuthor(name);
  await setQuery(`{ find(type: Author, arcql: "name = '${name}'") { edges { node { ... on Author { name } } } } }`);
  await runButton().click();
  await paneShows(name, 15_000);
  const shown = JSON.parse(await responseText());
  assert.deepEqual(shown.data.find.edges, [{ node: { name } }]);
});

await check('a subscription shows each upsert as it arrives, and stops', async () => {
  await setQuery('subscription { subscribe { Author { name } } }');
  const before = frames.length;
  await runButton().click();
  await waitFor('connection_ack', () => frames.some((f) => f.dir === 'received' && f.data.type === 'connection_ack'));
  await waitFor('the subscribe message', () =>
    frames.slice(before).some((f) => f.dir === 'sent' && f.data.type === 'subscribe'),
  );
  const subId = frames.slice(before).find((f) => f.dir === 'sent' && f.data.type === 'subscribe').data.id;
  // The server joins the feed once it has read the subscribe message; a first upsert may race
  // that, so keep writing until one shows, then check each of the next ones in turn.
  const stamp = Date.now();
  let shownFirst = false;
  for (let i = 0; i < 20 && !shownFirst; i++) {
    const warm = `Warm-${stamp}-${i}`;
    await upsertAuthor(warm);
    shownFirst = await paneShows(warm, 1_000)
      .then(() => true)
      .catch(() => false);
  }
  assert.ok(shownFirst, 'an upsert reached the response pane');
  for (const name of [`Ursula-${stamp}`, `Octavia-${stamp}`, `Iain-${stamp}`]) {
    await upsertAuthor(name);
    await paneShows(name, 10_000);
    const shown = JSON.parse(await responseText());
    assert.deepEqual(shown, { data: { subscribe: { Author: { name } } } });
  }
  const nexts = frames.filter((f) => f.dir === 'received' && f.data.type === 'next' && f.data.id === subId);
  const names = nexts.map((f) => f.data.payload.data.subscribe.Author.name);
  assert.deepEqual(names.slice(-3), [`Ursula-${stamp}`, `Octavia-${stamp}`, `Iain-${stamp}`], 'in write order');

  // The run button is now the stop button.
  await runButton().click();
  await waitFor('complete for the subscription', () =>
    frames.some((f) => f.dir === 'sent' && f.data.type === 'complete' && f.data.id === subId),
  );
  const count = frames.filter((f) => f.dir === 'received' && f.data.id === subId).length;
  await upsertAuthor(`After-${stamp}`);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(frames.filter((f) => f.dir === 'received' && f.data.id === subId).length, count, 'nothing after stop');
  assert.ok(!(await responseText()).includes(`After-${stamp}`));
});

await check('the page logged no errors', async () => {
  assert.deepEqual(pageErrors, []);
});

await browser.close();
clearTimeout(timer);
console.log(failures ? `playground: ${failures} check(s) failed` : 'playground: all checks passed');
process.exit(failures ? 1 : 0);
