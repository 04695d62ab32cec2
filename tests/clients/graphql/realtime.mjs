// Subscriptions with the clients people use, against arcbase's example schema:
//
//   graphql-ws (graphql-transport-ws)   createClient + subscribe: every operation of an Author,
//                                       then a resume from a cursor with nothing twice
//   subscriptions-transport-ws          Hypi's clients' protocol (graphql-ws sub-protocol):
//                                       subscribe { Author { name } } after upserts
//   Apollo Client + GraphQLWsLink       client.subscribe through the link, and a query over the
//                                       same socket
//
//   node realtime.mjs http://127.0.0.1:PORT/graphql     (or ARCBASE_URL=...)

import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { Checks, postOk, serverUrl, watchdog } from './lib.mjs';

const url = serverUrl('realtime');
const wsUrl = url.replace(/^http/, 'ws');
watchdog('realtime', 120_000);
const checks = new Checks('realtime');

/** Collect `n` results of a subscription (rejects after 15 s). */
function take(subscribe, n) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} events in 15 s: ${JSON.stringify(got)}`)), 15_000);
    const stop = subscribe({
      next: (v) => {
        got.push(v);
        if (got.length === n) {
          clearTimeout(timer);
          stop();
          resolve(got);
        }
      },
      error: (e) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(JSON.stringify(e)));
      },
      complete: () => {},
    });
  });
}

const upsert = (values) =>
  postOk(url, 'mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }', { v: values }).then((d) => d.upsert.map((h) => h.id));

const CHANGES = `subscription($after: String) { changes(type: Author, after: $after) { cursor op id node { ... on Author { name } } } }`;

let cursorAfterInsert;
let authorId;

await checks.check('graphql-ws: every operation of an Author', async () => {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
  // From the feed's start: the database is fresh, so nothing races the subscription going live.
  const events = take((sink) => client.subscribe({ query: CHANGES, variables: { after: '0' } }, sink), 4);
  [authorId] = await upsert({ Author: [{ name: 'Octavia' }] });
  await upsert({ Author: [{ hypi: { id: authorId }, name: 'Octavia Butler' }] });
  await postOk(url, `mutation { trash(type: Author, arcql: "hypi.id = '${authorId}'") }`);
  await postOk(url, `mutation { untrash(type: Author, arcql: "hypi.id = '${authorId}'") }`);
  const got = (await events).map((e) => {
    assert.equal(e.errors, undefined, JSON.stringify(e));
    return e.data.changes;
  });
  assert.deepEqual(got.map((c) => c.op), ['INSERT', 'UPDATE', 'TRASH', 'UNTRASH']);
  assert.ok(got.every((c) => c.id === authorId));
  assert.equal(got[3].node.name, 'Octavia Butler');
  cursorAfterInsert = got[0].cursor;
  await client.dispose();
}, { required: true });

await checks.check('graphql-ws: resume after a cursor, nothing twice', async () => {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const got = await take((sink) => client.subscribe({ query: CHANGES, variables: { after: cursorAfterInsert } }, sink), 3);
  assert.deepEqual(got.map((e) => e.data.changes.op), ['UPDATE', 'TRASH', 'UNTRASH']);
  await client.dispose();
});

await checks.check('subscriptions-transport-ws: Hypi subscribe { Author { name } }', async () => {
  const client = new SubscriptionClient(wsUrl, { reconnect: false, lazy: false }, WebSocket);
  const events = take(
    (sink) => {
      const sub = client.request({ query: 'subscription { subscribe { Author { name } } }' }).subscribe(sink);
      return () => sub.unsubscribe();
    },
    2,
  );
  // The legacy protocol has no cursor: wait until the server has the subscription.
  await new Promise((r) => setTimeout(r, 500));
  await upsert({ Author: [{ name: 'Kindred' }] });
  await upsert({ Book: [{ title: 'not an Author' }], Author: [{ name: 'Parable' }] });
  const got = await events;
  assert.deepEqual(got.map((e) => e.data.subscribe.Author.name), ['Kindred', 'Parable']);
  client.close();
});

await checks.check('Apollo Client over GraphQLWsLink: subscribe and query', async () => {
  const link = new GraphQLWsLink(createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 }));
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const events = take(
    (sink) => {
      const s = client
        .subscribe({ query: gql(CHANGES), variables: { after: cursorAfterInsert } })
        .subscribe({ next: sink.next, error: sink.error, complete: sink.complete });
      return () => s.unsubscribe();
    },
    3,
  );
  const got = await events;
  assert.deepEqual(got.map((e) => e.data.changes.op), ['UPDATE', 'TRASH', 'UNTRASH']);
  const q = await client.query({ query: gql`{ find(type: Author, arcql: "*") { edges { cursor } } }`, fetchPolicy: 'network-only' });
  assert.ok(q.data.find.edges.length >= 3, JSON.stringify(q.data));
  client.stop();
});

checks.finish();
