// GraphQL Code Generator and graphql-js against arcbase's introspection:
//
// 1. the standard introspection query (graphql-js `getIntrospectionQuery()`, what GraphiQL,
//    codegen, Apollo tooling and IDEs send) is answered, and `buildClientSchema` accepts it;
// 2. the introspected schema is the one `arcbase schema build` prints: every type, with the same
//    kind, fields, arguments, input fields, enum values, union members and root types
//    (descriptions aside), and no other type;
// 3. `graphql-codegen` with the typescript + typescript-operations plugins, loading the schema
//    from the URL, generates types for a few typical operations.
//
//   node codegen.mjs http://127.0.0.1:PORT/graphql --sdl BUILT.graphql
//
// BUILT.graphql is the output of `arcbase schema build schema/example.graphql` (the server must
// serve that schema); `--sdl` may also be given as $ARCBASE_SDL. Without it, check 2 fails.
// ARCBASE_KEEP_CODEGEN=1 keeps the generated TypeScript (and the printed introspected schema)
// in the temporary folder it names at the end.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  isScalarType,
  isUnionType,
  printSchema,
  validateSchema,
} from 'graphql';
import { generate } from '@graphql-codegen/cli';
import { Checks, option, post, serverUrl, show, watchdog } from './lib.mjs';

const url = serverUrl('codegen');
const sdlPath = option('sdl', 'ARCBASE_SDL');
watchdog('codegen');

