//! The adversarial authorization matrix (contract §7 "Who may do what", security.md): tenants
//! never see each other's data through any operation or filter; forged, expired, foreign and
//! orphaned tokens are refused; accounts never leak their passwords; OWNER / AUTHENTICATED /
//! PUBLIC are enforced on every path. Every assertion here can fail: each probe is paired with
//! a control that shows the same request does see the caller's own data.
//! Runs on SQLite by default and on PostgreSQL with `ARCBASE_TEST_BACKEND=postgres`.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;

use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use arcbase::config::Limits;
use arcbase::tenancy::{self, InstanceSettings};
use common::*;

const KEY: &str = "adminkey";

/// A server with an admin key (so not development mode) whose app `app` runs `sdl` on each of
/// `instances`.
async fn setup(sdl: &str, instances: &[(&str, InstanceSettings)]) -> TestApp {
    let t = TestApp::with(sdl, Some(KEY), Limits::default()).await;
    tenancy::publish(&t.app.store, "app", "v1", sdl).await.unwrap();
    for (domain, settings) in instances {
        tenancy::create_instance(&t.app.store, domain, "app", "v1", settings.clone()).await.unwrap();
    }
    t.app.registry.refresh().await.unwrap();
    t
}

fn open(requests: bool, registrations: bool) -> InstanceSettings {
    InstanceSettings { anonymous_requests: requests, anonymous_registrations: registrations }
}

/// One caller: an instance and a credential. Every response body it receives is kept.
struct Client<'a> {
    t: &'a TestApp,
    domain: String,
    auth: Option<String>,
    seen: RefCell<Vec<String>>,
}

impl<'a> Client<'a> {
    fn new(t: &'a TestApp, domain: &str, auth: Option<String>) -> Self {
        Client { t, domain: domain.to_string(), auth, seen: RefCell::new(Vec::new()) }
    }
    fn admin(t: &'a TestApp, domain: &str) -> Self {
        Self::new(t, domain, Some(format!("Bearer {KEY}")))
    }
    fn token(t: &'a TestApp, domain: &str, token: &str) -> Self {
        Self::new(t, domain, Some(format!("Bearer {token}")))
    }
    fn anonymous(t: &'a TestApp, domain: &str) -> Self {
        Self::new(t, domain, None)
    }

    async fn send(&self, query: &str, variables: Value) -> (StatusCode, Value) {
        let mut headers = vec![("hypi-domain", self.domain.as_str())];
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.as_str()));
        }
        let (status, body) = self.t.post_with(&json!({ "query": query, "variables": variables }), &headers).await;
        self.seen.borrow_mut().push(body.to_string());
        (status, body)
    }

    async fn ok(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.send(query, variables).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", self.domain);
        assert!(body.get("errors").is_none(), "{}: unexpected errors: {body}", self.domain);
        body["data"].clone()
    }

    async fn err(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.send(query, variables).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", self.domain);
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("{}: expected errors: {body}", self.domain));
        assert!(!errors.is_empty(), "{}: expected errors: {body}", self.domain);
        errors[0].clone()
    }

    /// Upsert and return the ids.
    async fn upsert(&self, values: Value) -> Vec<String> {
        let data =
            self.ok("mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", json!({ "v": values })).await;
        data["upsert"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
    }

    /// The error of an upsert that must fail.
    async fn upsert_err(&self, values: Value) -> Value {
        self.err("mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }", json!({ "v": values })).await
    }

    /// `trash`, `untrash` or `delete` of `ty` matching `arcql`: the count.
    async fn bulk(&self, op: &str, ty: &str, arcql: &str) -> i64 {
        let q = format!("mutation($q: String!) {{ n: {op}(type: {ty}, arcql: $q) }}");
        self.ok(&q, json!({ "q": arcql })).await["n"].as_i64().unwrap()
    }

    async fn link(&self, op: &str, from: &str, to: &str, via: &str, from_id: &str, to_id: &str) -> Value {
        let q = format!(
            "mutation($f: String!, $t: String!) {{ {op}(from: {from}, to: {to}, via: \"{via}\", whereFromID: $f, andToID: $t) }}"
        );
        self.send(&q, json!({ "f": from_id, "t": to_id })).await.1
    }

    fn saw(&self, needle: &str) -> Vec<String> {
        self.seen.borrow().iter().filter(|b| b.contains(needle)).cloned().collect()
    }
}

/// The first error's code of a response body ("" when there is none).
fn first_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------------
// Cross-tenant isolation
// ---------------------------------------------------------------------------------------------

const SHOP: &str = "\
type Item { name: String  code: String @unique  qty: Int  tags: [String]  parent: Item  children: [Item!]  owner: Person }
type Person { username: String @unique  notes: [String] }
";

const ITEM_FIELDS: &str = "name code qty tags parent { name code } children { name tags } owner { username notes }";

fn find_items() -> String {
    format!(
        "query($q: String!, $tr: Boolean) {{ find(type: Item, arcql: $q, includeTrashed: $tr) {{
            edges {{ cursor node {{ ... on Item {{ hypi {{ id }} {ITEM_FIELDS} }} }} }} pageInfo {{ hasNextPage }} }} }}"
    )
}

const FIND_PEOPLE: &str = "query($q: String!, $tr: Boolean) { find(type: Person, arcql: $q, includeTrashed: $tr) {
    edges { cursor node { ... on Person { username notes } } } } }";

/// Everything B holds, trashed objects included, with versions and timestamps.
async fn snapshot(b: &Client<'_>) -> (Value, Value) {
    let items = b
        .ok(
            &format!(
                "{{ find(type: Item, arcql: \"*\", includeTrashed: true, first: 100) {{ edges {{ node {{ ... on Item {{
                    hypi {{ id created updated trashed createdBy instanceId }} {ITEM_FIELDS} }} }} }} }} }}"
            ),
            json!({}),
        )
        .await;
    let people = b
        .ok(
            "{ find(type: Person, arcql: \"*\", includeTrashed: true) { edges { node { ... on Person {
                hypi { id updated trashed } username notes } } } } }",
            json!({}),
        )
        .await;
    (items, people)
}

