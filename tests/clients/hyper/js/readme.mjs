// Every example of the hyper-connect 0.12.0 npm README, run against a hyper server and checked
// against the documented results.
//
// Usage (what tests/hyper_clients.rs does): HYPER=http://127.0.0.1:PORT/jsreadme node readme.mjs
// (from a folder where `import 'hyper-connect'` resolves; it writes foo.png there). Apps of that
// server used, each starting empty: the connection string's own, and `<app>cjs` for the CommonJS
// block. No store is provisioned first (the README does not): stores must come into being on
// first use; only the queue is created, with a target and a secret, as the Verify Signature
// section requires. Each example prints PASS or FAIL; a FAIL shows what was expected, what came
// back and the HTTP requests the example sent. Exit status 1 if any example failed.

import { connect, createHyperVerify } from 'hyper-connect';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { createReadStream, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { inspect, isDeepStrictEqual } from 'node:util';

const STEP_TIMEOUT_MS = 30_000;
const DELIVERY_TIMEOUT_MS = 20_000;

const HYPER = process.env.HYPER;
if (!HYPER || !HYPER.startsWith('http')) {
  console.log('FAIL  no HYPER connection string in the environment');
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Every HTTP request the client sends (it uses the undici package's fetch, which reports on
// these diagnostics channels), with its answer, for the FAIL reports.

const SENT = [];
const byRequest = new WeakMap();
diagnostics.subscribe('undici:request:create', ({ request }) => {
  const entry = { request: `${request.method} ${request.path}`, answer: 'no answer' };
  byRequest.set(request, entry);
  SENT.push(entry);
});
diagnostics.subscribe('undici:request:headers', ({ request, response }) => {
  const entry = byRequest.get(request);
  if (!entry) return;
  const headers = response.headers.map((h) => h.toString());
  const ctype = headers.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-type');
  entry.answer = `${response.statusCode} content-type=${ctype >= 0 ? headers[ctype + 1] : '(none)'}`;
});
diagnostics.subscribe('undici:request:error', ({ request, error }) => {
  const entry = byRequest.get(request);
  if (entry) entry.answer = `error: ${error?.message ?? error}`;
});

// ---------------------------------------------------------------------------------------------
// checking

class Mismatch extends Error {
  constructor(what, expected, got) {
    super(what);
    this.what = what;
    this.expected = expected;
    this.got = got;
  }
}
const show = (v) => inspect(v, { depth: 6, breakLength: Infinity, compact: 100, maxStringLength: 300 });

/** got deep-equals expected, exactly. */
function same(got, expected, what = 'result') {
  if (!isDeepStrictEqual(got, expected)) throw new Mismatch(what, show(expected), show(got));
  return got;
}
/** got is an object with (at least) these keys and values. */
function having(got, expected, what = 'result') {
  const ok = got && typeof got === 'object' && Object.entries(expected).every(([k, v]) => isDeepStrictEqual(got[k], v));
  if (!ok) throw new Mismatch(what, `an object with ${show(expected)}`, show(got));
  return got;
}
function truth(cond, what, expected, got) {
  if (!cond) throw new Mismatch(what, expected, show(got));
}
/** The document id of a stored doc: `_id`, else `id`. */
const idOf = (d) => d?._id ?? d?.id;

let passed = 0;
const failed = [];
let timeouts = 0; // examples that got no result in time; after 2, the script gives up

function summary() {
  console.log('');
  if (failed.length) {
    const gaveUp = timeouts >= 2 ? ' (the examples after the give-up did not run)' : '';
    console.log(`hyper-connect (node): ${failed.length} of ${passed + failed.length} examples FAILED${gaveUp}:\n`);
    console.log(failed.join('\n'));
    process.exit(1);
  }
  console.log(`hyper-connect (node): all ${passed} examples passed`);
  process.exit(0);
}

async function example(label, fn) {
  const start = SENT.length;
  let timer;
  try {
    const timeout = new Promise((_resolve, reject) => {
      timer = setTimeout(() => {
        timeouts++;
        reject(new Error(`no result within ${STEP_TIMEOUT_MS / 1000} s`));
      }, STEP_TIMEOUT_MS);
    });
    const shown = await Promise.race([fn(), timeout]);
    passed++;
    console.log(`PASS  ${label}` + (shown === undefined ? '' : `\n      -> ${show(shown)}`));
  } catch (e) {
    let detail;
    if (e instanceof Mismatch) detail = `${e.what}\n      expected: ${e.expected}\n      got:      ${e.got}`;
    else if (e instanceof Error)
      detail = `threw ${e.name}: ${e.message}${e.cause ? ` (cause: ${e.cause.code ?? e.cause.message ?? e.cause})` : ''}`;
    else detail = `rejected with ${show(e)}`;
    const lines = [`FAIL  ${label}`, `      ${detail}`];
    const sent = SENT.slice(start);
    if (sent.length) {
      lines.push('      requests sent by this example:');
      for (const s of sent) lines.push(`        ${s.request}  ->  ${s.answer}`);
    } else {
      lines.push('      (no request was sent)');
    }
    failed.push(lines.join('\n'));
    console.log(lines.join('\n'));
  } finally {
    clearTimeout(timer);
  }
  if (timeouts >= 2) {
    console.log(`\ngiving up: ${timeouts} examples got no result within ${STEP_TIMEOUT_MS / 1000} s`);
    summary();
  }
}

// ---------------------------------------------------------------------------------------------
// The README

console.log(`== the npm README, against ${HYPER}`);
const hyper = connect(HYPER);

await example('EXTRA info.services() (GET /)', async () => {
  const r = having(await hyper.info.services(), { name: 'hyper' });
  for (const s of ['data', 'cache', 'search', 'storage', 'queue'])
    truth(r.services?.includes(s), 'services', `to include ${s}`, r);
  return r;
});

const games = [
  { id: 'game-1', type: 'game', name: 'Donkey Kong' },
  { id: 'game-2', type: 'game', name: 'Pac Man' },
  { id: 'game-3', type: 'game', name: 'Galaga' },
];

/** Getting Started: the three adds and the query (the TS, ESM and CJS blocks are the same calls). */
async function gettingStarted(label, h) {
  for (const g of games) {
    await example(`${label} await hyper.data.add({ id: '${g.id}', type: 'game', name: '${g.name}' })`, async () =>
      same(await h.data.add(g), { ok: true, id: g.id })
    );
  }
  await example(`${label} const results = await hyper.data.query({ type: 'game' })`, async () => {
    const results = having(await h.data.query({ type: 'game' }), { ok: true });
    truth(Array.isArray(results.docs), 'docs', 'an array', results);
    const docs = [...results.docs].sort((a, b) => String(idOf(a)).localeCompare(String(idOf(b))));
    same(
      docs.map((d) => ({ id: idOf(d), type: d.type, name: d.name })),
      games,
      'the docs (their _id or id, type and name)'
    );
    return results;
  });
}

await gettingStarted('README JS-1 (ESM)', hyper);

{
  // The CJS block, through the package's `require` export (its top-level await is not valid CJS,
  // so the calls run here), on an app of its own.
  const { connect: connectCjs, createHyperVerify: verifyCjs } = createRequire(import.meta.url)('hyper-connect');
  await example("README JS-1 (CJS) const { connect } = require('hyper-connect')", async () => {
    truth(
      typeof connectCjs === 'function' && typeof verifyCjs === 'function',
      'the exports',
      'connect and createHyperVerify functions',
      { connect: typeof connectCjs, createHyperVerify: typeof verifyCjs }
    );
  });
  await gettingStarted('README JS-1 (CJS)', connectCjs(`${HYPER}cjs`));
}

// A Note for NodeJS: storage download to a Node stream, upload from a Node stream.
const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(300 * 1024)]);
writeFileSync('foo.png', png);
const sha = (b) => createHash('sha256').update(b).digest('hex').slice(0, 16);

await example(
  "README JS-2 await hyper.storage.upload('foo.png', Readable.toWeb(createReadStream('foo.png')))",
  async () => same(await hyper.storage.upload('foo.png', Readable.toWeb(createReadStream('foo.png'))), { ok: true })
);

await example(
  "README JS-2 await hyper.storage.download('foo.png').then(res => Readable.fromWeb(res.object))",
  async () => {
    const stream = await hyper.storage.download('foo.png').then((res) => {
      if (!res.ok) throw res;
      return Readable.fromWeb(res.object);
    });
    truth(stream instanceof Readable, 'the result', 'a NodeJS Readable', stream);
    const chunks = [];
    for await (const c of stream) chunks.push(Buffer.from(c));
    const got = Buffer.concat(chunks);
    if (!got.equals(png)) {
      throw new Mismatch(
        'the downloaded bytes',
        `the ${png.length} bytes of foo.png (sha256 ${sha(png)}…)`,
        `${got.length} bytes (sha256 ${sha(got)}…), starting ${show(got.subarray(0, 24))}`
      );
    }
    return `${got.length} bytes, identical to foo.png`;
  }
);

// JS-3 is the Deno block (https import, `connect(HYPER)()`): not runnable under Node.

await example(
  "README JS-4 await hyper.data.add({ id: 'movie-1', type: 'movie', title: 'Dune', year: '2021' })",
  async () =>
    same(await hyper.data.add({ id: 'movie-1', type: 'movie', title: 'Dune', year: '2021' }), {
      ok: true,
      id: 'movie-1',
    })
);

await example("README JS-5 await hyper.data.query({ type: 'movie' })", async () => {
  const result = having(await hyper.data.query({ type: 'movie' }), { ok: true });
  truth(Array.isArray(result.docs), 'docs', 'an array', result);
  same(
    result.docs.map((d) => ({ id: idOf(d), type: d.type, title: d.title, year: d.year })),
    [{ id: 'movie-1', type: 'movie', title: 'Dune', year: '2021' }],
    'the docs'
  );
  return result;
});

await example("EXTRA hyper.data.get('movie-1') is { ok: true, doc }", async () => {
  const result = having(await hyper.data.get('movie-1'), { ok: true });
  const d = result.doc;
  same(
    { id: idOf(d), type: d?.type, title: d?.title, year: d?.year },
    { id: 'movie-1', type: 'movie', title: 'Dune', year: '2021' },
    'doc'
  );
  return result;
});

await example("README JS-6 await hyper.cache.add('key', { counter: 1 })", async () =>
  same(await hyper.cache.add('key', { counter: 1 }), { ok: true })
);

await example("EXTRA hyper.cache.get('key') is { ok: true, doc: { counter: 1 } }", async () =>
  same(await hyper.cache.get('key'), { ok: true, doc: { counter: 1 } })
);

// ---------------------------------------------------------------------------------------------
// Verify Signature: a real queue delivery to a local worker, checked with createHyperVerify.

const received = [];
let onDelivery = () => {};
const worker = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    received.push({
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
    onDelivery();
  });
});
await new Promise((resolve) => worker.listen(0, '127.0.0.1', resolve));
const target = `http://127.0.0.1:${worker.address().port}/jobs`;
process.env.QUEUE_SECRET ||= 'queue-secret-' + randomBytes(6).toString('hex');
const secret = process.env.QUEUE_SECRET;
const job = {
  type: 'movie-added',
  id: 'movie-1',
  title: 'Dune',
  year: '2021',
  count: 3,
  tags: ['sci-fi', 'classic'],
  meta: { by: 'readme', ok: true },
};

