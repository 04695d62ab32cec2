// Every client suite, one after the other, against one server (each is also runnable alone):
//
//   node run-all.mjs http://127.0.0.1:PORT/graphql --sdl BUILT.graphql
//
// The server must serve schema/example.graphql on a fresh database (apollo.mjs seeds Books).

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverUrl } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
serverUrl('run-all');
const failed = [];
for (const suite of ['audits', 'codegen', 'apollo', 'persisted']) {
  console.log(`\n==== ${suite}`);
  const r = spawnSync(process.execPath, [join(here, `${suite}.mjs`), ...process.argv.slice(2)], {
    stdio: 'inherit',
    timeout: 300_000,
  });
  if (r.status !== 0) failed.push(`${suite} (${r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`})`);
}
if (failed.length) {
  console.error(`\nrun-all: FAILED suites: ${failed.join(', ')}`);
  process.exit(1);
}
console.log('\nrun-all: every suite passed');