#[tokio::test]
async fn cross_tenant_isolation() {
    let t = setup(SHOP, &[("a.example", open(false, false)), ("b.example", open(false, false))]).await;
    let a = Client::admin(&t, "a.example");
    let b = Client::admin(&t, "b.example");
    let canary = format!("CANARY{}", ulid::Ulid::new());
    let c = canary.as_str();
    let prefix = &c[..10];

    // B: canaries in every kind of field, references and lists, one trashed object.
    let pid = b.upsert(json!({ "Person": [{ "username": c, "notes": [c, "plain"] }] })).await.remove(0);
    let b1 = b
        .upsert(json!({ "Item": [{
            "name": c, "code": c, "qty": 4242, "tags": [c, "plain"],
            "owner": { "hypi": { "id": pid } },
            "parent": { "name": c, "code": format!("{c}-parent") },
            "children": [{ "name": c, "code": format!("{c}-child"), "tags": [c] }]
        }] }))
        .await
        .remove(0);
    let got = b.ok(&format!("{{ get(type: Item, id: \"{b1}\") {{ ... on Item {{ parent {{ hypi {{ id }} }} children {{ hypi {{ id }} }} }} }} }}"), json!({})).await;
    let b_parent = got["get"]["parent"]["hypi"]["id"].as_str().unwrap().to_string();
    let b_child = got["get"]["children"][0]["hypi"]["id"].as_str().unwrap().to_string();
    let b3 = b.upsert(json!({ "Item": [{ "name": c, "code": format!("{c}-trashed"), "tags": [c] }] })).await.remove(0);
    assert_eq!(b.bulk("trash", "Item", &format!("hypi.id = '{b3}'")).await, 1);
    b.upsert(
        json!({ "Item": [{ "name": "sharedB", "code": "shared-code" }], "Person": [{ "username": "shared-user" }] }),
    )
    .await;
    let b_ids = [b1.clone(), b_parent.clone(), b_child.clone(), b3.clone()];
    let before = snapshot(&b).await;
    // Control: B itself finds its canaries with the very filters A will use.
    let data = b.ok(&find_items(), json!({ "q": format!("name = '{c}'"), "tr": true })).await;
    assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 4, "{data}");

    // A: objects of its own, without canaries.
    let a_ids = a
        .upsert(json!({ "Item": [
            { "name": "alpha", "code": "a1", "qty": 1, "tags": ["x"] },
            { "name": "beta", "code": "a2", "qty": 2 }
        ], "Person": [{ "username": "pa" }] }))
        .await;
    let (a1, a2, pa) = (a_ids[0].clone(), a_ids[1].clone(), a_ids[2].clone());

    // get: null for every id of B, trashed or not.
    for id in b_ids.iter().chain([&pid]) {
        for ty in ["Item", "Person"] {
            for trashed in [false, true] {
                let q = format!("{{ get(type: {ty}, id: \"{id}\", includeTrashed: {trashed}) {{ ... on Item {{ {ITEM_FIELDS} }} ... on Person {{ username }} }} }}");
                assert_eq!(a.ok(&q, json!({})).await["get"], Value::Null, "get {ty} {id} from A");
            }
        }
    }

    // find: no filter reaches B's rows, whatever the operator or path.
    let filters = [
        format!("name = '{c}'"),
        format!("name = \"{c}\""),
        format!("name ~ '{c}'"),
        format!("name ~ '{}'", c.to_lowercase()),
        format!("name ^ '{prefix}'"),
        format!("name * '{prefix}*'"),
        format!("name * '*{}'", &c[10..]),
        format!("name * '{}?'", &c[..c.len() - 1]),
        // Two values in parentheses are an exclusive range; a set of two needs a trailing comma.
        format!("name IN ('{c}', 'nothing',)"),
        format!("name IN ('{c}', 'nothing', 'other')"),
        format!("name IN ['{c}', '{c}']"),
        "name > 'CANARY' AND name < 'CANARZ'".to_string(),
        "name != 'alpha' AND name != 'beta'".to_string(),
        format!("code = '{c}'"),
        format!("code ^ '{prefix}'"),
        format!("tags = '{c}'"),
        format!("tags ^ '{prefix}'"),
        format!("tags IN ('{c}')"),
        "tags = 'plain'".to_string(),
        format!("owner.username = '{c}'"),
        format!("owner.username ~ '{c}'"),
        format!("owner.notes = '{c}'"),
        format!("owner.hypi.id = '{pid}'"),
        format!("parent.name = '{c}'"),
        format!("parent.code ^ '{prefix}'"),
        format!("children.name = '{c}'"),
        format!("children.tags = '{c}'"),
        format!("children.hypi.id = '{b_child}'"),
        format!("NOT NOT name = '{c}'"),
        format!("name = '{c}' OR hypi.id = '{b1}'"),
        format!("hypi.id = '{b1}'"),
        format!("hypi.id IN ('{b1}', '{b_child}', '{b3}', '{b_parent}')"),
        format!("hypi_id = '{b1}'"),
        "hypi.instanceId = 'b.example'".to_string(),
        "hypi.instanceId != 'a.example'".to_string(),
        "qty = 4242".to_string(),
        "qty IN [4000, 5000]".to_string(),
        "qty ^ '42'".to_string(),
        "EXIST owner".to_string(),
        "EXIST parent".to_string(),
        "EXIST children".to_string(),
        "owner != null".to_string(),
        "hypi.trashed != null".to_string(),
    ];
    for f in &filters {
        for trashed in [false, true] {
            let data = a.ok(&find_items(), json!({ "q": f, "tr": trashed })).await;
            assert_eq!(data["find"]["edges"], json!([]), "A's find {f:?} (includeTrashed {trashed}) reached B: {data}");
        }
    }
    for f in [
        format!("username = '{c}'"),
        format!("username ~ '{c}'"),
        format!("notes = '{c}'"),
        format!("hypi.id = '{pid}'"),
    ] {
        let data = a.ok(FIND_PEOPLE, json!({ "q": f, "tr": true })).await;
        assert_eq!(data["find"]["edges"], json!([]), "A's find Person {f:?}: {data}");
    }
    // Controls: A's own filters work, and "everything" is exactly A's objects.
    let data = a.ok(&find_items(), json!({ "q": "* SORT name DESC", "tr": true })).await;
    let names: Vec<&str> =
        data["find"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta", "alpha"], "{data}");
    let data = a.ok(&find_items(), json!({ "q": "tags = 'x'" })).await;
    assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 1, "{data}");
    let data = a.ok(FIND_PEOPLE, json!({ "q": "*", "tr": true })).await;
    assert_eq!(data["find"]["edges"].as_array().unwrap().len(), 1, "{data}");

    // aggregate: counts are 0 over B's canaries; over everything they count A only; groups
    // and `having` never show B's values.
    let agg = "query($w: String) { aggregate { item(where: $w) { hypi_id { count } qty { count sum min max avg }
        name { count(distinct: true) } } } }";
    for w in [
        format!("name = '{c}'"),
        format!("tags = '{c}'"),
        format!("owner.username = '{c}'"),
        format!("hypi.id = '{b1}'"),
        "qty = 4242".into(),
    ] {
        let data = a.ok(agg, json!({ "w": w })).await;
        assert_eq!(
            data["aggregate"]["item"],
            json!({ "hypi_id": { "count": 0 }, "qty": { "count": 0, "sum": null, "min": null, "max": null, "avg": null },
                    "name": { "count": 0 } }),
            "aggregate where {w:?}"
        );
    }
    let data = a.ok(agg, json!({ "w": null })).await;
    assert_eq!(data["aggregate"]["item"]["hypi_id"]["count"], 2, "{data}");
    assert_eq!(data["aggregate"]["item"]["qty"]["sum"], 3, "{data}");
    assert_eq!(data["aggregate"]["item"]["qty"]["max"], 2, "{data}");
    let group_values = |v: &Value, field: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|g| g[field]["groupValues"][0]["value"].as_str().map(str::to_string).unwrap_or_default())
            .collect()
    };
    let data = a
        .ok(
            "{ aggregate { itemWith(groupBy: [{field: name, order: ASC}], includeTrashed: true) { name { groupValues { key value } } hypi_id { count } } } }",
            json!({}),
        )
        .await;
    assert_eq!(group_values(&data["aggregate"]["itemWith"], "name"), ["alpha", "beta"], "{data}");
    let data = a
        .ok(
            "{ aggregate { itemWith(groupBy: [{field: code, order: ASC}], having: \"hypi_id.count >= 1\") { code { groupValues { value } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(group_values(&data["aggregate"]["itemWith"], "code"), ["a1", "a2"], "{data}");
    let data = a
        .ok(
            "{ aggregate { itemWith(groupBy: [{field: qty}], having: \"qty.sum >= 4000\", includeTrashed: true) { qty { sum groupValues { value } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["aggregate"]["itemWith"], json!([]), "{data}");
    let data = a
        .ok(
            "{ aggregate { personWith(groupBy: [{field: username}]) { username { groupValues { value } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(group_values(&data["aggregate"]["personWith"], "username"), ["pa"], "{data}");

    // A cursor naming B's object is as unknown as an id that exists nowhere.
    let unknown_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for arg in ["after", "before"] {
        for trashed in [false, true] {
            let q = format!("query($c: String) {{ find(type: Item, arcql: \"*\", {arg}: $c, includeTrashed: {trashed}) {{ edges {{ cursor }} }} }}");
            let unknown = a.err(&q, json!({ "c": unknown_id })).await;
            for id in &b_ids {
                let foreign = a.err(&q, json!({ "c": id })).await;
                assert_eq!(code(&foreign), code(&unknown), "{arg} {id}: {foreign}");
                assert_eq!(
                    foreign["message"].as_str().unwrap().replace(id.as_str(), "ID"),
                    unknown["message"].as_str().unwrap().replace(unknown_id, "ID"),
                    "{arg} {id}"
                );
            }
            // Control: A's own id is a valid cursor.
            let q_ok = q.clone();
            a.ok(&q_ok, json!({ "c": a1 })).await;
        }
    }

    // Nested objects that only name B's ids: NOT_FOUND, nothing written.
    let nested = [
        json!({ "Item": [{ "name": "n1", "owner": { "hypi": { "id": pid } } }] }),
        json!({ "Item": [{ "name": "n2", "children": [{ "hypi": { "id": b1 } }] }] }),
        json!({ "Item": [{ "name": "n3", "parent": { "hypi": { "id": b_parent } } }] }),
        json!({ "Item": [{ "hypi": { "id": a1 }, "owner": { "hypi": { "id": pid } } }] }),
        json!({ "Item": [{ "hypi": { "id": a2 }, "children": [{ "hypi": { "id": b3 } }] }] }),
    ];
    for v in nested {
        let err = a.upsert_err(v.clone()).await;
        assert_eq!(code(&err), "NOT_FOUND", "{v}: {err}");
    }
    let data = a.ok(agg, json!({ "w": "*" })).await;
    assert_eq!(data["aggregate"]["item"]["hypi_id"]["count"], 2, "failed upserts wrote nothing: {data}");

    // link / unlink with B's ids: NOT_FOUND in every position.
    let links = [
        ("link", "Item", "Person", "owner", a1.as_str(), pid.as_str()),
        ("link", "Item", "Item", "children", a1.as_str(), b1.as_str()),
        ("link", "Item", "Item", "parent", a1.as_str(), b1.as_str()),
        ("link", "Item", "Item", "children", b1.as_str(), a2.as_str()),
        ("link", "Item", "Item", "parent", b1.as_str(), a2.as_str()),
        ("unlink", "Item", "Item", "children", b1.as_str(), b_child.as_str()),
        ("unlink", "Item", "Item", "parent", b1.as_str(), b_parent.as_str()),
        ("unlink", "Item", "Person", "owner", b1.as_str(), pid.as_str()),
        ("unlink", "Item", "Person", "owner", a1.as_str(), pid.as_str()),
    ];
    for (op, from, to, via, f, tid) in links {
        let body = a.link(op, from, to, via, f, tid).await;
        assert_eq!(first_code(&body), "NOT_FOUND", "{op} {from}.{via} {f} -> {tid}: {body}");
    }
    // Control: linking A's own objects works.
    let body = a.link("link", "Item", "Person", "owner", &a1, &pa).await;
    assert_eq!(body["data"]["link"], true, "{body}");
    let body = a.link("unlink", "Item", "Person", "owner", &a1, &pa).await;
    assert_eq!(body["data"]["unlink"], true, "{body}");

    // Bulk operations whose filters match only B's canaries change nothing.
    for f in [
        format!("name = '{c}'"),
        format!("tags = '{c}'"),
        format!("owner.username = '{c}'"),
        format!("hypi.id = '{b1}'"),
        format!("children.name = '{c}'"),
    ] {
        assert_eq!(a.bulk("trash", "Item", &f).await, 0, "trash {f}");
        assert_eq!(a.bulk("untrash", "Item", &f).await, 0, "untrash {f}");
        assert_eq!(a.bulk("delete", "Item", &f).await, 0, "delete {f}");
    }
    assert_eq!(a.bulk("untrash", "Item", "*").await, 0, "B's trashed object stays trashed");
    assert_eq!(a.bulk("untrash", "Item", &format!("hypi.id = '{b3}'")).await, 0);
    assert_eq!(a.bulk("delete", "Item", &format!("hypi.id = '{b3}'")).await, 0);
    assert_eq!(a.bulk("trash", "Person", &format!("username = '{c}'")).await, 0);
    assert_eq!(a.bulk("delete", "Person", &format!("hypi.id = '{pid}'")).await, 0);
    let q = "mutation($v: [String!]!, $q: String!) { n: deleteScalars(type: Item, field: \"tags\", values: $v, arcql: $q) }";
    assert_eq!(a.ok(q, json!({ "v": [c], "q": "*" })).await["n"], 0);
    assert_eq!(a.ok(q, json!({ "v": [c, "plain"], "q": format!("name = '{c}'") })).await["n"], 0);
    let q = "mutation($v: [String!]!) { n: deleteScalars(type: Person, field: \"notes\", values: $v, arcql: \"*\") }";
    assert_eq!(a.ok(q, json!({ "v": [c, "plain"] })).await["n"], 0);
    let q = "mutation { n: delete(type: Item, arcql: \"children.name != 'zzz'\", clearArrayReferences: true) }";
    assert_eq!(a.ok(q, json!({})).await["n"], 0);

    // upsert with B's id creates A's own object and leaves B's alone.
    let data = a
        .ok(
            "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id instanceId } }",
            json!({ "v": { "Item": [{ "hypi": { "id": b_child }, "name": "mine" }] } }),
        )
        .await;
    assert_eq!(data["upsert"][0], json!({ "id": b_child, "instanceId": "a.example" }), "{data}");
    let q = format!("{{ get(type: Item, id: \"{b_child}\") {{ ... on Item {{ {ITEM_FIELDS} }} }} }}");
    let data = a.ok(&q, json!({})).await;
    assert_eq!(data["get"]["name"], "mine", "{data}");
    assert_eq!(data["get"]["code"], Value::Null, "A's object has none of B's values: {data}");
    assert_eq!(data["get"]["tags"], json!([]), "{data}");
    // The same for a nested object with B's id and fields: A gets its own copy.
    a.upsert(json!({ "Item": [{ "name": "nested", "owner": { "hypi": { "id": pid }, "username": "nested-mine" } }] }))
        .await;
    let q = format!("{{ get(type: Person, id: \"{pid}\") {{ ... on Person {{ username notes }} }} }}");
    assert_eq!(a.ok(&q, json!({})).await["get"], json!({ "username": "nested-mine", "notes": [] }));

    // @unique is per instance: B's values are free in A, and enforced there.
    a.upsert(
        json!({ "Item": [{ "name": "sharedA", "code": "shared-code" }], "Person": [{ "username": "shared-user" }] }),
    )
    .await;
    let err = a.upsert_err(json!({ "Item": [{ "name": "again", "code": "shared-code" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    let err = a.upsert_err(json!({ "Person": [{ "username": "shared-user" }] })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");

    // Everything A owns may go; B is untouched by all of the above.
    let q = "mutation { n: delete(type: Item, arcql: \"*\", clearArrayReferences: true) }";
    assert_eq!(a.ok(q, json!({})).await["n"], 5, "a1, a2, mine, nested, sharedA");
    assert_eq!(a.bulk("delete", "Person", "*").await, 3, "pa, nested-mine, shared-user");
    assert_eq!(a.ok(&find_items(), json!({ "q": "*", "tr": true })).await["find"]["edges"], json!([]));
    assert_eq!(snapshot(&b).await, before, "B changed through A's requests");

    let leaks = a.saw(c);
    assert!(leaks.is_empty(), "a response to A contained B's canary:\n{}", leaks.join("\n"));
    assert!(b.saw(c).len() > 2, "control: the canary is visible to B");
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

const NOTES: &str = "\
type Note { text: String  tags: [String]  next: Note  more: [Note!] }
type Post @access(read: PUBLIC, write: AUTHENTICATED) { title: String  note: Note  notes: [Note!] }
";

const CREATE_ACCOUNT: &str = "mutation($v: AccountInput!) { createAccount(value: $v) { id createdBy instanceId } }";
const LOGIN: &str =
    "query($u: String!, $p: String!) { login(username: $u, password: $p) { sessionToken sessionExpires errorCode errorMsg } }";
const LOGIN_BY_EMAIL: &str = "query($e: String!, $p: String!) { loginByEmail(email: $e, password: $p) {
    sessionToken sessionExpires errorCode errorMsg } }";

/// Create an account as admin; returns its id.
async fn account(c: &Client<'_>, username: &str, password: &str) -> String {
    let v = json!({ "username": username, "emails": [format!("{username}@example.com")], "password": password });
    let data = c.ok(CREATE_ACCOUNT, json!({ "v": v })).await;
    data["createAccount"]["id"].as_str().unwrap().to_string()
}

/// Log in (as whoever `c` is); returns the session token.
async fn login(c: &Client<'_>, username: &str, password: &str) -> String {
    let data = c.ok(LOGIN, json!({ "u": username, "p": password })).await;
    data["login"]["sessionToken"].as_str().unwrap_or_else(|| panic!("login failed: {data}")).to_string()
}

/// A new account `username` (password "`username` password") on `domain`, created by the
/// admin, and a client signed in as it; returns the account's id and the client.
async fn signed_in<'a>(t: &'a TestApp, domain: &str, username: &str) -> (String, Client<'a>) {
    let password = format!("{username} password");
    let id = account(&Client::admin(t, domain), username, &password).await;
    let token = login(&Client::anonymous(t, domain), username, &password).await;
    (id, Client::token(t, domain, &token))
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(sub: &str, ins: &str) -> Value {
    let n = now();
    json!({ "sub": sub, "ins": ins, "aud": "arcbase", "iat": n, "nbf": n, "exp": n + 3600 })
}

fn sign_with(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn sign(secret: &[u8], claims: &Value) -> String {
    sign_with(Algorithm::HS256, secret, claims)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unb64url(s: &str) -> Vec<u8> {
    let (mut bits, mut nbits, mut out) = (0u32, 0u32, Vec::new());
    for ch in s.bytes() {
        let v = B64.iter().position(|&x| x == ch).expect("base64url") as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

const FIND_NOTES: &str = "{ find(type: Note, arcql: \"*\") { edges { cursor node { ... on Note { text } } } } }";

#[tokio::test]
async fn jwt_matrix() {
    let t = setup(NOTES, &[("a.example", open(false, false)), ("b.example", open(false, false))]).await;
    let secret = t.app.jwt_secret.to_vec();
    let admin_a = Client::admin(&t, "a.example");
    let anon_a = Client::anonymous(&t, "a.example");
    let alice = account(&admin_a, "alice", "alice password").await;
    let carol = account(&admin_a, "carol", "carol password").await;
    let b_user = account(&Client::admin(&t, "b.example"), "bella", "bella password").await;
    let token = login(&anon_a, "alice", "alice password").await;

    // Controls: the issued token works, and so do tokens built here with the server's secret
    // (so each refusal below is caused by the one claim or signature that differs), including
    // times within the 60 s leeway.
    let works = |tok: String, domain: &'static str, what: &'static str| {
        let t = &t;
        async move {
            let (status, body) = Client::token(t, domain, &tok).send(FIND_NOTES, json!({})).await;
            assert_eq!(status, StatusCode::OK, "{what}: {body}");
            assert!(body.get("errors").is_none(), "{what}: {body}");
        }
    };
    works(token.clone(), "a.example", "the issued token").await;
    works(sign(&secret, &claims(&alice, "a.example")), "a.example", "a forged token with the right key").await;
    let mut c = claims(&alice, "a.example");
    c["exp"] = json!(now() - 30);
    works(sign(&secret, &c), "a.example", "expired 30 s ago: within the leeway").await;
    let mut c = claims(&alice, "a.example");
    c["nbf"] = json!(now() + 30);
    works(sign(&secret, &c), "a.example", "valid in 30 s: within the leeway").await;
    works(sign(&secret, &claims(&b_user, "b.example")), "b.example", "B's own account on B").await;

    // The refusals.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut payload: Value = serde_json::from_slice(&unb64url(parts[1])).unwrap();
    assert_eq!(payload["sub"], alice.as_str(), "the token's subject is the account: {payload}");
    assert_eq!(payload["ins"], "a.example", "{payload}");
    assert_eq!(payload["aud"], "arcbase", "{payload}");
    payload["sub"] = json!(carol);
    let tampered = format!("{}.{}.{}", parts[0], b64url(payload.to_string().as_bytes()), parts[2]);
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", b64url(claims(&alice, "a.example").to_string().as_bytes()));
    let alg_none_sig = format!("{none_header}.{}.{}", parts[1], parts[2]);
    let mut expired = claims(&alice, "a.example");
    expired["exp"] = json!(now() - 120);
    expired["iat"] = json!(now() - 4000);
    expired["nbf"] = json!(now() - 4000);
    let mut future = claims(&alice, "a.example");
    future["nbf"] = json!(now() + 600);
    let mut wrong_aud = claims(&alice, "a.example");
    wrong_aud["aud"] = json!("someone-else");
    let mut no_aud = claims(&alice, "a.example");
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_exp = claims(&alice, "a.example");
    no_exp.as_object_mut().unwrap().remove("exp");

    let refused: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "a.example"),
        ("alg none with the old signature", alg_none_sig, "a.example"),
        ("wrong key", sign(b"not the secret", &claims(&alice, "a.example")), "a.example"),
        ("HS384 with the right key", sign_with(Algorithm::HS384, &secret, &claims(&alice, "a.example")), "a.example"),
        ("expired beyond the leeway", sign(&secret, &expired), "a.example"),
        ("nbf in the future", sign(&secret, &future), "a.example"),
        ("wrong audience", sign(&secret, &wrong_aud), "a.example"),
        ("no audience", sign(&secret, &no_aud), "a.example"),
        ("no expiry", sign(&secret, &no_exp), "a.example"),
        ("tampered sub", tampered, "a.example"),
        ("A's token on B", token.clone(), "b.example"),
        ("A's account, claims of B", sign(&secret, &claims(&alice, "b.example")), "b.example"),
        ("B's account, claims of A", sign(&secret, &claims(&b_user, "a.example")), "a.example"),
        (
            "an account that never existed",
            sign(&secret, &claims("01ARZ3NDEKTSV4RRFFQ69G5FAV", "a.example")),
            "a.example",
        ),
        ("garbage", "not.a.token".to_string(), "a.example"),
        ("the token's signature alone", parts[2].to_string(), "a.example"),
    ];
    for (what, tok, domain) in &refused {
        let client = Client::token(&t, domain, tok);
        for query in [FIND_NOTES, "mutation { upsert(values: {Note: [{text: \"x\"}]}) { id } }", LOGIN] {
            let vars = json!({ "u": "alice", "p": "alice password" });
            let (status, body) = client.send(query, vars).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on {domain}: {body}");
            assert_eq!(first_code(&body), "UNAUTHENTICATED", "{what}: {body}");
            assert!(body["data"].is_null(), "{what}: {body}");
        }
    }
    // Nothing was written by any refused token.
    let data = admin_a.ok(FIND_NOTES, json!({})).await;
    assert_eq!(data["find"]["edges"], json!([]), "{data}");

    // A deleted account's token stops working; a trashed one's too, until it is restored.
    let carol_token = login(&anon_a, "carol", "carol password").await;
    works(carol_token.clone(), "a.example", "carol before the delete").await;
    assert_eq!(admin_a.bulk("delete", "Account", &format!("hypi.id = '{carol}'")).await, 1);
    let (status, body) = Client::token(&t, "a.example", &carol_token).send(FIND_NOTES, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "deleted account: {body}");
    assert_eq!(first_code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(admin_a.bulk("trash", "Account", &format!("hypi.id = '{alice}'")).await, 1);
    let (status, body) = Client::token(&t, "a.example", &token).send(FIND_NOTES, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "trashed account: {body}");
    assert_eq!(admin_a.bulk("untrash", "Account", &format!("hypi.id = '{alice}'")).await, 1);
    works(token, "a.example", "alice restored").await;
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn accounts_register_log_in_and_never_leak_passwords() {
    const PW: &str = "s3cret-Passw0rd-zebra";
    let t = setup(NOTES, &[("closed.example", open(false, false)), ("open.example", open(false, true))]).await;
    let admin = Client::admin(&t, "closed.example");
    let anon = Client::anonymous(&t, "closed.example");
    let anon_open = Client::anonymous(&t, "open.example");
    let admin_open = Client::admin(&t, "open.example");

    // The admin creates an account: it owns itself.
    let v = json!({ "username": "alice", "emails": ["alice@example.com", "a2@example.com"], "password": PW });
    let data = admin.ok(CREATE_ACCOUNT, json!({ "v": v })).await;
    let alice = data["createAccount"]["id"].as_str().unwrap().to_string();
    assert_eq!(data["createAccount"]["createdBy"], alice.as_str(), "{data}");
    assert_eq!(data["createAccount"]["instanceId"], "closed.example", "{data}");

    // Anonymous registration: refused where not enabled, and nothing is created.
    let v = json!({ "username": "mallory", "password": PW });
    let (status, body) = anon.send(CREATE_ACCOUNT, json!({ "v": v })).await;
    assert!(status == StatusCode::OK || status == StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(first_code(&body), "UNAUTHENTICATED", "{body}");
    assert!(body["data"].is_null() || body["data"]["createAccount"].is_null(), "{body}");
    let find_accounts =
        "query($q: String!) { find(type: Account, arcql: $q) { edges { node { ... on Account { hypi { id createdBy } username emails } } } } }";
    let data = admin.ok(find_accounts, json!({ "q": "username = 'mallory'" })).await;
    assert_eq!(data["find"]["edges"], json!([]), "{data}");
    // ... and accepted where it is; other anonymous requests stay refused there.
    let data = anon_open.ok(CREATE_ACCOUNT, json!({ "v": { "username": "bob", "password": PW } })).await;
    let bob = data["createAccount"]["id"].as_str().unwrap().to_string();
    assert_eq!(data["createAccount"]["createdBy"], bob.as_str(), "{data}");
    assert_eq!(data["createAccount"]["instanceId"], "open.example", "{data}");
    let (status, _) = anon_open.send(FIND_NOTES, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "registrations do not open the rest of the API");

    // Logging in, by username and by email, without credentials.
    let data = anon.ok(LOGIN, json!({ "u": "alice", "p": PW })).await;
    let tok = &data["login"];
    let token = tok["sessionToken"].as_str().unwrap_or_else(|| panic!("{data}")).to_string();
    assert!(tok["errorCode"].is_null() && tok["errorMsg"].is_null(), "{data}");
    let expires = tok["sessionExpires"].as_i64().unwrap();
    assert!((expires - now() - 86_400).abs() < 300, "a day from now: {expires}");
    let data = anon.ok(LOGIN_BY_EMAIL, json!({ "e": "a2@example.com", "p": PW })).await;
    assert!(data["loginByEmail"]["sessionToken"].is_string(), "{data}");
    let data = anon_open.ok(LOGIN, json!({ "u": "bob", "p": PW })).await;
    assert!(data["login"]["sessionToken"].is_string(), "{data}");

    // Failures look the same whatever failed, and are not GraphQL errors.
    let failures = [
        anon.ok(LOGIN, json!({ "u": "alice", "p": "wrong password" })).await["login"].clone(),
        anon.ok(LOGIN, json!({ "u": "nobody", "p": PW })).await["login"].clone(),
        anon.ok(LOGIN, json!({ "u": "Alice", "p": PW })).await["login"].clone(),
        anon.ok(LOGIN, json!({ "u": "bob", "p": PW })).await["login"].clone(),
        anon.ok(LOGIN_BY_EMAIL, json!({ "e": "alice@example.com", "p": "wrong password" })).await["loginByEmail"]
            .clone(),
        anon.ok(LOGIN_BY_EMAIL, json!({ "e": "nobody@example.com", "p": PW })).await["loginByEmail"].clone(),
        anon_open.ok(LOGIN, json!({ "u": "alice", "p": PW })).await["login"].clone(),
    ];
    for f in &failures {
        assert!(f["sessionToken"].is_null(), "{f}");
        assert!(f["sessionExpires"].is_null(), "{f}");
        assert!(f["errorCode"].is_string() && f["errorMsg"].is_string(), "{f}");
        assert_eq!(f, &failures[0], "every failed login looks the same");
    }

    // Usernames are unique per instance.
    let v = json!({ "username": "alice", "password": PW });
    let err = admin.err(CREATE_ACCOUNT, json!({ "v": v.clone() })).await;
    assert_eq!(code(&err), "UNIQUE_VIOLATION", "{err}");
    let data = anon_open.ok(CREATE_ACCOUNT, json!({ "v": v })).await;
    assert!(data["createAccount"]["id"].is_string(), "the same username on another instance: {data}");

    // Short passwords are refused, and create nothing.
    for short in ["", "short", "7chars!"] {
        let err = admin.err(CREATE_ACCOUNT, json!({ "v": { "username": "shorty", "password": short } })).await;
        assert_eq!(code(&err), "VALIDATION", "{short:?}: {err}");
    }
    let data = admin.ok(find_accounts, json!({ "q": "username = 'shorty'" })).await;
    assert_eq!(data["find"]["edges"], json!([]), "{data}");

    // The password cannot be filtered, sorted, grouped or cleared.
    for arcql in [
        "password = 'x'",
        "hypi_password = 'x'",
        "hypi.password = 'x'",
        "password ^ '$argon2'",
        "EXIST password",
        "EXIST hypi_password",
        "* SORT password",
        "* SORT hypi_password",
    ] {
        let err = admin.err(find_accounts, json!({ "q": arcql })).await;
        assert_eq!(code(&err), "UNKNOWN_FIELD", "{arcql}: {err}");
        let err = admin
            .err("query($q: String) { aggregate { account(where: $q) { hypi_id { count } } } }", json!({ "q": arcql }))
            .await;
        assert!(["UNKNOWN_FIELD", "ARCQL_SYNTAX", "VALIDATION"].contains(&code(&err)), "{arcql}: {err}");
        let q = "mutation($q: String!) { trash(type: Account, arcql: $q) }";
        assert!(
            ["UNKNOWN_FIELD", "ARCQL_SYNTAX", "VALIDATION"].contains(&code(&admin.err(q, json!({ "q": arcql })).await))
        );
    }
    let err = admin
        .err("mutation { deleteScalars(type: Account, field: \"password\", values: [\"x\"], arcql: \"*\") }", json!({}))
        .await;
    assert_eq!(code(&err), "UNKNOWN_FIELD", "{err}");
    admin.err("{ aggregate { accountWith(groupBy: [{field: password}]) { hypi_id { count } } } }", json!({})).await;
    admin
        .err("{ find(type: Account, arcql: \"*\") { edges { node { ... on Account { password } } } } }", json!({}))
        .await;
    let err = admin
        .err(
            "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id } }",
            json!({ "v": { "Account": [{ "hypi": { "id": alice }, "password": "new password" }] } }),
        )
        .await;
    assert!(!code(&err).is_empty(), "upsert cannot set a password: {err}");
    let data = anon.ok(LOGIN, json!({ "u": "alice", "p": PW })).await;
    assert!(data["login"]["sessionToken"].is_string(), "the password is unchanged: {data}");

    // Read every account in every way: no password, no hash.
    admin.ok(find_accounts, json!({ "q": "*" })).await;
    admin_open.ok(find_accounts, json!({ "q": "*" })).await;
    admin.ok(&format!("{{ get(type: Account, id: \"{alice}\") {{ ... on Account {{ username emails hypi {{ id impl }} }} }} }}"), json!({})).await;
    admin
        .ok("{ aggregate { accountWith(groupBy: [{field: username}]) { username { groupValues { key value } count } } } }", json!({}))
        .await;
    let types = admin
        .ok(
            "{ a: __type(name: \"Account\") { fields { name } } o: __type(name: \"AccountInputOpt\") { inputFields { name } } }",
            json!({}),
        )
        .await;
    assert!(!types.to_string().contains("password"), "{types}");

    // An account sees itself and no other account.
    let me = Client::token(&t, "closed.example", &token);
    let data = me.ok(find_accounts, json!({ "q": "*" })).await;
    let edges = data["find"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{data}");
    assert_eq!(edges[0]["node"]["hypi"]["id"], alice.as_str(), "{data}");
    assert_eq!(edges[0]["node"]["hypi"]["createdBy"], alice.as_str(), "{data}");
    let data = Client::token(&t, "open.example", &login(&anon_open, "bob", PW).await)
        .ok(&format!("{{ get(type: Account, id: \"{alice}\") {{ ... on Account {{ username }} }} }}"), json!({}))
        .await;
    assert!(data["get"].is_null(), "{data}");

    for c in [&admin, &anon, &anon_open, &admin_open, &me] {
        for needle in [PW, "$argon2", "argon2id"] {
            let leaks = c.saw(needle);
            assert!(leaks.is_empty(), "{needle:?} appeared in a response:\n{}", leaks.join("\n"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ownership and @access
// ---------------------------------------------------------------------------------------------

const NOTE_FIELDS: &str = "hypi { id createdBy trashed } text tags next { text } more { text }";

fn find_notes_q() -> String {
    format!("query($q: String!) {{ find(type: Note, arcql: $q) {{ edges {{ node {{ ... on Note {{ {NOTE_FIELDS} }} }} }} }} }}")
}

fn get_note_q(id: &str) -> String {
    format!("{{ get(type: Note, id: \"{id}\", includeTrashed: true) {{ ... on Note {{ {NOTE_FIELDS} }} }} }}")
}

const POST_FIELDS: &str = "hypi { id createdBy } title note { text } notes { text }";

fn get_post_q(id: &str) -> String {
    format!("{{ get(type: Post, id: \"{id}\") {{ ... on Post {{ {POST_FIELDS} }} }} }}")
}

fn find_posts_q() -> String {
    format!("query($q: String!) {{ find(type: Post, arcql: $q) {{ edges {{ node {{ ... on Post {{ {POST_FIELDS} }} }} }} }} }}")
}

fn edge_count(data: &Value) -> usize {
    data["find"]["edges"].as_array().unwrap().len()
}

#[tokio::test]
async fn ownership_and_access_levels() {
    let t = setup(NOTES, &[("pub.example", open(true, false)), ("priv.example", open(false, false))]).await;
    let admin = Client::admin(&t, "pub.example");
    let anon = Client::anonymous(&t, "pub.example");
    let (x_id, x) = signed_in(&t, "pub.example", "xavier").await;
    let (y_id, y) = signed_in(&t, "pub.example", "yvonne").await;

    // X's notes; Y's own note. `createdBy` is the creating account.
    let data = x
        .ok(
            "mutation($v: HypiUpsertInputUnion!) { upsert(values: $v) { id createdBy } }",
            json!({ "v": { "Note": [{ "text": "xsecret", "tags": ["xtag"] }, { "text": "xsecond" }] } }),
        )
        .await;
    let (n1, n2) =
        (data["upsert"][0]["id"].as_str().unwrap().to_string(), data["upsert"][1]["id"].as_str().unwrap().to_string());
    assert_eq!(data["upsert"][0]["createdBy"], x_id.as_str(), "{data}");
    let yn = y.upsert(json!({ "Note": [{ "text": "ynote", "tags": ["ytag"] }] })).await.remove(0);
    let x_note = x.ok(&get_note_q(&n1), json!({})).await["get"].clone();
    assert_eq!(x_note["hypi"]["createdBy"], x_id.as_str(), "{x_note}");
    assert_eq!(x_note["text"], "xsecret");

    // Y: X's notes behave as missing, in every operation.
    assert!(y.ok(&get_note_q(&n1), json!({})).await["get"].is_null(), "Y must not get X's note");
    let data = y.ok(&find_notes_q(), json!({ "q": "*" })).await;
    assert_eq!(edge_count(&data), 1, "Y finds only its own note: {data}");
    for f in [
        "text = 'xsecret'",
        "text ~ 'xsecret'",
        "tags = 'xtag'",
        &format!("hypi.id = '{n1}'"),
        &format!("hypi.createdBy = '{x_id}'"),
    ] {
        assert_eq!(edge_count(&y.ok(&find_notes_q(), json!({ "q": f })).await), 0, "Y's find {f}");
        let want = if f.starts_with("hypi.createdBy") { 2 } else { 1 };
        assert_eq!(edge_count(&x.ok(&find_notes_q(), json!({ "q": f })).await), want, "control: X's find {f}");
    }
    let agg = "query($w: String) { aggregate { note(where: $w) { hypi_id { count } text { count } } } }";
    assert_eq!(y.ok(agg, json!({ "w": "*" })).await["aggregate"]["note"]["hypi_id"]["count"], 1);
    assert_eq!(y.ok(agg, json!({ "w": "text = 'xsecret'" })).await["aggregate"]["note"]["hypi_id"]["count"], 0);
    assert_eq!(x.ok(agg, json!({ "w": "*" })).await["aggregate"]["note"]["hypi_id"]["count"], 2);
    let data = y
        .ok("{ aggregate { noteWith(groupBy: [{field: text}]) { text { groupValues { value } } } } }", json!({}))
        .await;
    assert_eq!(data["aggregate"]["noteWith"], json!([{ "text": { "groupValues": [{ "value": "ynote" }] } }]), "{data}");
    let cursor_q = "query($c: String) { find(type: Note, arcql: \"*\", after: $c) { edges { cursor } } }";
    let unknown = y.err(cursor_q, json!({ "c": "01ARZ3NDEKTSV4RRFFQ69G5FAV" })).await;
    let hidden = y.err(cursor_q, json!({ "c": n1 })).await;
    assert_eq!(code(&hidden), code(&unknown), "{hidden}");
    x.ok(cursor_q, json!({ "c": n1 })).await;

    assert_eq!(y.bulk("trash", "Note", "text = 'xsecret'").await, 0);
    assert_eq!(y.bulk("trash", "Note", &format!("hypi.id = '{n1}'")).await, 0);
    assert_eq!(y.bulk("delete", "Note", &format!("hypi.id = '{n1}'")).await, 0);
    assert_eq!(y.bulk("delete", "Note", "text = 'xsecond'").await, 0);
    let ds = "mutation($q: String!) { n: deleteScalars(type: Note, field: \"tags\", values: [\"xtag\"], arcql: $q) }";
    assert_eq!(y.ok(ds, json!({ "q": "*" })).await["n"], 0);
    let err = y.upsert_err(json!({ "Note": [{ "hypi": { "id": n1 }, "text": "hijacked" }] })).await;
    assert_eq!(code(&err), "FORBIDDEN", "{err}");
    let err = y.upsert_err(json!({ "Note": [{ "hypi": { "id": n1 }, "tags": ["hijacked"] }] })).await;
    assert_eq!(code(&err), "FORBIDDEN", "{err}");
    for (op, from_id, to_id, via) in [
        ("link", n1.as_str(), yn.as_str(), "next"),
        ("link", yn.as_str(), n1.as_str(), "next"),
        ("link", n1.as_str(), yn.as_str(), "more"),
        ("link", yn.as_str(), n1.as_str(), "more"),
        ("unlink", n1.as_str(), n2.as_str(), "next"),
        ("unlink", yn.as_str(), n1.as_str(), "more"),
    ] {
        let body = y.link(op, "Note", "Note", via, from_id, to_id).await;
        assert_eq!(first_code(&body), "NOT_FOUND", "Y {op} {from_id}.{via} -> {to_id}: {body}");
    }
    // Nested: linking X's note is NOT_FOUND, writing it FORBIDDEN.
    let err = y.upsert_err(json!({ "Note": [{ "hypi": { "id": yn }, "next": { "hypi": { "id": n1 } } }] })).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    let err = y.upsert_err(json!({ "Post": [{ "title": "t", "notes": [{ "hypi": { "id": n1 } }] }] })).await;
    assert_eq!(code(&err), "NOT_FOUND", "{err}");
    let err =
        y.upsert_err(json!({ "Post": [{ "title": "t", "note": { "hypi": { "id": n1 }, "text": "hijacked" } }] })).await;
    assert_eq!(code(&err), "FORBIDDEN", "{err}");
    // X's note is exactly as it was; Y's own note untouched by the failures.
    assert_eq!(x.ok(&get_note_q(&n1), json!({})).await["get"], x_note, "Y changed X's note");
    assert!(y.ok(&get_note_q(&yn), json!({})).await["get"]["next"].is_null());
    assert_eq!(admin.ok(&find_posts_q(), json!({ "q": "*" })).await["find"]["edges"], json!([]), "no post was created");

    // X can do all of it to its own notes.
    assert_eq!(x.link("link", "Note", "Note", "next", &n1, &n2).await["data"]["link"], true);
    assert_eq!(x.bulk("trash", "Note", &format!("hypi.id = '{n2}'")).await, 1);
    assert_eq!(x.bulk("untrash", "Note", &format!("hypi.id = '{n2}'")).await, 1);
    x.upsert(json!({ "Note": [{ "hypi": { "id": n2 }, "text": "xsecond edited" }] })).await;
    assert_eq!(x.ok(ds, json!({ "q": "*" })).await["n"], 1);
    let data = x.ok(&get_note_q(&n1), json!({})).await;
    assert_eq!(data["get"]["next"]["text"], "xsecond edited", "{data}");
    assert_eq!(data["get"]["tags"], json!([]), "{data}");
    // The admin sees every note.
    assert_eq!(edge_count(&admin.ok(&find_notes_q(), json!({ "q": "*" })).await), 3);
    let data = admin.ok(&get_note_q(&yn), json!({})).await;
    assert_eq!(data["get"]["hypi"]["createdBy"], y_id.as_str(), "{data}");

    // Posts: X writes one pointing at its note.
    let p1 = x
        .upsert(json!({ "Post": [{ "title": "hello", "note": { "hypi": { "id": n1 } }, "notes": [{ "hypi": { "id": n1 } }] }] }))
        .await
        .remove(0);
    let data = x.ok(&get_post_q(&p1), json!({})).await;
    assert_eq!(
        data["get"],
        json!({ "hypi": { "id": p1, "createdBy": x_id }, "title": "hello", "note": { "text": "xsecret" }, "notes": [{ "text": "xsecret" }] })
    );
    // Others read the post, but X's note in it is as missing to them.
    for (who, c) in [("Y", &y), ("anonymous", &anon)] {
        let data = c.ok(&get_post_q(&p1), json!({})).await;
        assert_eq!(data["get"]["title"], "hello", "{who}: {data}");
        assert!(data["get"]["note"].is_null(), "{who} must not see X's note through the post: {data}");
        assert_eq!(data["get"]["notes"], json!([]), "{who}: {data}");
        assert_eq!(edge_count(&c.ok(&find_posts_q(), json!({ "q": "*" })).await), 1, "{who}");
        for f in [
            "note.text = 'xsecret'",
            "notes.text = 'xsecret'",
            "note.text ~ 'xsecret'",
            "EXIST note",
            "EXIST notes",
            "note.tags = 'xtag'",
        ] {
            let data = c.ok(&find_posts_q(), json!({ "q": f })).await;
            assert_eq!(edge_count(&data), 0, "{who}: {f} is an oracle on X's note: {data}");
            assert_eq!(
                edge_count(&x.ok(&find_posts_q(), json!({ "q": f })).await),
                if f.contains("tags") { 0 } else { 1 },
                "control X: {f}"
            );
        }
        let q = "{ aggregate { post(where: \"note.text = 'xsecret'\") { hypi_id { count } } } }";
        assert_eq!(c.ok(q, json!({})).await["aggregate"]["post"]["hypi_id"]["count"], 0, "{who}");
    }
    assert_eq!(edge_count(&x.ok(&find_posts_q(), json!({ "q": "note = null" })).await), 0);

    // Any account may change any post (AUTHENTICATED write); the owner stays X.
    y.upsert(json!({ "Post": [{ "hypi": { "id": p1 }, "title": "edited by Y" }] })).await;
    let data = x.ok(&get_post_q(&p1), json!({})).await;
    assert_eq!(data["get"]["title"], "edited by Y", "{data}");
    assert_eq!(data["get"]["hypi"]["createdBy"], x_id.as_str(), "{data}");
    assert_eq!(data["get"]["note"]["text"], "xsecret", "Y's partial update kept X's reference: {data}");
    let yp = y.upsert(json!({ "Post": [{ "title": "by Y" }] })).await.remove(0);
    assert_eq!(x.bulk("trash", "Post", &format!("hypi.id = '{yp}'")).await, 1, "X may trash Y's post");
    assert_eq!(x.bulk("untrash", "Post", &format!("hypi.id = '{yp}'")).await, 1);

    // Anonymous callers (allowed on pub.example) read posts but write nothing.
    let err = anon.upsert_err(json!({ "Post": [{ "title": "anon" }] })).await;
    assert_eq!(code(&err), "UNAUTHENTICATED", "{err}");
    let err = anon.upsert_err(json!({ "Post": [{ "hypi": { "id": p1 }, "title": "anon edit" }] })).await;
    assert!(["UNAUTHENTICATED", "FORBIDDEN"].contains(&code(&err)), "{err}");
    let err = anon.upsert_err(json!({ "Note": [{ "text": "anon" }] })).await;
    assert_eq!(code(&err), "UNAUTHENTICATED", "{err}");
    assert_eq!(anon.bulk("trash", "Post", "*").await, 0);
    assert_eq!(anon.bulk("delete", "Post", "*").await, 0);
    assert_eq!(anon.bulk("delete", "Note", "*").await, 0);
    let body = anon.link("unlink", "Post", "Note", "notes", &p1, &n1).await;
    assert!(!first_code(&body).is_empty(), "{body}");
    assert!(anon.ok(&get_note_q(&n1), json!({})).await["get"].is_null(), "anonymous get of an OWNER note");
    assert_eq!(edge_count(&anon.ok(&find_notes_q(), json!({ "q": "*" })).await), 0);
    assert_eq!(anon.ok(agg, json!({ "w": "*" })).await["aggregate"]["note"]["hypi_id"]["count"], 0);
    let data = x.ok(&get_post_q(&p1), json!({})).await;
    assert_eq!(data["get"]["title"], "edited by Y", "anonymous writes changed nothing: {data}");
    assert_eq!(data["get"]["notes"], json!([{ "text": "xsecret" }]), "{data}");
    assert_eq!(edge_count(&admin.ok(&find_posts_q(), json!({ "q": "*" })).await), 2);

    // Sorting by a field of X's note orders nothing for others: to them the key is missing on
    // both posts, so the order is the id order; X sees the real order. The same for cursors.
    let sort_notes = x.upsert(json!({ "Note": [{ "text": "zzz-x" }, { "text": "aaa-x" }] })).await;
    let sort_posts = x
        .upsert(json!({ "Post": [
            { "title": "sort-1", "note": { "hypi": { "id": sort_notes[0] } } },
            { "title": "sort-2", "note": { "hypi": { "id": sort_notes[1] } } }
        ] }))
        .await;
    let titles = |data: &Value| -> Vec<String> {
        data["find"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["title"].as_str().unwrap().to_string())
            .collect()
    };
    for dir in ["ASC", "DESC"] {
        let q = json!({ "q": format!("title ^ 'sort-' SORT note.text {dir}") });
        let want_x = if dir == "ASC" { ["sort-2", "sort-1"] } else { ["sort-1", "sort-2"] };
        assert_eq!(titles(&x.ok(&find_posts_q(), q.clone()).await), want_x, "control: X sorts by its notes");
        for (who, c) in [("Y", &y), ("anonymous", &anon)] {
            assert_eq!(
                titles(&c.ok(&find_posts_q(), q.clone()).await),
                ["sort-1", "sort-2"],
                "{who} {dir}: an order oracle"
            );
        }
    }
    let paged = "query($c: String) { find(type: Post, arcql: \"title ^ 'sort-' SORT note.text ASC\", after: $c) {
        edges { node { ... on Post { title } } } } }";
    assert_eq!(titles(&y.ok(paged, json!({ "c": sort_posts[0] })).await), ["sort-2"], "Y after sort-1");
    assert_eq!(titles(&y.ok(paged, json!({ "c": sort_posts[1] })).await), Vec::<String>::new(), "Y after sort-2");
    assert_eq!(titles(&x.ok(paged, json!({ "c": sort_posts[1] })).await), ["sort-1"], "control: X after sort-2");

    // Where anonymous requests are not enabled, even PUBLIC reads need credentials.
    let priv_admin = Client::admin(&t, "priv.example");
    priv_admin.upsert(json!({ "Post": [{ "title": "private instance" }] })).await;
    let anon_priv = Client::anonymous(&t, "priv.example");
    for q in [find_posts_q(), get_post_q(&p1)] {
        let (status, body) = anon_priv.send(&q, json!({ "q": "*" })).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(first_code(&body), "UNAUTHENTICATED", "{body}");
    }
    assert_eq!(edge_count(&priv_admin.ok(&find_posts_q(), json!({ "q": "*" })).await), 1);

    // Nothing of X's notes ever reached Y or an anonymous caller.
    for (who, c) in [("Y", &y), ("anonymous", &anon)] {
        for needle in ["xsecret", "xtag", "xsecond"] {
            let leaks = c.saw(needle);
            assert!(leaks.is_empty(), "{who} saw {needle:?}:\n{}", leaks.join("\n"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What a refused delete says
// ---------------------------------------------------------------------------------------------

const PINS: &str = "\
type Note { text: String  posts: [Post!] }
type Post @access(read: PUBLIC, write: AUTHENTICATED) { title: String }
";

/// A delete blocked by a list reference names `Type.field` (contract §3). When the object
/// holding the reference is one the caller may not see, the error must not hand out its id:
/// an object the caller may not see behaves like a missing one, and its id is not the
/// caller's to learn.
#[tokio::test]
async fn a_refused_delete_never_names_an_object_the_caller_cannot_see() {
    let t = setup(PINS, &[("pins.example", open(false, false))]).await;
    let admin = Client::admin(&t, "pins.example");
    let (_, x) = signed_in(&t, "pins.example", "xavier").await;
    let (_, y) = signed_in(&t, "pins.example", "yvonne").await;

    let p1 = x.upsert(json!({ "Post": [{ "title": "public post" }] })).await.remove(0);
    let hidden = y
        .upsert(json!({ "Note": [{ "text": "y's private note", "posts": [{ "hypi": { "id": p1 } }] }] }))
        .await
        .remove(0);
    assert!(x.ok(&format!("{{ get(type: Note, id: \"{hidden}\") {{ ... on Note {{ text }} }} }}"), json!({})).await
        ["get"]
        .is_null());

    let (_, body) = x.send(&format!("mutation {{ delete(type: Post, arcql: \"hypi.id = '{p1}'\") }}"), json!({})).await;
    let err = &body["errors"][0];
    assert_eq!(code(err), "CONFLICT", "{body}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("Note.posts"), "the error names Type.field: {message}");
    assert!(!message.contains(&hidden), "the error hands X the id of Y's private note: {message}");
    // Control: the admin may be told everything.
    let (_, body) =
        admin.send(&format!("mutation {{ delete(type: Post, arcql: \"hypi.id = '{p1}'\") }}"), json!({})).await;
    assert_eq!(first_code(&body), "CONFLICT", "{body}");
}

/// The filter cache keeps what an ArcQL text comes to, not who may see what: one text, planned
/// once, sent by two accounts and by the admin, reads and trashes only what each may, on two
/// instances of one release (a plan is per release and type, never per instance).
#[tokio::test]
async fn a_cached_filter_plan_still_answers_each_caller_by_its_access() {
    let t = setup(NOTES, &[("a.example", open(false, false)), ("b.example", open(false, false))]).await;
    let admin_a = Client::admin(&t, "a.example");
    let (_, alice) = signed_in(&t, "a.example", "alice").await;
    let (_, carol) = signed_in(&t, "a.example", "carol").await;
    alice.upsert(json!({ "Note": [{ "text": "n alice 1" }, { "text": "n alice 2" }] })).await;
    carol.upsert(json!({ "Note": [{ "text": "n carol" }] })).await;
    Client::admin(&t, "b.example").upsert(json!({ "Note": [{ "text": "n on b" }] })).await;
    let figures = |t: &TestApp| t.app.registry.filters.figures();
    let before = figures(&t);

    let find = "query($q: String!) { find(type: Note, arcql: $q) { edges { node { ... on Note { text } } } } }";
    let texts = |data: Value| {
        let mut v: Vec<String> = data["find"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["text"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let q = json!({ "q": "text ^ 'n '" });
    assert_eq!(texts(alice.ok(find, q.clone()).await), ["n alice 1", "n alice 2"]);
    assert_eq!(texts(carol.ok(find, q.clone()).await), ["n carol"]);
    assert_eq!(texts(admin_a.ok(find, q.clone()).await), ["n alice 1", "n alice 2", "n carol"]);
    assert_eq!(texts(Client::admin(&t, "b.example").ok(find, q.clone()).await), ["n on b"]);
    // Writes through the same plan: carol trashes only her own note.
    assert_eq!(carol.bulk("trash", "Note", "text ^ 'n '").await, 1);
    assert_eq!(texts(alice.ok(find, q.clone()).await), ["n alice 1", "n alice 2"]);
    assert_eq!(texts(carol.ok(find, q).await), Vec::<String>::new());

    let after = figures(&t);
    assert_eq!(after.misses - before.misses, 1, "one text, one type, one release: planned once ({after:?})");
    assert_eq!(after.hits - before.hits, 6, "{after:?}");
}