await example(`README JS-7 (setup) await hyper.queue.create('${target}', QUEUE_SECRET)`, async () =>
  same(await hyper.queue.create(target, secret), { ok: true })
);

await example('README JS-7 (setup) await hyper.queue.enqueue(job)', async () =>
  having(await hyper.queue.enqueue(job), { ok: true })
);

let delivery;
await example(`README JS-7 (setup) the worker receives the job within ${DELIVERY_TIMEOUT_MS / 1000} s`, async () => {
  if (!received.length) {
    await new Promise((resolve) => {
      const t = setTimeout(resolve, DELIVERY_TIMEOUT_MS);
      onDelivery = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  truth(
    received.length > 0,
    'deliveries to the worker',
    `a POST to ${target} within ${DELIVERY_TIMEOUT_MS / 1000} s`,
    received
  );
  delivery = received[0];
  same(delivery.method, 'POST', 'method');
  same(delivery.url, '/jobs', 'path');
  truth(
    (delivery.headers['content-type'] ?? '').includes('application/json'),
    'content-type',
    'application/json',
    delivery.headers
  );
  let payload;
  try {
    payload = JSON.parse(delivery.body);
  } catch {
    throw new Mismatch('the body', 'the job as JSON', delivery.body);
  }
  same(payload, job, 'the body (parsed)');
  truth(
    /^t=\d+,sig=[0-9a-f]{64}$/.test(delivery.headers['x-hyper-signature'] ?? ''),
    'the X-HYPER-SIGNATURE header',
    't=<ms>,sig=<64 hex digits>',
    delivery.headers['x-hyper-signature']
  );
  return { 'x-hyper-signature': delivery.headers['x-hyper-signature'], body: delivery.body };
});

await example(
  "README JS-7 const signatureVerify = createHyperVerify(process.env.QUEUE_SECRET, '1m'); signatureVerify(sig, req.body) is { ok: true }",
  async () => {
    truth(delivery, 'the delivery', 'a delivered job', delivery);
    const signatureVerify = createHyperVerify(process.env.QUEUE_SECRET, '1m');
    const header = delivery.headers['x-hyper-signature'];
    const result = signatureVerify(header, JSON.parse(delivery.body));
    if (!isDeepStrictEqual(result, { ok: true })) {
      // Say why: the signature is HMAC-SHA256(secret, "<t>.<JSON.stringify(payload)>").
      const [, t, sig] = /^t=(\d+),sig=([0-9a-f]+)$/.exec(header ?? '') ?? [];
      const mac = (text) => createHmac('sha256', secret).update(text).digest('hex');
      const overRaw = sig === mac(`${t}.${delivery.body}`);
      const overCompact = sig === mac(`${t}.${JSON.stringify(JSON.parse(delivery.body))}`);
      throw new Mismatch(
        'signatureVerify(...)',
        '{ ok: true }',
        `${show(result)}; the signature ${overRaw ? 'matches' : 'does not match'} HMAC(secret, "t.<raw body>") and ${overCompact ? 'matches' : 'does not match'} HMAC(secret, "t.<JSON.stringify(body)>")`
      );
    }
    return result;
  }
);

await example('README JS-7 a tampered body or signature is not ok (401)', async () => {
  truth(delivery, 'the delivery', 'a delivered job', delivery);
  const signatureVerify = createHyperVerify(process.env.QUEUE_SECRET, '1m');
  const header = delivery.headers['x-hyper-signature'];
  having(
    signatureVerify(header, { ...JSON.parse(delivery.body), count: 4 }),
    { ok: false, status: 401 },
    'signatureVerify(sig, tampered body)'
  );
  const flipped = header.replace(/sig=(.)/, (_m, c) => `sig=${c === '0' ? '1' : '0'}`);
  having(
    signatureVerify(flipped, JSON.parse(delivery.body)),
    { ok: false, status: 401 },
    'signatureVerify(tampered sig, body)'
  );
  having(
    createHyperVerify('not-the-secret', '1m')(header, JSON.parse(delivery.body)),
    { ok: false, status: 401 },
    'another secret'
  );
});

await example('EXTRA hyper.queue.errors() is { ok: true, jobs: [] } (the delivery succeeded)', async () =>
  same(await hyper.queue.errors(), { ok: true, jobs: [] })
);

await example('EXTRA hyper.queue.queued() is { ok: true, jobs: [...] }', async () => {
  const r = having(await hyper.queue.queued(), { ok: true });
  truth(Array.isArray(r.jobs), 'jobs', 'an array', r);
  return r;
});

worker.close();
summary();
