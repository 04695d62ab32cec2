//! The build step: golden snapshots of the generated SDL (contract §2), every class of SDL
//! error with its `line:column` (contract §1), and the `arcbase schema build` command line.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use arcbase::graphql::generated_sdl;
use arcbase::model::{parse_sdl, Diagnostic};

#[path = "common/rng.rs"]
mod rng;

const EXAMPLE: &str = include_str!("../schema/example.graphql");
const SCALARS: &str = include_str!("schemas/scalars.graphql");
const CYCLES: &str = include_str!("schemas/cycles.graphql");

fn build(sdl: &str) -> String {
    let model = parse_sdl(sdl).unwrap_or_else(|e| panic!("schema is valid: {e:?}"));
    generated_sdl(&model).expect("generated schema is valid")
}

/// The text of one generated definition (`type X {` ... `}`), to assert on its exact shape.
fn block<'a>(sdl: &'a str, header: &str) -> &'a str {
    let start = sdl
        .find(&format!("\n{header} {{"))
        .or_else(|| sdl.starts_with(&format!("{header} {{")).then_some(0))
        .unwrap_or_else(|| panic!("`{header}` is not in the generated SDL"));
    let start = if sdl[start..].starts_with('\n') { start + 1 } else { start };
    let end = start + sdl[start..].find("\n}").expect("block ends") + 2;
    &sdl[start..end]
}

