//! A nested read is one SQL statement, whatever it touches; list fields page like `find`.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// An author "Main" whose booklist holds 100 books `t000`..`t099`, book `i` having as its
/// `author` the other author `other{i % 5}`. Returns the app, Main's id and the book ids.
async fn library() -> (TestApp, String, Vec<String>) {
    let t = TestApp::new(EXAMPLE).await;
    let others =
        t.upsert(json!({ "Author": (0..5).map(|i| json!({ "name": format!("other{i}") })).collect::<Vec<_>>() })).await;
    let books: Vec<Value> = (0..100)
        .map(|i| json!({ "title": format!("t{i:03}"), "pages": i, "author": { "hypi": { "id": others[i % 5] } } }))
        .collect();
    let main = t.upsert(json!({ "Author": [{ "name": "Main", "booklist": books }] })).await.remove(0);
    let data = read(&t, &main, "booklist(first: 100) { hypi { id } }").await;
    let ids: Vec<String> =
        data["booklist"].as_array().unwrap().iter().map(|b| b["hypi"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 100);
    (t, main, ids)
}

async fn read(t: &TestApp, id: &str, sel: &str) -> Value {
    let q = format!("query($id: String!) {{ get(type: Author, id: $id) {{ ... on Author {{ {sel} }} }} }}");
    t.ok(&q, json!({ "id": id })).await["get"].clone()
}

/// Read, and assert the read was exactly one SQL statement.
async fn read_once(t: &TestApp, id: &str, sel: &str) -> Value {
    let before = t.statements();
    let data = read(t, id, sel).await;
    assert_eq!(t.statements() - before, 1, "the read `{sel}` must be one statement");
    data
}

fn titles(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap().to_string()).collect()
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("t{i:03}")).collect()
}

#[tokio::test]
async fn a_nested_read_of_100_books_and_their_authors_is_one_statement() {
    let (t, main, _) = library().await;
    let data = read_once(&t, &main, "name booklist(first: 100) { title author { name } }").await;
    assert_eq!(data["name"], "Main");
    let list = data["booklist"].as_array().unwrap();
    assert_eq!(list.len(), 100);
    for (i, b) in list.iter().enumerate() {
        assert_eq!(b, &json!({ "title": format!("t{i:03}"), "author": { "name": format!("other{}", i % 5) } }));
    }

    // Deeper: each book's author's own (empty) booklist and bestbook, still one statement.
    let data = read_once(
        &t,
        &main,
        "booklist(first: 100) { pages author { name bestbook { title } booklist { title } } } bestbook { title }",
    )
    .await;
    let list = data["booklist"].as_array().unwrap();
    assert_eq!(list.len(), 100);
    assert_eq!(list[99], json!({ "pages": 99, "author": { "name": "other4", "bestbook": null, "booklist": [] } }));
    assert_eq!(data["bestbook"], Value::Null);
}

#[tokio::test]
async fn a_flat_list_read_is_one_statement() {
    let (t, main, _) = library().await;
    let data = read_once(&t, &main, "booklist(first: 100) { title }").await;
    assert_eq!(titles(&data["booklist"]), expected(0..100));
    // Without `first` the page size is the default, 25.
    let data = read_once(&t, &main, "booklist { title }").await;
    assert_eq!(titles(&data["booklist"]), expected(0..25));
    // More than the cap is clamped to it (100; the list has exactly 100).
    let data = read_once(&t, &main, "booklist(first: 1000) { title }").await;
    assert_eq!(titles(&data["booklist"]), expected(0..100));
}

