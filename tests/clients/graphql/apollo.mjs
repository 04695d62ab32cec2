// Apollo Client 3 against arcbase, configured the way the README tells users to:
//
//   possibleTypes  from introspection (HypiRootAggregate: every stored type)
//   typePolicies   keyFields ["hypi", ["id"]] for every object type with a `hypi` field,
//                  Hypi itself unnormalized (keyFields: false: an id is unique per type only),
//                  Query.find = relayStylePagination(["type", "arcql"])
//
// It seeds 23 Books through Apollo mutations, then checks cursor paging through the normalized
// cache (forward with fetchMore/endCursor, backward with startCursor, a SORTed filter), the
// Relay connection rules for pageInfo, and field selection through the HypiRootAggregate union
// in every fragment form, failing on any "Missing field" (or other) warning Apollo logs.
//
//   node apollo.mjs http://127.0.0.1:PORT/graphql     (or ARCBASE_URL=...)
//
// Needs a database without Book objects (a fresh one): the paging checks expect exactly the
// books they seed.

import assert from 'node:assert/strict';
import { format } from 'node:util';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { relayStylePagination } from '@apollo/client/utilities/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';
import { Checks, postOk, serverUrl, show, watchdog } from './lib.mjs';

const url = serverUrl('apollo');
watchdog('apollo');
// Readable Apollo messages instead of numeric codes with a link.
loadDevMessages();
loadErrorMessages();

// ---------------------------------------------------------------------------------------------
// Apollo logs problems (e.g. "Missing field 'title' while writing result") through console.warn
// and console.error instead of throwing: capture everything it says and fail on it.

const captured = [];
for (const level of ['warn', 'error', 'log', 'info', 'debug']) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    // While capturing, the check that fails reports the lines; otherwise pass them through.
    if (capturing) captured.push(`console.${level}: ${format(...args)}`);
    else original(...args);
  };
}
let capturing = false;

