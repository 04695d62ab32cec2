//! Micro-benchmarks, so regressions show: `cargo bench --bench micro`.
//!
//! - ArcQL parse + type check + SQL render of a representative filter;
//! - the build step for a 50-type SDL (model + generated GraphQL schema);
//! - the upsert path without the database: input validation and the statements it renders.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use arcbase::config::Limits;
use arcbase::plan::filter::plan_query;
use arcbase::plan::write::plan_upsert;
use arcbase::sql::find::{FindRenderer, Output, Select, Trashed};
use arcbase::sql::write::WriteRenderer;
use arcbase::sql::{Dialect, Viewer};

const EXAMPLE: &str = include_str!("../schema/example.graphql");

fn fifty_types() -> String {
    let mut sdl = String::new();
    for i in 0..50 {
        let next = (i + 1) % 50;
        sdl.push_str(&format!(
            "type T{i} @indices(sets: [[\"a\"]]) {{ a: String! @unique  b: Int  c: Float  d: DateTime  e: [String]  \
             r: T{next}  rs: [T{next}!]  k: Kind }}\n"
        ));
    }
    sdl.push_str("enum Kind { X Y Z }\n");
    sdl
}

fn arcql(c: &mut Criterion) {
    let model = arcbase::model::parse_sdl(EXAMPLE).expect("example");
    let (book, _) = model.type_by_name("Book").expect("Book");
    let q = "(title ~ 'blue moon' OR title ^ 'The') AND price IN [1, 10) AND NOT EXIST author.bestbook \
             AND rating IN ('GOOD',) SORT price ASC, published";
    c.bench_function("arcql parse+check+render", |b| {
        b.iter(|| {
            let plan = plan_query(&model, book, black_box(q)).expect("plan");
            let s = Select::forward(book, &plan, "default", Trashed::Hide, Some(26));
            black_box(FindRenderer { model: &model, app: "default", dialect: Dialect::Sqlite }.select(&s, Output::Ids))
        })
    });
}

fn schema_build(c: &mut Criterion) {
    let sdl = fifty_types();
    c.bench_function("schema build (50 types)", |b| {
        b.iter(|| {
            let model = arcbase::model::parse_sdl(black_box(&sdl)).expect("model");
            black_box(arcbase::graphql::schema::build_schema(&model, &Limits::default()).expect("schema"))
        })
    });
}

fn upsert_path(c: &mut Criterion) {
    let model = arcbase::model::parse_sdl(EXAMPLE).expect("example");
    let values = serde_json::json!({
        "Author": (0..25).map(|i| serde_json::json!({
            "name": format!("author {i}"), "age": i, "tags": ["a", "b"],
            "bestbook": { "title": format!("book {i}"), "price": 9.5, "published": "2020-07-09T10:00:00Z" },
        })).collect::<Vec<_>>()
    });
    let limits = Limits::default().write_limits();
    c.bench_function("upsert plan+render (25 nested objects)", |b| {
        b.iter(|| {
            let objects = plan_upsert(&model, black_box(&values), limits).expect("plan");
            let r = WriteRenderer { model: &model, app: "default", dialect: Dialect::Sqlite, viewer: &Viewer::Admin };
            let mut n = 0;
            for o in &objects {
                n += r.insert(o.type_idx, "default", "id", "2026-01-01T00:00:00.000Z", None, &o.columns).binds.len();
            }
            black_box(n)
        })
    });
}

criterion_group!(benches, arcql, schema_build, upsert_path);
criterion_main!(benches);