#[tokio::test]
async fn list_fields_page_with_first_last_after_before() {
    let (t, main, ids) = library().await;
    let after50 = &ids[49];

    let data = read_once(&t, &main, "booklist(last: 10) { title }").await;
    assert_eq!(titles(&data["booklist"]), expected(90..100));

    let sel = format!(r#"booklist(after: "{after50}", first: 10) {{ title }}"#);
    let data = read_once(&t, &main, &sel).await;
    assert_eq!(titles(&data["booklist"]), expected(50..60));

    // `after` alone: the default page size from there.
    let sel = format!(r#"booklist(after: "{after50}") {{ title }}"#);
    let data = read_once(&t, &main, &sel).await;
    assert_eq!(titles(&data["booklist"]), expected(50..75));

    // `after` near the end: what is left.
    let sel = format!(r#"booklist(after: "{}", first: 10) {{ title }}"#, ids[95]);
    assert_eq!(titles(&read(&t, &main, &sel).await["booklist"]), expected(96..100));

    // `before` pages backwards, the result still in list order.
    let sel = format!(r#"booklist(before: "{after50}", last: 5) {{ title }}"#);
    let data = read_once(&t, &main, &sel).await;
    assert_eq!(titles(&data["booklist"]), expected(44..49));

    // `before` with `first`: from the start, stopping before the cursor.
    let sel = format!(r#"booklist(before: "{}", first: 10) {{ title }}"#, ids[3]);
    assert_eq!(titles(&read(&t, &main, &sel).await["booklist"]), expected(0..3));

    // Both cursors: the elements strictly between them.
    let sel = format!(r#"booklist(after: "{}", before: "{}") {{ title }}"#, ids[10], ids[14]);
    assert_eq!(titles(&read(&t, &main, &sel).await["booklist"]), expected(11..14));

    // `after` with `last`: the last elements of what follows the cursor.
    let sel = format!(r#"booklist(after: "{after50}", last: 3) {{ title }}"#);
    assert_eq!(titles(&read(&t, &main, &sel).await["booklist"]), expected(97..100));

    // Cursors through variables, and several pages of one list in one read (one statement).
    let before = t.statements();
    let q = "query($id: String!, $c: String) { get(type: Author, id: $id) { ... on Author {
        a: booklist(after: $c, first: 2) { title }
        b: booklist(before: $c, last: 2) { title }
        c: booklist(first: 1) { title author { name } }
    } } }";
    let data = t.ok(q, json!({ "id": main, "c": after50 })).await;
    assert_eq!(t.statements() - before, 1);
    assert_eq!(titles(&data["get"]["a"]), expected(50..52));
    assert_eq!(titles(&data["get"]["b"]), expected(47..49));
    assert_eq!(data["get"]["c"], json!([{ "title": "t000", "author": { "name": "other0" } }]));
}

#[tokio::test]
async fn nested_lists_page_per_parent() {
    let t = TestApp::new(EXAMPLE).await;
    // Two authors share books in different orders; paging follows each author's own order.
    let books =
        t.upsert(json!({ "Book": (0..6).map(|i| json!({ "title": format!("t{i:03}") })).collect::<Vec<_>>() })).await;
    let link = |i: usize| json!({ "hypi": { "id": books[i] } });
    let a = t
        .upsert(
            json!({ "Author": [{ "name": "A", "booklist": [link(0), link(1), link(2), link(3), link(4), link(5)] }] }),
        )
        .await;
    let b = t
        .upsert(
            json!({ "Author": [{ "name": "B", "booklist": [link(5), link(4), link(3), link(2), link(1), link(0)] }] }),
        )
        .await;
    // Book i's author is A for even i, B for odd i.
    for (i, id) in books.iter().enumerate() {
        let owner = if i % 2 == 0 { &a[0] } else { &b[0] };
        t.upsert(json!({ "Book": [{ "hypi": { "id": id }, "author": { "hypi": { "id": owner } } }] })).await;
    }
    let sel = format!(
        r#"booklist(after: "{}", first: 2) {{ title author {{ name booklist(last: 2) {{ title }} }} }}"#,
        books[3]
    );
    let data = read_once(&t, &a[0], &sel).await;
    assert_eq!(
        data["booklist"],
        json!([
            { "title": "t004", "author": { "name": "A", "booklist": [{ "title": "t004" }, { "title": "t005" }] } },
            { "title": "t005", "author": { "name": "B", "booklist": [{ "title": "t001" }, { "title": "t000" }] } }
        ])
    );
    let data = read_once(&t, &b[0], &sel).await;
    assert_eq!(titles(&data["booklist"]), ["t002", "t001"]);
}

#[tokio::test]
async fn wide_documents_keep_every_member() {
    // 130 Int fields: a document of more keys than one SQL function call takes is built in
    // parts; merging them must keep null members, also inside Json values.
    let mut sdl = String::from("type Wide {");
    for i in 0..130 {
        sdl.push_str(&format!(" f{i}: Int"));
    }
    sdl.push_str(" data: Json  ratio: Float  flag: Boolean  child: Wide  kids: [Wide!]  tags: [String] }");
    let t = TestApp::new(&sdl).await;

    let mut obj = serde_json::Map::new();
    for i in (0..130).filter(|i| i % 3 != 0) {
        obj.insert(format!("f{i}"), json!(i));
    }
    obj.insert("data".into(), json!({ "x": null, "y": { "z": null, "w": [null, 1] } }));
    obj.insert("ratio".into(), json!(0.1));
    obj.insert("flag".into(), json!(false));
    obj.insert("tags".into(), json!(["a", "b"]));
    let mut root = obj.clone();
    root.insert("child".into(), Value::Object(obj.clone()));
    root.insert("kids".into(), json!([obj.clone(), obj.clone()]));
    let id = t.upsert(json!({ "Wide": [root] })).await.remove(0);

    let fields: Vec<String> = (0..130).map(|i| format!("f{i}")).collect();
    let scalars = format!("{} data ratio flag tags", fields.join(" "));
    let q = format!(
        "query($id: String!) {{ get(type: Wide, id: $id) {{ ... on Wide {{ {scalars} child {{ {scalars} child {{ f1 }} }} kids {{ {scalars} }} }} }} }}"
    );
    let before = t.statements();
    let data = t.ok(&q, json!({ "id": id })).await;
    assert_eq!(t.statements() - before, 1);

    let mut one = serde_json::Map::new();
    for i in 0..130 {
        one.insert(format!("f{i}"), if i % 3 == 0 { Value::Null } else { json!(i) });
    }
    one.insert("data".into(), json!({ "x": null, "y": { "z": null, "w": [null, 1] } }));
    one.insert("ratio".into(), json!(0.1));
    one.insert("flag".into(), json!(false));
    one.insert("tags".into(), json!(["a", "b"]));
    let mut child = one.clone();
    child.insert("child".into(), Value::Null);
    let mut expected = one.clone();
    expected.insert("child".into(), Value::Object(child));
    expected.insert("kids".into(), json!([one.clone(), one]));
    assert_eq!(data["get"], Value::Object(expected));
}