/** Run `fn` and fail if Apollo logged anything while it ran. */
async function quietly(what, fn) {
  captured.length = 0;
  capturing = true;
  try {
    return await fn();
  } finally {
    capturing = false;
    if (captured.length) {
      const lines = captured.splice(0);
      throw new assert.AssertionError({ message: `Apollo logged while ${what}:\n${lines.join('\n')}` });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The recipe: cache configuration from introspection.

/** InMemoryCache options for an arcbase schema, read from the server by introspection. */
export async function arcbaseCacheOptions(endpoint) {
  const data = await postOk(
    endpoint,
    `query ArcbaseCacheConfig { __schema { types { kind name possibleTypes { name } fields { name } } } }`,
  );
  const possibleTypes = {};
  const typePolicies = {
    Hypi: { keyFields: false },
    Query: { fields: { find: relayStylePagination(['type', 'arcql']) } },
  };
  for (const t of data.__schema.types) {
    if (t.name.startsWith('__')) continue;
    if (t.possibleTypes?.length) possibleTypes[t.name] = t.possibleTypes.map((p) => p.name);
    if (t.kind === 'OBJECT' && t.fields?.some((f) => f.name === 'hypi')) {
      typePolicies[t.name] = { ...typePolicies[t.name], keyFields: ['hypi', ['id']] };
    }
  }
  return { possibleTypes, typePolicies };
}

let cacheOptions;
function newClient() {
  return new ApolloClient({
    link: new HttpLink({ uri: url, fetch }),
    cache: new InMemoryCache(cacheOptions),
  });
}

// ---------------------------------------------------------------------------------------------
// Seed data: 23 books, with ties and a null among the prices (for the SORT check).

const PRICES = [9.5, 3, 12, 7, 7, 20, null, 5, 5.5, 7, 15, 1, 8.25, 7, 30, 6, 6, 11, 2.5, 7, 19.99, 4, 10];
const seeded = []; // { id, title, price } in hypi.id order once seeded
const byId = new Map();

const SEED = gql`
  mutation SeedBooks($values: HypiUpsertInputUnion!) {
    upsert(values: $values) {
      id
    }
  }
`;

const FORWARD = gql`
  query BooksForward($arcql: String!, $first: Int!, $after: String) {
    find(type: Book, arcql: $arcql, first: $first, after: $after) {
      edges {
        cursor
        node {
          ... on Book {
            hypi {
              id
            }
            title
            price
          }
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
`;

const BACKWARD = gql`
  query BooksBackward($arcql: String!, $last: Int!, $before: String) {
    find(type: Book, arcql: $arcql, last: $last, before: $before) {
      edges {
        cursor
        node {
          ... on Book {
            hypi {
              id
            }
            title
            price
          }
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
    }
  }
`;

const PAGE = 5;

/** The Relay connection rules for one page as the server sent it (before any cache merge). */
function checkPageInfo(what, conn, problems) {
  const { edges, pageInfo } = conn;
  if (!edges.length) return;
  // Relay: "startCursor and endCursor must be the cursors corresponding to the first and last
  // nodes in edges, respectively."
  if (pageInfo.startCursor !== edges[0].cursor) {
    problems.push(`${what}: pageInfo.startCursor is ${show(pageInfo.startCursor)}, the first edge's cursor is ${show(edges[0].cursor)}`);
  }
  if (pageInfo.endCursor !== edges.at(-1).cursor) {
    problems.push(`${what}: pageInfo.endCursor is ${show(pageInfo.endCursor)}, the last edge's cursor is ${show(edges.at(-1).cursor)}`);
  }
  for (const e of edges) {
    // The contract: an edge's cursor is the object's hypi.id.
    if (e.node && e.cursor !== e.node.hypi?.id) {
      problems.push(`${what}: edge cursor ${show(e.cursor)} is not its node's hypi.id ${show(e.node.hypi?.id)}`);
    }
  }
}

/** The merged connection as the cache holds it: every node present, the expected objects in
 * the expected order, no duplicates (these throw); cursors = ids (pushed to `problems`). */
function checkMerged(what, conn, expected, problems) {
  assert.ok(conn, `${what}: no connection in the cache`);
  const edges = conn.edges;
  edges.forEach((e, i) => {
    assert.ok(e.node, `${what}: edge ${i} has node ${show(e.node)}`);
    assert.equal(e.node.__typename, 'Book', `${what}: edge ${i} node __typename`);
  });
  const ids = edges.map((e) => e.node.hypi.id);
  assert.equal(new Set(ids).size, ids.length, `${what}: duplicate nodes in the merged edges: ${show(ids)}`);
  assert.deepEqual(
    edges.map((e) => ({ id: e.node.hypi.id, title: e.node.title, price: e.node.price })),
    expected.map((b) => ({ id: b.id, title: b.title, price: b.price })),
    `${what}: the merged edges are not the expected books in order`,
  );
  for (const e of edges.filter((e) => e.cursor !== e.node.hypi.id)) {
    problems.push(`${what}: merged edge cursor ${show(e.cursor)} is not its node's hypi.id ${show(e.node.hypi.id)}`);
  }
}

/** Page through `query` with fetchMore until the server says there is no more, then return
 * the merged connection (read back from the cache too). */
async function pageAll({ what, query, variables, forward }) {
  const client = newClient();
  const problems = [];
  const pages = [];
  const obs = client.watchQuery({ query, variables, notifyOnNetworkStatusChange: false });
  let sub;
  try {
    // The first complete result of the watched query (the page as the cache holds it).
    const first = await new Promise((resolve, reject) => {
      sub = obs.subscribe({ next: (r) => !r.loading && resolve(r), error: reject });
    });
    assert.ok(!first.errors, `${what}: errors ${show(first.errors)}`);
    // (Page 1 is read back through relayStylePagination here, which copies pageInfo's cursors
    // onto the edges; check (e) checks the first page as the server sends it.)
    pages.push(first.data.find);
    for (let n = 2; ; n++) {
      const merged = obs.getCurrentResult().data.find;
      const more = forward ? merged.pageInfo.hasNextPage : merged.pageInfo.hasPreviousPage;
      if (!more) break;
      assert.ok(n <= 12, `${what}: still more pages after ${n - 1}: paging does not terminate`);
      const next = forward ? { after: merged.pageInfo.endCursor } : { before: merged.pageInfo.startCursor };
      const res = await obs.fetchMore({ variables: next });
      assert.ok(!res.errors, `${what}: fetchMore ${show(next)}: errors ${show(res.errors)}`);
      const page = res.data.find;
      pages.push(page);
      assert.ok(page.edges.length <= PAGE, `${what} page ${n}: ${page.edges.length} edges for a page of ${PAGE}`);
      checkPageInfo(`${what} page ${n} (${show(next)})`, page, problems);
      // Exact has…Page (the contract): a page reached from a cursor has one behind it.
      if (forward && !page.pageInfo.hasPreviousPage) problems.push(`${what} page ${n}: hasPreviousPage is false after a cursor`);
      if (!forward && !page.pageInfo.hasNextPage) problems.push(`${what} page ${n}: hasNextPage is false before a cursor`);
    }
    const merged = obs.getCurrentResult().data.find;
    const cached = client.readQuery({ query, variables });
    return { merged, cached, pages, problems };
  } finally {
    sub?.unsubscribe();
    client.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Selection through the HypiRootAggregate union, in every form a client writes.

const BOOK_FRAGMENT = `fragment BookParts on Book { hypi { id } title price }`;
const FORMS = {
  'inline ... on Book': { sel: `... on Book { hypi { id } title price }` },
  'named fragment on Book': { sel: `...BookParts`, defs: BOOK_FRAGMENT },
  'named fragment on the union': {
    sel: `...RootParts`,
    defs: `fragment RootParts on HypiRootAggregate { __typename ... on Book { hypi { id } title price } }`,
  },
  'union fragment spreading a Book fragment': {
    sel: `...RootBook`,
    defs: `fragment RootBook on HypiRootAggregate { ...BookParts }\n${BOOK_FRAGMENT}`,
  },
  'nested ... on HypiRootAggregate { ... on Book }': {
    sel: `... on HypiRootAggregate { ... on Book { hypi { id } title price } }`,
  },
  'inline fragment without a type condition': { sel: `... { ... on Book { hypi { id } title price } }` },
  '... on Author beside ... on Book': { sel: `... on Author { name age } ... on Book { hypi { id } title price }` },
};

function formQueries(form) {
  const defs = form.defs ?? '';
  return {
    get: gql(`query GetForm($id: String!) { get(type: Book, id: $id) { ${form.sel} } }\n${defs}`),
    find: gql(
      `query FindForm { find(type: Book, arcql: "*", first: ${PAGE}) { edges { cursor node { ${form.sel} } } pageInfo { hasNextPage } } }\n${defs}`,
    ),
  };
}

/** Run `query` through a fresh Apollo client (network, then the normalized cache) and return
 * what Apollo returned and what the cache gives back for the same query. */
async function throughApollo(what, query, variables) {
  const client = newClient();
  try {
    return await quietly(what, async () => {
      const res = await client.query({ query, variables, fetchPolicy: 'network-only' });
      assert.ok(!res.errors, `${what}: errors ${show(res.errors)}`);
      const diff = client.cache.diff({ query, variables, returnPartialData: true, optimistic: false });
      assert.ok(diff.complete, `${what}: the cache cannot answer the query it just stored: ${show(diff.missing?.map((m) => m.message) ?? diff.missing)}`);
      assert.deepEqual(diff.result, res.data, `${what}: the cache answers differently from the network result`);
      return res.data;
    });
  } finally {
    client.stop();
  }
}

// ---------------------------------------------------------------------------------------------

const checks = new Checks('apollo');

await checks.check(
  'cache options from introspection (possibleTypes of HypiRootAggregate, keyFields of stored types)',
  async () => {
    cacheOptions = await arcbaseCacheOptions(url);
    const members = cacheOptions.possibleTypes.HypiRootAggregate;
    assert.ok(members, `introspection lists no possibleTypes for HypiRootAggregate: ${show(cacheOptions.possibleTypes)}`);
    for (const t of ['Author', 'Book', 'Account']) {
      assert.ok(members.includes(t), `HypiRootAggregate's possibleTypes lack ${t}: ${show(members)}`);
      assert.deepEqual(cacheOptions.typePolicies[t]?.keyFields, ['hypi', ['id']], `keyFields of ${t}`);
    }
    console.log(`        possibleTypes: ${JSON.stringify(cacheOptions.possibleTypes)}`);
  },
  { required: true },
);

await checks.check(
  'seed 23 books with upsert mutations through Apollo',
  async () => {
    const existing = await postOk(url, `{ find(type: Book, arcql: "*", first: 1) { edges { cursor } } }`);
    assert.equal(existing.find.edges.length, 0, 'the database already holds Book objects: run against a fresh database');
    const books = PRICES.map((price, i) => ({ title: `Client book ${String(i + 1).padStart(2, '0')}`, price }));
    const client = newClient();
    try {
      await quietly('seeding', async () => {
        // Two calls (12 + 11) so that the ids of one call do not decide the order alone.
        for (const part of [books.slice(0, 12), books.slice(12)]) {
          const res = await client.mutate({ mutation: SEED, variables: { values: { Book: part } } });
          assert.ok(!res.errors, `upsert errors ${show(res.errors)}`);
          const ids = res.data.upsert.map((h) => h.id);
          assert.equal(ids.length, part.length, `upsert returned ${ids.length} ids for ${part.length} books`);
          part.forEach((b, i) => seeded.push({ ...b, id: ids[i] }));
        }
      });
    } finally {
      client.stop();
    }
    // find's default order is hypi.id ascending; ids compare by code point.
    seeded.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const b of seeded) byId.set(b.id, b);
    assert.equal(byId.size, 23, 'upsert returned duplicate ids');
  },
  { required: true },
);

await checks.check('(a) forward paging: first 5 + fetchMore(after: endCursor) until !hasNextPage', async () => {
  const r = await quietly('paging forward', () =>
    pageAll({ what: 'forward', query: FORWARD, variables: { arcql: '*', first: PAGE }, forward: true }),
  );
  assert.equal(r.pages.length, Math.ceil(23 / PAGE), `pages fetched: ${r.pages.map((p) => p.edges.length)}`);
  checkMerged('forward (watched result)', r.merged, seeded, r.problems);
  checkMerged('forward (cache.readQuery)', r.cached?.find, seeded, r.problems);
  assert.equal(r.merged.pageInfo.hasNextPage, false, 'merged hasNextPage');
  assert.equal(r.merged.pageInfo.hasPreviousPage, false, 'merged hasPreviousPage');
  assert.deepEqual(r.problems, [], 'Relay/contract cursor rules');
});

await checks.check('(b) backward paging: last 5 + fetchMore(before: startCursor) until !hasPreviousPage', async () => {
  const r = await quietly('paging backward', () =>
    pageAll({ what: 'backward', query: BACKWARD, variables: { arcql: '*', last: PAGE }, forward: false }),
  );
  assert.equal(r.pages.length, Math.ceil(23 / PAGE), `pages fetched: ${r.pages.map((p) => p.edges.length)}`);
  // Each page is in the query's order (ascending), the first one fetched is the end of the list.
  assert.deepEqual(
    r.pages[0].edges.map((e) => e.node?.hypi?.id),
    seeded.slice(-PAGE).map((b) => b.id),
    'the first backward page is the last 5 books, ascending',
  );
  checkMerged('backward (watched result)', r.merged, seeded, r.problems);
  checkMerged('backward (cache.readQuery)', r.cached?.find, seeded, r.problems);
  assert.equal(r.merged.pageInfo.hasPreviousPage, false, 'merged hasPreviousPage');
  assert.equal(r.merged.pageInfo.hasNextPage, false, 'merged hasNextPage');
  assert.deepEqual(r.problems, [], 'Relay/contract cursor rules');
});

const SORTED = 'price > 5 SORT price ASC';
await checks.check(`(d) forward paging of "${SORTED}"`, async () => {
  const expected = seeded
    .filter((b) => b.price !== null && b.price > 5)
    .sort((a, b) => a.price - b.price || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const r = await quietly('paging a sorted filter', () =>
    pageAll({ what: 'sorted', query: FORWARD, variables: { arcql: SORTED, first: PAGE }, forward: true }),
  );
  assert.equal(r.pages.length, Math.ceil(expected.length / PAGE), `pages fetched: ${r.pages.map((p) => p.edges.length)}`);
  checkMerged('sorted (watched result)', r.merged, expected, r.problems);
  checkMerged('sorted (cache.readQuery)', r.cached?.find, expected, r.problems);
  assert.deepEqual(r.problems, [], 'Relay/contract cursor rules');
});

await checks.check('(e) pageInfo cursors are the edge cursors; after: last endCursor is an empty page', async () => {
  const client = newClient();
  const problems = [];
  try {
    await quietly('reading page ends', async () => {
      for (const [what, query, variables] of [
        ['first page', FORWARD, { arcql: '*', first: PAGE }],
        ['first 5 after the 10th', FORWARD, { arcql: '*', first: PAGE, after: seeded[9].id }],
        ['last page forward', FORWARD, { arcql: '*', first: PAGE, after: seeded[19].id }],
        ['last page', BACKWARD, { arcql: '*', last: PAGE }],
        ['first page backward', BACKWARD, { arcql: '*', last: PAGE, before: seeded[3].id }],
        ['sorted first page', FORWARD, { arcql: SORTED, first: PAGE }],
      ]) {
        const res = await client.query({ query, variables, fetchPolicy: 'no-cache' });
        checkPageInfo(`${what} ${show(variables)}`, res.data.find, problems);
      }
      // Forward to the end, then once more with the last endCursor: nothing, and no next page.
      let after = null;
      let endCursor;
      for (let n = 0; n < 12; n++) {
        const res = await client.query({ query: FORWARD, variables: { arcql: '*', first: PAGE, after }, fetchPolicy: 'no-cache' });
        endCursor = res.data.find.pageInfo.endCursor;
        if (!res.data.find.pageInfo.hasNextPage) break;
        after = endCursor;
      }
      const past = await client.query({ query: FORWARD, variables: { arcql: '*', first: PAGE, after: endCursor }, fetchPolicy: 'no-cache' });
      assert.deepEqual(past.data.find.edges, [], `after: ${show(endCursor)} (the last endCursor) gives edges`);
      assert.equal(past.data.find.pageInfo.hasNextPage, false, `after: ${show(endCursor)}: hasNextPage`);
      // The same backward: before the first startCursor there is nothing.
      const back = await client.query({ query: BACKWARD, variables: { arcql: '*', last: PAGE, before: seeded[2].id }, fetchPolicy: 'no-cache' });
      const startCursor = back.data.find.pageInfo.startCursor;
      assert.equal(back.data.find.pageInfo.hasPreviousPage, false, 'last 5 before the 3rd: hasPreviousPage');
      const before = await client.query({ query: BACKWARD, variables: { arcql: '*', last: PAGE, before: startCursor }, fetchPolicy: 'no-cache' });
      assert.deepEqual(before.data.find.edges, [], `before: ${show(startCursor)} (the first startCursor) gives edges`);
      assert.equal(before.data.find.pageInfo.hasPreviousPage, false, `before: ${show(startCursor)}: hasPreviousPage`);
    });
  } finally {
    client.stop();
  }
  assert.deepEqual(problems, [], 'Relay: startCursor/endCursor are the first/last edge cursors');
});

// (c) every form on get and on find, compared with the direct `... on Book` form.
const DIRECT = 'inline ... on Book';
let direct;
for (const [name, form] of Object.entries(FORMS)) {
  await checks.check(`(c) get and find through the union: ${name}`, async () => {
    const q = formQueries(form);
    const sample = seeded[7];
    const get = await throughApollo(`get with ${name}`, q.get, { id: sample.id });
    const find = await throughApollo(`find with ${name}`, q.find, {});
    if (name === DIRECT) {
      // The direct form, checked against the seed, is the reference for the others.
      assert.deepEqual(
        get,
        { get: { __typename: 'Book', hypi: { __typename: 'Hypi', id: sample.id }, title: sample.title, price: sample.price } },
        'get with ... on Book',
      );
      assert.deepEqual(
        find.find.edges.map((e) => e.node),
        seeded.slice(0, PAGE).map((b) => ({ __typename: 'Book', hypi: { __typename: 'Hypi', id: b.id }, title: b.title, price: b.price })),
        'find with ... on Book',
      );
      direct = { get, find };
      return;
    }
    assert.ok(direct, `no reference: the ${DIRECT} form failed`);
    assert.deepEqual(get, direct.get, `get with ${name} returns other fields than with ... on Book`);
    assert.deepEqual(find, direct.find, `find with ${name} returns other fields than with ... on Book`);
  });
}

checks.finish();
