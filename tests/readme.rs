//! Every GraphQL operation printed in the README's "generated API by example" section runs,
//! in order, against a fresh server with the example schema, without errors.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;

fn readme_operations() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme.split("## The generated API by example").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let mut ops = Vec::new();
    for block in section.split("```graphql\n").skip(1) {
        let body = block.split("```").next().unwrap();
        if body.trim_start().starts_with("type ") {
            continue; // the schema itself
        }
        ops.push(body.to_string());
    }
    ops
}

#[tokio::test]
async fn readme_examples_run_as_printed() {
    let ops = readme_operations();
    assert!(ops.len() >= 9, "found {} operations", ops.len());
    let t = TestApp::new(EXAMPLE).await;
    let mut results = Vec::new();
    for op in &ops {
        let data = t.ok(op, json!({})).await;
        results.push(data);
    }
    // Spot checks that the printed operations do what the README says they do.
    assert_eq!(results[0]["upsert"][0]["id"], "ann");
    let got = &results[2]["get"];
    assert_eq!(got["name"], "Ann Leckie");
    assert_eq!(got["age"], serde_json::Value::Null, "age was cleared by the partial update");
    assert_eq!(got["tags"], json!(["space opera", "hugo", "trilogy"]));
    let titles: Vec<&str> = got["booklist"].as_array().unwrap().iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Ancillary Sword", "Ancillary Mercy", "Ancillary Justice"]);
    let page1: Vec<&str> =
        results[3]["find"]["edges"].as_array().unwrap().iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(page1, ["mercy", "sword"]);
    assert_eq!(results[3]["find"]["pageInfo"]["hasNextPage"], true);
    let page2: Vec<&str> =
        results[4]["find"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["title"].as_str().unwrap()).collect();
    assert_eq!(page2, ["Ancillary Justice"]);
    assert_eq!(results[4]["find"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(results[5]["find"]["edges"][0]["node"]["name"], "Ann Leckie");
    assert_eq!(results[7]["trash"], 1, "only Mercy has fewer than 340 pages");
    assert_eq!(results[7]["untrash"], 1);
    assert_eq!(results[7]["deleteScalars"], 1);
    assert_eq!(results[8]["delete"], 1);
}

/// The README's limits table is the limits the binary has: every variable with its default.
#[test]
fn readme_lists_every_limit_with_its_default() {
    let readme = include_str!("../README.md");
    for (_, var, default, _) in arcbase::config::Limits::table() {
        let row = format!("| `{var}` | {default} |");
        assert!(readme.contains(&row), "README lacks the row {row}");
    }
}
