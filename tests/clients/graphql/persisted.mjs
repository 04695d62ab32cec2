// Apollo Client's automatic persisted queries (createPersistedQueryLink, SHA-256 from Node's
// crypto) against arcbase, over POST and over GET (useGETForHashedQueries): the first request
// of a text sends only its hash and is answered PersistedQueryNotFound, the link retries with
// the text, and from then on the hash alone is enough, for any client. Every request the link
// makes is recorded (method, whether it carried the text and the hash, the status) and the
// exchange is checked request by request, so a server that silently ignored the hash (or
// always wanted the text) fails.
//
//   node persisted.mjs http://127.0.0.1:PORT/graphql     (or ARCBASE_URL=...)

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries/index.js';
import { print } from 'graphql';
import { Checks, postOk, serverUrl, watchdog } from './lib.mjs';

const url = serverUrl('persisted');
watchdog('persisted');

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

/** Every request a client's link sends, and what came back. */
function recorder() {
  const seen = [];
  const recordingFetch = async (input, init = {}) => {
    const target = new URL(typeof input === 'string' ? input : input.url);
    const method = (init.method || 'GET').toUpperCase();
    let body = {};
    if (method === 'POST') body = JSON.parse(init.body);
    else
      body = {
        query: target.searchParams.get('query') ?? undefined,
        extensions: target.searchParams.has('extensions') ? JSON.parse(target.searchParams.get('extensions')) : undefined,
      };
    const res = await fetch(input, init);
    const text = await res.clone().text();
    seen.push({
      method,
      withText: typeof body.query === 'string',
      withHash: typeof body.extensions?.persistedQuery?.sha256Hash === 'string',
      status: res.status,
      vary: res.headers.get('vary'),
      answer: JSON.parse(text),
    });
    return res;
  };
  return { seen, fetch: recordingFetch };
}

function client(useGET) {
  const r = recorder();
  const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: useGET }).concat(
    new HttpLink({ uri: url, fetch: r.fetch }),
  );
  return { apollo: new ApolloClient({ link, cache: new InMemoryCache() }), seen: r.seen };
}

const checks = new Checks('persisted');
let bookId;

await checks.check(
  'seed a book (plain POST)',
  async () => {
    const data = await postOk(url, 'mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }', {
      v: { Book: [{ title: 'Persisted', price: 4.5 }] },
    });
    bookId = data.upsert[0].id;
  },
  { required: true },
);

const GET_BOOK = gql`
  query PersistedBook($id: String!) {
    get(type: Book, id: $id) {
      ... on Book {
        title
        price
      }
    }
  }
`;
const expected = () => ({ get: { __typename: 'Book', title: 'Persisted', price: 4.5 } });

for (const useGET of [false, true]) {
  const how = useGET ? 'GET' : 'POST';
  // Each transport gets its own text, so the server has not seen it before.
  const query = useGET
    ? gql`
        query PersistedBookOverGet($id: String!) {
          get(type: Book, id: $id) {
            ... on Book {
              title
              price
            }
          }
        }
      `
    : GET_BOOK;

  await checks.check(`${how}: an unknown hash is answered PersistedQueryNotFound, the retry with the text runs`, async () => {
    const c = client(useGET);
    const r = await c.apollo.query({ query, variables: { id: bookId }, fetchPolicy: 'network-only' });
    assert.deepEqual(r.data, expected());
    assert.equal(c.seen.length, 2, `two requests: ${JSON.stringify(c.seen)}`);
    const [first, retry] = c.seen;
    assert.deepEqual([first.method, first.withText, first.withHash], [how, false, true], 'the first sends only the hash');
    assert.equal(first.answer.errors?.[0]?.message, 'PersistedQueryNotFound');
    assert.equal(first.answer.errors?.[0]?.extensions?.code, 'PERSISTED_QUERY_NOT_FOUND');
    assert.equal(first.answer.data, undefined, 'no data with the refusal');
    assert.deepEqual([retry.method, retry.withText, retry.withHash], ['POST', true, true], 'the retry sends text and hash');
  });

  await checks.check(`${how}: once known, the hash alone runs the query (a new client)`, async () => {
    const c = client(useGET);
    const r = await c.apollo.query({ query, variables: { id: bookId }, fetchPolicy: 'network-only' });
    assert.deepEqual(r.data, expected());
    assert.equal(c.seen.length, 1, `one request: ${JSON.stringify(c.seen)}`);
    assert.deepEqual([c.seen[0].method, c.seen[0].withText, c.seen[0].withHash], [how, false, true]);
    if (useGET) assert.match(c.seen[0].vary ?? '', /Authorization/i, 'a GET answer says what it varies by');
  });
}

await checks.check('a mutation through the persisted-query link (POST)', async () => {
  const c = client(true);
  const m = gql`
    mutation PersistedUpsert($v: HypiUpsertInputUnion!) {
      upsert(values: $v) {
        id
      }
    }
  `;
  const r = await c.apollo.mutate({ mutation: m, variables: { v: { Book: [{ title: 'By hash', price: 1 }] } } });
  assert.equal(r.data.upsert.length, 1);
  assert.ok(c.seen.every((s) => s.method === 'POST'), 'mutations are never sent over GET');
  assert.deepEqual(c.seen.map((s) => s.withText), [false, true]);
});

await checks.check('a hash that is not the text\'s SHA-256 is refused, naming it', async () => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: print(GET_BOOK),
      variables: { id: bookId },
      extensions: { persistedQuery: { version: 1, sha256Hash: sha256('something else') } },
    }),
  });
  const body = await res.json();
  assert.equal(body.errors?.[0]?.extensions?.code, 'VALIDATION', JSON.stringify(body));
  assert.match(body.errors[0].message, /sha256Hash/);
});

checks.finish();