/// `block` with the tab indentation removed, one line per field.
fn lines(sdl: &str, header: &str) -> Vec<String> {
    block(sdl, header).lines().skip(1).filter(|l| *l != "}").map(|l| l.trim().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Golden snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_example() {
    insta::assert_snapshot!("example", build(EXAMPLE));
}

#[test]
fn snapshot_scalars() {
    insta::assert_snapshot!("scalars", build(SCALARS));
}

#[test]
fn snapshot_cycles() {
    insta::assert_snapshot!("cycles", build(CYCLES));
}

#[test]
fn generated_sdl_is_deterministic() {
    for sdl in [EXAMPLE, SCALARS, CYCLES] {
        let first = build(sdl);
        for _ in 0..3 {
            assert_eq!(build(sdl), first);
        }
    }
}

/// Independent of the snapshots: the contract §2 shapes asserted field by field, so a wrong
/// snapshot accepted by accident still fails here.
#[test]
fn contract_shapes_example() {
    let sdl = build(EXAMPLE);
    assert_eq!(
        lines(&sdl, "type Author"),
        [
            "hypi: Hypi",
            "name: String!",
            "age: Int",
            "bestbook: Book",
            "booklist(arcql: String, first: Int, after: String, last: Int, before: String): [Book!]",
            "tags(arcql: String, first: Int, after: String, last: Int, before: String): [String]",
        ]
    );
    assert_eq!(
        lines(&sdl, "input AuthorInput"),
        [
            "name: String!",
            "age: Int",
            "bestbook: BookInput",
            "booklist: [BookInput!]",
            "tags: [String]",
            "hypi: HypiInput"
        ]
    );
    assert_eq!(
        lines(&sdl, "input AuthorInputOpt"),
        [
            "name: String",
            "age: Int",
            "bestbook: BookInputOpt",
            "booklist: [BookInputOpt]",
            "tags: [String]",
            "hypi: HypiInputOpt"
        ]
    );
    let hypi_aggs = [
        "hypi_id: AggOtherScalar",
        "hypi_created: AggOtherScalar",
        "hypi_updated: AggOtherScalar",
        "hypi_trashed: AggOtherScalar",
        "hypi_createdBy: AggOtherScalar",
        "hypi_instanceId: AggOtherScalar",
    ];
    let mut author_aggs = vec!["name: AggOtherScalar", "age: AggInt", "tags: AggOtherScalar"];
    author_aggs.extend(hypi_aggs);
    assert_eq!(lines(&sdl, "type AuthorAggs"), author_aggs);
    let mut book_aggs = vec![
        "title: AggOtherScalar",
        "price: AggFloat",
        "pages: AggInt",
        "published: AggOtherScalar",
        "rating: AggOtherScalar",
        "available: AggOtherScalar",
    ];
    book_aggs.extend(hypi_aggs);
    assert_eq!(lines(&sdl, "type BookAggs"), book_aggs);
    let flat = ["hypi_id", "hypi_created", "hypi_updated", "hypi_trashed", "hypi_createdBy", "hypi_instanceId"];
    let mut fields = vec!["name", "age", "bestbook", "booklist", "tags"];
    fields.extend(flat);
    assert_eq!(lines(&sdl, "enum AuthorFields"), fields);
    let mut scalar_fields = vec!["name", "age", "tags"];
    scalar_fields.extend(flat);
    assert_eq!(lines(&sdl, "enum AuthorScalarFields"), scalar_fields);
    assert_eq!(lines(&sdl, "enum AuthorNumericFields"), ["age"]);
    assert_eq!(lines(&sdl, "enum BookNumericFields"), ["price", "pages"]);
    assert_eq!(
        lines(&sdl, "input AuthorGroupByOptions"),
        ["field: AuthorScalarFields!", "order: AggOrder", "dateGranularity: TimeUnit"]
    );
    assert_eq!(
        lines(&sdl, "type Hypi"),
        [
            "id: ID",
            "impl: String",
            "created: DateTime",
            "updated: DateTime",
            "trashed: DateTime",
            "createdBy: ID",
            "instanceId: String"
        ]
    );
    assert_eq!(lines(&sdl, "input HypiInput"), ["id: ID"]);
    assert_eq!(lines(&sdl, "input HypiInputOpt"), ["id: ID"]);
    // The built-in Account type of every app comes after the app's own types.
    assert_eq!(lines(&sdl, "enum HypiMutationType"), ["Author", "Book", "Account"]);
    assert_eq!(
        lines(&sdl, "input HypiUpsertInputUnion"),
        ["Author: [AuthorInputOpt!]", "Book: [BookInputOpt!]", "Account: [AccountInputOpt!]"]
    );
    assert!(sdl.contains("\nunion HypiRootAggregate = Author | Book | Account\n"), "{sdl}");
    assert_eq!(
        lines(&sdl, "input AccountInput"),
        ["username: String!", "emails: [String]", "password: String!", "hypi: HypiInput"]
    );
    assert_eq!(lines(&sdl, "input AccountInputOpt"), ["username: String", "emails: [String]", "hypi: HypiInputOpt"]);
    assert_eq!(lines(&sdl, "type HypiFilterConnection"), ["edges: [HypiResultEdge!]", "pageInfo: PageInfo!"]);
    assert_eq!(lines(&sdl, "type HypiResultEdge"), ["node: HypiRootAggregate!", "cursor: ID!"]);
    assert_eq!(
        lines(&sdl, "type PageInfo"),
        [
            "hasPreviousPage: Boolean!",
            "hasNextPage: Boolean!",
            "startCursor: ID!",
            "endCursor: ID!",
            "pageLimit: Int",
            "previousOffsets: [String!]",
            "nextOffsets: [String!]"
        ]
    );
    let with_args = "(where: String, groupBy: [AuthorGroupByOptions!]!, having: String, first: Int, after: String, \
                     last: Int, before: String, includeTrashed: Boolean, page: Int): [AuthorAggs]";
    assert_eq!(
        lines(&sdl, "type HypiAggregationType"),
        [
            "author(where: String): AuthorAggs".to_string(),
            format!("authorWith{with_args}"),
            "book(where: String): BookAggs".to_string(),
            format!("bookWith{}", with_args.replace("Author", "Book")),
            "account(where: String): AccountAggs".to_string(),
            format!("accountWith{}", with_args.replace("Author", "Account")),
        ]
    );
    assert_eq!(
        lines(&sdl, "type AggInt"),
        [
            "count(distinct: Boolean): Int",
            "sum(distinct: Boolean): Int",
            "avg(distinct: Boolean): Float",
            "min: Int",
            "max: Int",
            "groupValues: [Pair]"
        ]
    );
    assert_eq!(
        lines(&sdl, "type AggFloat"),
        [
            "count(distinct: Boolean): Int",
            "sum(distinct: Boolean): Float",
            "avg(distinct: Boolean): Float",
            "min: Float",
            "max: Float",
            "groupValues: [Pair]"
        ]
    );
    assert_eq!(lines(&sdl, "type AggOtherScalar"), ["count(distinct: Boolean): Int", "groupValues: [Pair]"]);
    assert_eq!(lines(&sdl, "type Pair"), ["key: String", "value: String"]);
    assert_eq!(lines(&sdl, "enum AggOrder"), ["ASC", "DESC"]);
    assert_eq!(lines(&sdl, "enum TimeUnit"), ["SECONDS", "MINUTES", "HOURS", "DAYS"]);
    for scalar in ["DateTime", "Long", "Json"] {
        assert!(sdl.contains(&format!("\nscalar {scalar}\n")), "scalar {scalar} missing");
    }
    // Descriptions of the app schema survive.
    assert!(sdl.contains("\"\"\"\nAn author of books.\n\"\"\"\ntype Author {"), "{sdl}");
}

#[test]
fn contract_shapes_scalars() {
    let sdl = build(SCALARS);
    let input = lines(&sdl, "input EverythingInput");
    for want in ["id: ID!", "optId: ID", "when: DateTime!", "big: Long!", "blob: Json!", "color: Color!"] {
        assert!(input.iter().any(|l| l == want), "{want} in {input:?}");
    }
    for want in ["scores: [Int!]", "weights: [Float]!", "stamps: [DateTime!]!", "colors: [Color!]", "sizes: [Size]"] {
        assert!(input.iter().any(|l| l == want), "{want} in {input:?}");
    }
    // XInputOpt: no field is required.
    let opt = lines(&sdl, "input EverythingInputOpt");
    assert!(opt.iter().all(|l| !l.ends_with('!')), "{opt:?}");
    assert!(opt.contains(&"weights: [Float]".to_string()) && opt.contains(&"stamps: [DateTime!]".to_string()));
    // Aggregates: Int → AggInt, Float → AggFloat, everything else (Long, lists of Int) →
    // AggOtherScalar.
    let aggs = lines(&sdl, "type EverythingAggs");
    for want in [
        "count: AggInt",
        "optCount: AggInt",
        "ratio: AggFloat",
        "optRatio: AggFloat",
        "big: AggOtherScalar",
        "flag: AggOtherScalar",
        "when: AggOtherScalar",
        "blob: AggOtherScalar",
        "color: AggOtherScalar",
        "scores: AggOtherScalar",
        "weights: AggOtherScalar",
        "colors: AggOtherScalar",
    ] {
        assert!(aggs.iter().any(|l| l == want), "{want} in {aggs:?}");
    }
    assert_eq!(
        lines(&sdl, "enum EverythingNumericFields"),
        ["count", "optCount", "ratio", "optRatio", "big", "optBig"]
    );
    // No numeric field: no XNumericFields at all.
    assert!(!sdl.contains("NoteNumericFields"), "{sdl}");
    assert_eq!(lines(&sdl, "enum Color"), ["RED", "GREEN", "BLUE"]);
    assert_eq!(lines(&sdl, "enum Size"), ["S", "M", "L", "XL"]);
    assert!(sdl.contains("\"\"\"\nSizes.\n\"\"\"\nenum Size {"), "{sdl}");
}

#[test]
fn contract_shapes_cycles() {
    let sdl = build(CYCLES);
    assert_eq!(
        lines(&sdl, "input PersonInput"),
        [
            "name: String!",
            "partner: PersonInput",
            "friends: [PersonInput!]",
            "mentors: [PersonInput!]!",
            "employer: CompanyInput",
            "hypi: HypiInput"
        ]
    );
    assert_eq!(
        lines(&sdl, "input PersonInputOpt"),
        [
            "name: String",
            "partner: PersonInputOpt",
            "friends: [PersonInputOpt]",
            "mentors: [PersonInputOpt]",
            "employer: CompanyInputOpt",
            "hypi: HypiInputOpt"
        ]
    );
    assert_eq!(
        lines(&sdl, "input CompanyInput"),
        ["name: String!", "ceo: PersonInput!", "staff: [PersonInput!]!", "hypi: HypiInput"]
    );
    assert_eq!(lines(&sdl, "input BetaInput"), ["b: Float", "gamma: GammaInput!", "hypi: HypiInput"]);
    assert_eq!(lines(&sdl, "input GammaInputOpt"), ["g: Long", "alphas: [AlphaInputOpt]", "hypi: HypiInputOpt"]);
    // References are left out of the aggregates; Long is not AggInt.
    assert_eq!(lines(&sdl, "type PersonAggs")[0], "name: AggOtherScalar");
    assert_eq!(lines(&sdl, "type PersonAggs").len(), 7);
    assert_eq!(lines(&sdl, "type GammaAggs")[0], "g: AggOtherScalar");
    assert_eq!(lines(&sdl, "enum GammaNumericFields"), ["g"]);
    assert!(!sdl.contains("PersonNumericFields"));
    assert_eq!(lines(&sdl, "enum HypiMutationType"), ["Person", "Company", "Alpha", "Beta", "Gamma", "Account"]);
    assert!(sdl.contains("\nunion HypiRootAggregate = Person | Company | Alpha | Beta | Gamma | Account\n"), "{sdl}");
}

// ---------------------------------------------------------------------------------------------
// SDL errors: every class, with message and position
// ---------------------------------------------------------------------------------------------

fn errors(sdl: &str) -> Vec<Diagnostic> {
    match parse_sdl(sdl) {
        Ok(_) => panic!("expected the schema to be rejected:\n{sdl}"),
        Err(e) => e,
    }
}

fn d(line: usize, column: usize, message: &str) -> Diagnostic {
    Diagnostic { line, column, message: message.to_string() }
}

/// The schema is rejected with exactly these diagnostics, in this order.
#[track_caller]
fn rejects(sdl: &str, want: &[Diagnostic]) {
    assert_eq!(errors(sdl), want, "schema:\n{sdl}");
}

#[test]
fn syntax_error() {
    rejects("type A {\n  name: String\n", &[d(3, 1, "syntax error: Unexpected end of input; Expected }")]);
    rejects("type A {\n  name String\n}\n", &[d(2, 8, "syntax error: Unexpected `String[Name]`; Expected :")]);
    let e = errors("");
    assert_eq!((e.len(), e[0].line, e[0].column), (1, 1, 1));
    assert!(e[0].message.starts_with("syntax error: Unexpected end of input"), "{e:?}");
}

#[test]
fn unknown_type() {
    rejects(
        "type A {\n  x: Int\n  b: Foo\n  c: [Bar!]\n}\n",
        &[d(3, 3, "field 'A.b' has unknown type 'Foo'"), d(4, 3, "field 'A.c' has unknown type 'Bar'")],
    );
}

#[test]
fn duplicate_type_and_field() {
    rejects("type A { x: Int }\ntype A { y: Int }\n", &[d(2, 1, "duplicate type 'A' (first defined at 1:1)")]);
    rejects("enum E { X }\ntype E { y: Int }\n", &[d(2, 1, "duplicate type 'E' (first defined at 1:1)")]);
    rejects("type A {\n  x: Int\n  x: String\n}\n", &[d(3, 3, "duplicate field 'A.x'")]);
    rejects("enum E { X Y X }\ntype A { e: E }\n", &[d(1, 14, "duplicate enum value 'E.X'")]);
}

#[test]
fn names_that_differ_only_in_case() {
    // Table and column names ignore case in SQLite: these would share one table or column.
    rejects(
        "type Book { x: Int }\ntype book { y: Int }\n",
        &[d(
            2,
            1,
            "type 'book' differs from type 'Book' (at 1:1) only in letter case; type names must differ in more than case",
        )],
    );
    rejects(
        "type A {\n  title: String\n  Title: String\n}\n",
        &[d(
            3,
            3,
            "field 'A.Title' differs from field 'A.title' (at 2:3) only in letter case; column names must differ in more than case",
        )],
    );
    rejects(
        "type A { HYPI_ID: String }\n",
        &[d(1, 10, "field name 'A.HYPI_ID' is reserved: 'hypi' and 'hypi_*' belong to the system")],
    );
}

#[test]
fn reserved_names() {
    rejects(
        "type A {\n  hypi: String\n  hypi_x: Int\n  ok: Int\n}\n",
        &[
            d(2, 3, "field name 'A.hypi' is reserved: 'hypi' and 'hypi_*' belong to the system"),
            d(3, 3, "field name 'A.hypi_x' is reserved: 'hypi' and 'hypi_*' belong to the system"),
        ],
    );
    rejects(
        "type Hypi { a: Int }\ntype Query { a: Int }\ntype PageInfo { a: Int }\nenum AggOrder { UP }\n",
        &[
            d(1, 1, "type name 'Hypi' is reserved"),
            d(2, 1, "type name 'Query' is reserved"),
            d(3, 1, "type name 'PageInfo' is reserved"),
            d(4, 1, "type name 'AggOrder' is reserved"),
        ],
    );
    // A field may not name a reserved type either.
    rejects("type A { p: PageInfo }\n", &[d(1, 10, "field 'A.p' uses type 'PageInfo', which cannot be stored")]);
}

#[test]
fn invalid_names() {
    rejects(
        "type __A { a: Int }\ntype B { __b: Int }\n",
        &[
            d(1, 1, "type name '__A' is reserved: names may not start with '__'"),
            d(2, 10, "field name '__b' is reserved: names may not start with '__'"),
        ],
    );
    let long = "a".repeat(41);
    rejects(
        &format!("type A {{\n  {long}: Int\n}}\n"),
        &[d(2, 3, &format!("field name '{long}' is too long: at most 40 characters"))],
    );
    let long_type = format!("T{}", "x".repeat(40));
    rejects(
        &format!("type {long_type} {{ a: Int }}\n"),
        &[d(1, 1, &format!("type name '{long_type}' is too long: at most 40 characters"))],
    );
    // 40 characters is still fine.
    assert!(parse_sdl(&format!("type A {{ {}: Int }}", "a".repeat(40))).is_ok());
    // `__` separates the parts of storage names (`app__Type__field`).
    rejects(
        "type A { b: [Int] }\ntype A__b { z: Int }\n",
        &[d(2, 1, "type name 'A__b' may not contain '__': storage names use it as a separator")],
    );
    rejects(
        "type A { my__field: Int }\n",
        &[d(1, 10, "field name 'my__field' may not contain '__': storage names use it as a separator")],
    );
    // Not an identifier at all: the lexer reports it where it starts.
    rejects("type 1A { a: Int }\n", &[d(1, 6, "syntax error: Unexpected unsupported integer \"1A\"; Expected Name")]);
    rejects("type A { a-b: Int }\n", &[d(1, 11, "syntax error: Unexpected unsupported integer \"-b\"; Expected :")]);
    rejects(
        "type Autor {\n  név: String\n}\n",
        &[d(2, 4, "syntax error: unexpected character 'é' (U+00E9); names use only ASCII letters, digits and '_'")],
    );
    // GraphQL forbids true, false and null as enum values; a field of that name would be
    // one in the generated `XFields` enum.
    rejects(
        "enum E { true }\ntype A { e: E }\n",
        &[d(1, 10, "enum value 'E.true' is not allowed: GraphQL reserves true, false and null")],
    );
    rejects(
        "type A { null: Int }\n",
        &[d(
            1,
            10,
            "field name 'A.null' is not allowed: true, false and null cannot be values of the generated enum 'AFields'",
        )],
    );
}

#[test]
fn union_used_as_stored_type() {
    rejects(
        "union U = A | B\ntype A { u: U\n  l: [U] }\ntype B { x: Int }\n",
        &[
            d(1, 1, "union 'U' cannot be stored: use an object type per member"),
            d(2, 10, "field 'A.u' uses union 'U', which cannot be stored"),
            d(3, 3, "field 'A.l' uses union 'U', which cannot be stored"),
        ],
    );
}

#[test]
fn unknown_directives() {
    rejects(
        "type A @cache(ttl: 5) {\n  x: Int @deprecated\n  y: Int @unique @bogus\n}\n",
        &[
            d(1, 8, "unknown directive '@cache' on type 'A'"),
            d(2, 10, "unknown directive '@deprecated' on field 'A.x'"),
            d(3, 18, "unknown directive '@bogus' on field 'A.y'"),
        ],
    );
    rejects("enum E @x { A }\ntype T { e: E }\n", &[d(1, 8, "unknown directive '@x' on enum 'E'")]);
    rejects("type A @unique { x: Int }\n", &[d(1, 8, "unknown directive '@unique' on type 'A'")]);
    rejects(
        "type A { x: Int @indices(sets: [[\"x\"]]) }\n",
        &[d(1, 17, "unknown directive '@indices' on field 'A.x'")],
    );
}

#[test]
fn unique_on_list_reference_or_json() {
    rejects(
        "type A {\n  l: [Int] @unique\n  r: B @unique\n  rs: [B] @unique\n  j: Json @unique\n  ok: String @unique\n}\ntype B { x: Int }\n",
        &[
            d(2, 12, "@unique on 'A.l' needs a single scalar or enum field"),
            d(3, 8, "@unique on 'A.r' needs a single scalar or enum field"),
            d(4, 11, "@unique on 'A.rs' needs a single scalar or enum field"),
            d(5, 11, "@unique on 'A.j' is not supported for Json fields"),
        ],
    );
}

#[test]
fn indices_errors() {
    rejects(
        "type A @indices(sets: [[\"x\"], [\"nope\"], [\"x\", \"y\"]]) {\n  x: Int\n}\n",
        &[d(1, 8, "@indices on 'A': unknown field 'A.nope'"), d(1, 8, "@indices on 'A': unknown field 'A.y'")],
    );
    rejects(
        "type A @indices(sets: [[\"tags\"]]) {\n  tags: [String]\n}\n",
        &[d(1, 8, "@indices on 'A': field 'tags' is a list or Json and cannot be indexed")],
    );
    rejects(
        "type A @indices(fields: [\"x\"]) { x: Int }\n",
        &[d(1, 8, "@indices on 'A' takes one argument: sets: [[\"field\", ...], ...]")],
    );
    rejects("type A @indices(sets: [[]]) { x: Int }\n", &[d(1, 8, "@indices on 'A': an index set is empty")]);
}

#[test]
fn interfaces_inputs_and_other_definitions() {
    rejects(
        "interface I { a: Int }\ntype A implements I { a: Int }\n",
        &[
            d(1, 1, "interface 'I' is not supported"),
            d(2, 1, "type 'A' implements an interface; interfaces are not supported"),
        ],
    );
    rejects(
        "input AI { a: Int }\ntype A { a: Int }\n",
        &[d(1, 1, "input type 'AI' is not allowed: input types are generated from the object types")],
    );
    rejects(
        "scalar Money\ntype A { a: Money }\n",
        &[
            d(
                1,
                1,
                "custom scalar 'Money' is not supported; use ID, String, Int, Float, Boolean, DateTime, Long or Json",
            ),
            d(2, 10, "field 'A.a' has unknown type 'Money'"),
        ],
    );
    rejects(
        "type A { a: Int }\nextend type A { b: Int }\n",
        &[d(2, 8, "type extensions are not supported: declare every field in the type itself")],
    );
    rejects(
        "type A { a: [[Int]] }\n",
        &[d(1, 10, "field 'A.a' has a nested list type; only one level of list is supported")],
    );
    rejects("type A { a(x: Int): Int }\n", &[d(1, 10, "field 'A.a' has arguments; stored fields take none")]);
    rejects("enum E { X }\n", &[d(1, 1, "the schema declares no object type")]);
}

#[test]
fn generated_name_collisions() {
    rejects(
        "type Author { a: Int }\ntype AuthorInput { a: Int }\nenum AuthorFields { A }\n",
        &[
            d(2, 1, "type name 'AuthorInput' collides with a name generated for type 'Author'"),
            d(3, 1, "type name 'AuthorFields' collides with a name generated for type 'Author'"),
        ],
    );
    // Two generated names can collide too: `A` + `ScalarFields` is `AScalar` + `Fields`.
    rejects(
        "type A { x: Int }\ntype AScalar { y: Int }\n",
        &[d(
            2,
            1,
            "type 'AScalar' and type 'A' would both generate 'AScalarFields' ('AScalar' + 'Fields' and 'A' + \
             'ScalarFields'); rename one of them",
        )],
    );
    rejects(
        "type ANumeric { y: Int }\ntype A { x: Int }\n",
        &[d(
            2,
            1,
            "type 'A' and type 'ANumeric' would both generate 'ANumericFields' ('A' + 'NumericFields' and 'ANumeric' \
             + 'Fields'); rename one of them",
        )],
    );
    // `HypiAggregationType` has fields `x` and `xWith` for every type `X`.
    rejects(
        "type A { x: Int }\ntype AWith { y: Int }\n",
        &[d(2, 1, "type name 'AWith' collides with the aggregation field 'aWith' generated for type 'A'")],
    );
}

#[test]
fn required_reference_cycles() {
    rejects(
        "type A {\n  me: A!\n}\n",
        &[d(
            2,
            3,
            "field 'A.me' is part of a cycle of required references (A.me -> A): no object of these types could ever \
             be created; make one of these fields optional",
        )],
    );
    let e = errors("type A { b: B! }\ntype B { c: C! }\ntype C { a: A! }\n");
    assert_eq!(e.iter().map(|d| (d.line, d.column)).collect::<Vec<_>>(), [(1, 10), (2, 10), (3, 10)]);
    assert!(e[0].message.contains("(A.b -> B.c -> C.a -> A)"), "{e:?}");
    // Optional links or lists break the cycle: the cycles schema is accepted.
    assert!(parse_sdl(CYCLES).is_ok());
}

#[test]
fn several_errors_are_all_reported_sorted_by_position() {
    let sdl = "type B {\n  x: Nope\n  hypi: Int\n}\n\ntype A @bad {\n  y: Int\n  y: Int\n}\ntype Query { q: Int }\n";
    rejects(
        sdl,
        &[
            d(2, 3, "field 'B.x' has unknown type 'Nope'"),
            d(3, 3, "field name 'B.hypi' is reserved: 'hypi' and 'hypi_*' belong to the system"),
            d(6, 8, "unknown directive '@bad' on type 'A'"),
            d(8, 3, "duplicate field 'A.y'"),
            d(10, 1, "type name 'Query' is reserved"),
        ],
    );
    // The errors come back in position order however the checks found them.
    let many =
        errors("type Z { a: X1 }\ntype Y { hypi: Int }\nunion U = Z\ntype V @k { b: [[Int]] }\ntype Hypi { c: Int }\n");
    let positions: Vec<_> = many.iter().map(|d| (d.line, d.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    assert_eq!(many.len(), 6, "{many:?}");
}

#[test]
fn columns_count_characters() {
    // A tab is one column (graphql-parser itself counts 8), a byte-order mark none.
    rejects(
        "type A {\n\tx: Nope\n\t\ty: Int @z\n}\n",
        &[d(2, 2, "field 'A.x' has unknown type 'Nope'"), d(3, 10, "unknown directive '@z' on field 'A.y'")],
    );
    rejects("\u{feff}type A { x: Nope }\n", &[d(1, 10, "field 'A.x' has unknown type 'Nope'")]);
    rejects("type A {\n\t\ty\n}\n", &[d(3, 1, "syntax error: Unexpected `}[Punctuator]`; Expected :")]);
    rejects("type A {\n\tx:\tInt\t@z }\n", &[d(2, 9, "unknown directive '@z' on field 'A.x'")]);
    // Windows line ends.
    rejects("type A {\r\n  x: Nope\r\n}\r\n", &[d(2, 3, "field 'A.x' has unknown type 'Nope'")]);
}

#[test]
fn deeply_nested_sdl_is_an_error_not_a_crash() {
    for depth in [100, 5_000, 50_000] {
        let sdl = format!("type A {{ x: {}Int{} }}", "[".repeat(depth), "]".repeat(depth));
        let e = errors(&sdl);
        assert_eq!(e.len(), 1, "{depth}: {e:?}");
        let sdl = format!("type A @indices(sets: {}) {{ x: Int }}", "[".repeat(depth) + &"]".repeat(depth));
        assert!(!errors(&sdl).is_empty());
    }
}

#[test]
fn diagnostic_display_is_line_column_message() {
    assert_eq!(d(3, 7, "boom").to_string(), "3:7: boom");
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

fn arcbase() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arcbase"))
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn cli_build_prints_generated_sdl() {
    for (rel, sdl) in [("schema/example.graphql", EXAMPLE), ("tests/schemas/cycles.graphql", CYCLES)] {
        let out = arcbase().args(["schema", "build"]).arg(manifest(rel)).output().unwrap();
        assert!(out.status.success(), "{}: {}", rel, String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap(), build(sdl));
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn cli_build_reports_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.graphql");
    std::fs::write(&file, "type A {\n  x: Nope\n  hypi: Int\n}\ntype A { y: Int }\n").unwrap();
    let out = arcbase().args(["schema", "build"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing printed on stdout: {}", String::from_utf8_lossy(&out.stdout));
    let f = file.display().to_string();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        got,
        [
            format!("{f}:2:3: field 'A.x' has unknown type 'Nope'"),
            format!("{f}:3:3: field name 'A.hypi' is reserved: 'hypi' and 'hypi_*' belong to the system"),
            format!("{f}:5:1: duplicate type 'A' (first defined at 1:1)"),
        ]
    );

    // A syntax error is one line in the same form.
    std::fs::write(&file, "type A {\n").unwrap();
    let out = arcbase().args(["schema", "build"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end(), format!("{f}:2:1: syntax error: Unexpected end of input; Expected Name"));

    // A file that does not exist: exit 2 too, and the message names the file.
    let missing = dir.path().join("missing.graphql");
    let out = arcbase().args(["schema", "build"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(&missing.display().to_string()));
}

#[test]
fn cli_build_out_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("generated.graphql");
    let out = arcbase()
        .args(["schema", "build"])
        .arg(manifest("tests/schemas/scalars.graphql"))
        .arg("--out")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "with --out nothing goes to stdout");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), build(SCALARS));

    // An invalid schema does not write (or truncate) the output file.
    let bad = dir.path().join("bad.graphql");
    std::fs::write(&bad, "type A { x: Nope }").unwrap();
    let out = arcbase().args(["schema", "build"]).arg(&bad).arg("--out").arg(&target).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), build(SCALARS));
}

/// Any schema the build step accepts must become a valid GraphQL schema: no panic while
/// generating (async-graphql panics on a duplicate field), no error, and output that parses.
/// Schemas are drawn from names chosen to collide in every way the generated names can.
#[test]
fn every_accepted_schema_builds() {
    // Mostly fine names, sometimes one that collides with another or with a generated name.
    const TYPES: &[&str] = &["A", "B", "C", "Node", "AWith", "AScalar", "ANumeric", "Ab"];
    const TRICKY_TYPES: &[&str] = &["a", "aWith", "AInput", "Hypi", "A_", "AB", "E", "Pair", "BWith", "CScalar"];
    const FIELDS: &[&str] = &["x", "y", "z", "name", "tags", "id", "a_b", "next", "n1"];
    const TRICKY_FIELDS: &[&str] = &["X", "hypi", "null", "true", "x__y", "HYPI_ID", "Name", "hypi_x", "__f"];
    const SCALARS: &[&str] = &["Int", "Float", "String", "Long", "Json", "ID", "Boolean", "DateTime", "E"];
    let mut rng = rng::Rng(0x2545_f491_4f6c_dd1d);
    let mut next = |n: usize| rng.index(n);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..3000 {
        let mut sdl = String::new();
        let mut names = Vec::new();
        for _ in 0..1 + next(4) {
            let name = if next(8) == 0 { TRICKY_TYPES[next(TRICKY_TYPES.len())] } else { TYPES[next(TYPES.len())] };
            if names.contains(&name) && next(4) != 0 {
                continue;
            }
            names.push(name);
        }
        if next(2) == 0 {
            sdl.push_str("enum E { P Q }\n");
        }
        for name in &names {
            sdl.push_str(&format!("type {name} {{\n"));
            for _ in 0..1 + next(4) {
                let field =
                    if next(8) == 0 { TRICKY_FIELDS[next(TRICKY_FIELDS.len())] } else { FIELDS[next(FIELDS.len())] };
                let base = if next(3) == 0 { names[next(names.len())] } else { SCALARS[next(SCALARS.len())] };
                let ty = match next(5) {
                    0 => format!("{base}!"),
                    1 => format!("[{base}]"),
                    2 => format!("[{base}!]!"),
                    _ => base.to_string(),
                };
                let directive = if next(6) == 0 { " @unique" } else { "" };
                sdl.push_str(&format!("  {field}: {ty}{directive}\n"));
            }
            sdl.push_str("}\n");
        }
        match parse_sdl(&sdl) {
            Err(errors) => {
                rejected += 1;
                assert!(!errors.is_empty());
                assert!(errors.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
            }
            Ok(model) => {
                accepted += 1;
                let out = std::panic::catch_unwind(|| generated_sdl(&model))
                    .unwrap_or_else(|_| panic!("generating the schema panicked for:\n{sdl}"));
                let out = out.unwrap_or_else(|e| panic!("generated schema invalid ({e:?}) for:\n{sdl}"));
                graphql_parser::schema::parse_schema::<String>(&out)
                    .unwrap_or_else(|e| panic!("generated SDL does not parse ({e}) for:\n{sdl}"));
                // No generated type silently replaced another one of the same name.
                let flat = arcbase::model::HYPI_FLAT_FIELDS.map(String::from);
                for ty in &model.types {
                    let all: Vec<String> = ty.fields.iter().map(|f| f.name.clone()).chain(flat.clone()).collect();
                    assert_eq!(lines(&out, &format!("enum {}Fields", ty.name)), all, "{sdl}");
                    let scalars: Vec<String> = ty
                        .fields
                        .iter()
                        .filter(|f| !f.is_reference())
                        .map(|f| f.name.clone())
                        .chain(flat.clone())
                        .collect();
                    assert_eq!(lines(&out, &format!("enum {}ScalarFields", ty.name)), scalars, "{sdl}");
                    assert_eq!(lines(&out, &format!("type {}", ty.name))[0], "hypi: Hypi", "{sdl}");
                    assert_eq!(lines(&out, &format!("type {}", ty.name)).len(), ty.fields.len() + 1, "{sdl}");
                }
            }
        }
    }
    // Both outcomes were exercised.
    assert!(accepted > 100 && rejected > 100, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn cli_serve_refuses_an_invalid_schema_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("bad.graphql");
    let db = dir.path().join("never.db");
    std::fs::write(&schema, "type A {\n  me: A!\n  x: Nope\n}\n").unwrap();
    let out = arcbase()
        .args(["serve", "--listen", "127.0.0.1:0", "--schema"])
        .arg(&schema)
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("ARCBASE_ADMIN_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = schema.display();
    assert!(stderr.contains(&format!("{f}:2:3: field 'A.me' is part of a cycle")), "{stderr}");
    assert!(stderr.contains(&format!("{f}:3:3: field 'A.x' has unknown type 'Nope'")), "{stderr}");
    assert!(!db.exists(), "nothing is half-applied: the database was not even created");
}
