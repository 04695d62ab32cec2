// Shared helpers of the client suites: the server URL, plain GraphQL POSTs, and a small check
// runner that runs every check, prints each outcome, and exits non-zero when any failed.

import { inspect } from 'node:util';

/** The server's GraphQL endpoint: the first non-option argument, else $ARCBASE_URL. */
export function serverUrl(suite) {
  const arg = process.argv.slice(2).find((a) => !a.startsWith('--'));
  const url = arg || process.env.ARCBASE_URL;
  if (!url) {
    console.error(`${suite}: no server URL. Usage: node ${suite}.mjs http://127.0.0.1:PORT/graphql (or set ARCBASE_URL)`);
    process.exit(2);
  }
  return url;
}

/** The value of `--name VALUE` / `--name=VALUE` on the command line, else `env[envName]`. */
export function option(name, envName) {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return envName ? process.env[envName] : undefined;
}

/** POST one GraphQL request as a plain client would; returns the parsed body, throws on
 * transport errors or a body that is not JSON. */
export async function post(url, query, variables) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}: the body is not JSON: ${text.slice(0, 500)}`);
  }
}

/** POST and insist on `data` without `errors`. */
export async function postOk(url, query, variables) {
  const body = await post(url, query, variables);
  if (body.errors?.length || !body.data) {
    throw new Error(`GraphQL errors for ${oneLine(query)}: ${JSON.stringify(body.errors ?? body)}`);
  }
  return body.data;
}

export function oneLine(s) {
  const t = String(s).replace(/\s+/g, ' ').trim();
  return t.length > 160 ? `${t.slice(0, 160)}...` : t;
}

export function show(value) {
  return inspect(value, { depth: 8, breakLength: 120 });
}

/** Kill the script if it runs longer than `ms` (the Rust test bounds it too, later). */
export function watchdog(suite, ms = 240_000) {
  setTimeout(() => {
    console.error(`${suite}: FAILED: still running after ${ms / 1000} s; giving up`);
    process.exit(3);
  }, ms).unref();
}

/** Runs named checks in order, each to completion; a failed check does not stop the others
 * unless it is marked `required` (later checks need what it sets up). */
export class Checks {
  constructor(suite) {
    this.suite = suite;
    this.failed = [];
    this.passed = [];
  }

  async check(name, fn, { required = false } = {}) {
    const started = Date.now();
    try {
      await fn();
      this.passed.push(name);
      console.log(`ok      ${name} (${Date.now() - started} ms)`);
      return true;
    } catch (e) {
      this.failed.push(name);
      console.log(`FAILED  ${name}`);
      console.log(indent(e?.stack && !(e?.name === 'AssertionError') ? e.stack : String(e?.message ?? e)));
      if (required) {
        this.finish(`stopping: later checks need '${name}'`);
      }
      return false;
    }
  }

  finish(note) {
    if (note) console.log(`${this.suite}: ${note}`);
    const total = this.passed.length + this.failed.length;
    if (this.failed.length) {
      console.error(`${this.suite}: FAILED: ${this.failed.length} of ${total} checks failed:`);
      for (const f of this.failed) console.error(`  - ${f}`);
      process.exit(1);
    }
    console.log(`${this.suite}: all ${total} checks passed`);
    process.exit(0);
  }
}

function indent(s) {
  return String(s)
    .split('\n')
    .map((l) => `        ${l}`)
    .join('\n');
}