const BUILT_IN = new Set(['String', 'Int', 'Float', 'Boolean', 'ID']);
const work = mkdtempSync(join(tmpdir(), 'arcbase-codegen-'));
process.on('exit', () => {
  if (process.env.ARCBASE_KEEP_CODEGEN) console.log(`codegen: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
});

/** A comparable description of a named type: its kind and members, descriptions left out. */
function shape(t) {
  const args = (list) => list.map((a) => `${a.name}: ${a.type}${a.defaultValue !== undefined ? ` = ${JSON.stringify(a.defaultValue)}` : ''}`);
  if (isObjectType(t) || isInterfaceType(t)) {
    return {
      kind: isObjectType(t) ? 'object' : 'interface',
      interfaces: t.getInterfaces().map((i) => i.name).sort(),
      fields: Object.values(t.getFields()).map((f) => `${f.name}(${args(f.args).join(', ')}): ${f.type}`),
    };
  }
  if (isInputObjectType(t)) return { kind: 'input', fields: args(Object.values(t.getFields())) };
  if (isEnumType(t)) return { kind: 'enum', values: t.getValues().map((v) => v.name) };
  if (isUnionType(t)) return { kind: 'union', members: t.getTypes().map((m) => m.name) };
  if (isScalarType(t)) return { kind: 'scalar' };
  return { kind: 'unknown' };
}

function appTypes(schema) {
  return Object.values(schema.getTypeMap()).filter((t) => !t.name.startsWith('__') && !BUILT_IN.has(t.name));
}

const checks = new Checks('codegen');
let introspection;
let clientSchema;

await checks.check(
  'the standard introspection query (getIntrospectionQuery) is answered and builds a client schema',
  async () => {
    const body = await post(url, getIntrospectionQuery());
    assert.ok(!body.errors?.length, `introspection refused: ${show(body.errors)}`);
    assert.ok(body.data?.__schema, `no __schema in ${show(body).slice(0, 500)}`);
    introspection = body.data;
    clientSchema = buildClientSchema(introspection);
    const invalid = validateSchema(clientSchema);
    assert.deepEqual(invalid.map(String), [], 'the introspected schema is not a valid GraphQL schema');
    writeFileSync(join(work, 'introspected.graphql'), printSchema(clientSchema));
    console.log(`        ${appTypes(clientSchema).length} types introspected`);
  },
);

await checks.check('the introspected schema is the SDL `arcbase schema build` prints', async () => {
  assert.ok(sdlPath, 'no built SDL given: pass --sdl FILE (or ARCBASE_SDL) with the output of `arcbase schema build`');
  const built = buildSchema(readFileSync(sdlPath, 'utf8'));
  const problems = [];
  let introspected = clientSchema;
  if (!introspected) {
    // The standard query was refused: compare anyway through a shallower one (type references
    // 4 wrappers deep are enough for every type this server prints, e.g. [X!]!), and say so.
    const body = await post(url, getIntrospectionQuery({ typeDepth: 4 }));
    assert.ok(body.data?.__schema, `the shallow introspection query is refused too: ${show(body.errors)}`);
    introspected = buildClientSchema(body.data);
    problems.push('(compared through a shallower introspection query: the standard one was refused)');
  }
  const mustHave = ['AuthorInput', 'BookInput', 'BookFields', 'Json', 'DateTime', 'Long', 'BookAggs', 'HypiUpsertInputUnion'];
  for (const name of mustHave) {
    if (!built.getType(name)) problems.push(`the built SDL lacks ${name} (is the server serving schema/example.graphql?)`);
  }
  for (const t of appTypes(built)) {
    const got = introspected.getType(t.name);
    if (!got) {
      problems.push(`missing from introspection: ${shape(t).kind} ${t.name}`);
      continue;
    }
    try {
      assert.deepEqual(shape(got), shape(t));
    } catch {
      problems.push(`differs: ${t.name}\n  built SDL:     ${show(shape(t))}\n  introspection: ${show(shape(got))}`);
    }
  }
  for (const t of appTypes(introspected)) {
    if (!built.getType(t.name)) problems.push(`introspection has a type the built SDL does not print: ${t.name}`);
  }
  for (const root of ['getQueryType', 'getMutationType', 'getSubscriptionType']) {
    const a = built[root]()?.name;
    const b = introspected[root]()?.name;
    if (a !== b) problems.push(`${root}: built SDL ${a}, introspection ${b}`);
  }
  if (problems.length > (clientSchema ? 0 : 1)) {
    throw new assert.AssertionError({
      message: `differences between introspection and the built SDL:\n${problems.join('\n')}`,
    });
  }
});

const DOCUMENTS = /* GraphQL */ `
  fragment BookCard on Book {
    hypi {
      id
      created
    }
    title
    price
    published
    rating
    author {
      name
    }
  }

  query BookById($id: String!) {
    get(type: Book, id: $id) {
      __typename
      ...BookCard
    }
  }

  query BooksPage($arcql: String!, $first: Int, $after: String) {
    find(type: Book, arcql: $arcql, first: $first, after: $after) {
      edges {
        cursor
        node {
          ... on Book {
            ...BookCard
          }
          ... on Author {
            name
          }
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
        pageLimit
      }
    }
  }

  mutation SaveBooks($values: HypiUpsertInputUnion!) {
    upsert(values: $values) {
      id
      created
    }
  }

  query PriceStats {
    aggregate {
      book {
        price {
          sum
          avg
        }
      }
    }
  }
`;

await checks.check('graphql-codegen (typescript, typescript-operations) generates types from the URL', async () => {
  const docs = join(work, 'operations.graphql');
  writeFileSync(docs, DOCUMENTS);
  const outFile = join(work, 'generated.ts');
  const files = await generate(
    {
      schema: url,
      documents: docs,
      silent: true,
      errorsOnly: true,
      generates: {
        [outFile]: {
          plugins: ['typescript', 'typescript-operations'],
          config: { scalars: { DateTime: 'string', Long: 'number', Json: 'unknown' } },
        },
      },
    },
    true,
  );
  assert.equal(files.length, 1, `codegen produced ${files.length} files`);
  const ts = readFileSync(outFile, 'utf8');
  const expected = [
    // typescript: the schema's types
    /export type Book = \{/,
    /export type BookInput = \{/,
    /export type BookInputOpt = \{/,
    /export type HypiFilterConnection = \{/,
    /export type HypiRootAggregate = /,
    /export type HypiUpsertInputUnion = \{/,
    /export type PageInfo = \{/,
    /export type BookAggs = \{/,
    // typescript-operations: one result and one variables type per operation
    /export type BookByIdQuery = \{/,
    /export type BookByIdQueryVariables = /,
    /export type BooksPageQuery = \{/,
    /export type SaveBooksMutation = \{/,
    /export type SaveBooksMutationVariables = /,
    /export type PriceStatsQuery = \{/,
    /export type BookCardFragment = \{/,
  ];
  const missing = expected.filter((re) => !re.test(ts)).map(String);
  assert.deepEqual(missing, [], `generated.ts (${ts.length} bytes) lacks:`);
  console.log(`        generated ${ts.split('\n').length} lines of TypeScript`);
});

checks.finish();
