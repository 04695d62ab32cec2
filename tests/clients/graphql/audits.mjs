// GraphQL over HTTP conformance: every server audit of graphql-http (the reference
// implementation of the GraphQL-over-HTTP spec). Fails on any `error` (a MUST broken) and on any
// `warn` (a SHOULD broken); `notice` results are printed and allowed.
//
//   node audits.mjs http://127.0.0.1:PORT/graphql     (or ARCBASE_URL=...)

import { serverAudits } from 'graphql-http';
import { serverUrl, watchdog } from './lib.mjs';

const url = serverUrl('audits');
watchdog('audits');

const audits = serverAudits({ url, fetchFn: fetch });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
const bad = [];
for (const audit of audits) {
  let result;
  try {
    result = await audit.fn();
  } catch (e) {
    // graphql-http throws only when an audit cannot run at all (e.g. the server is gone).
    result = { id: audit.id, name: audit.name, status: 'error', reason: `audit threw: ${e?.stack ?? e}` };
  }
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  let line = `${result.status.padEnd(6)} ${result.id} ${result.name}`;
  if (result.status !== 'ok') {
    let detail = result.reason;
    if (result.response) {
      const body = await result.response.text().catch(() => '');
      const type = result.response.headers.get('content-type');
      detail += `\n         response: ${result.response.status} ${type ?? '(no content-type)'} ${body.slice(0, 300)}`;
    }
    line += `\n         ${detail}`;
  }
  console.log(line);
  if (result.status === 'error' || result.status === 'warn') bad.push(result);
}

console.log(
  `audits: ${audits.length} run: ${counts.ok} ok, ${counts.notice} notice, ${counts.warn} warn, ${counts.error} error`,
);
if (bad.length) {
  console.error(`audits: FAILED: ${bad.length} audits are errors or warnings:`);
  for (const r of bad) console.error(`  - ${r.status} ${r.id} ${r.name}: ${r.reason}`);
  process.exit(1);
}
console.log('audits: passed (no errors, no warnings)');
