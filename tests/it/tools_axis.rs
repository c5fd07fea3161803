//! The `tools` axis through the real binary against local OpenAI and Anthropic servers: an agent
//! that picks a look-alike tool whenever the catalog offers one fails only under
//! `tools=overlapping`, and brittleness, shrink and the adaptive strategy blame exactly that
//! value; both wire formats carry the varied catalog; the added tools are recorded.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer};
use project::Project;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const KEY: [(&str, &str); 1] = [("TEST_KEY", "k")];
const EXPECTED: &str = "void_authorization";
/// The incident's catalog, in its order.
const INCIDENT_TOOLS: [&str; 4] = [
    "search_orders",
    "get_order_by_id",
    "refund_payment",
    "void_authorization",
];

/// The tool names a request offers, in either wire format (OpenAI `function.name`, Anthropic
/// `name`).
fn offered(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["function"]["name"].as_str().or(t["name"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The planted agent: it calls `void_authorization` — unless the catalog offers another tool
/// about authorizations (a look-alike), which it then picks. A realistic confusion, and the
/// only one planted: persona, phrasing, order and descriptions change nothing.
fn choice(body: &Value) -> String {
    offered(body)
        .into_iter()
        .find(|n| n != EXPECTED && n.contains("authorization"))
        .unwrap_or_else(|| EXPECTED.to_string())
}

/// Whether the conversation ends with a tool's result (OpenAI `tool` message, Anthropic
/// `tool_result` block): the agent has acted and now answers.
fn acted(body: &Value) -> bool {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return false;
    };
    last["role"] == "tool"
        || last["content"]
            .as_array()
            .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
}

fn openai_agent() -> TestServer {
    TestServer::start(|req, _| {
        if acted(req.json()) {
            return Reply::json(200, http_server::openai_completion("gpt", "Done."));
        }
        let tool = choice(req.json());
        Reply::json(
            200,
            http_server::openai_tool_calls(
                "gpt",
                &[("call_1", tool.as_str(), json!({"order_id": "B-20931"}))],
            ),
        )
    })
}

fn significant(b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (axis, values) in b["results"][0]["axes"].as_object().unwrap() {
        for (value, s) in values.as_object().unwrap() {
            if s["significant"] == true {
                out.push(format!("{axis}={value}"));
            }
        }
    }
    out
}

#[test]
fn a_model_that_fails_only_under_overlapping_is_blamed_on_tools_overlapping_alone() {
    let server = openai_agent();
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("overlapping-tools.yaml");
    // The probe declares the axis (it offers tools) and every value applies to its 4 tools.
    let out = p
        .run(
            &["expand", "--strategy", "one-at-a-time", "--axes", "tools"],
            &[],
        )
        .success();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values: Vec<&str> = lines
        .iter()
        .map(|v| v["axes"]["tools"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["original", "shuffled", "overlapping", "terse", "verbose"]
    );
    let original: BTreeSet<String> = offered(&lines[0]["request"]).into_iter().collect();
    for v in &lines {
        let names: BTreeSet<String> = offered(&v["request"]).into_iter().collect();
        assert!(names.is_superset(&original), "{v}");
        let added = v["added_tools"].as_object().unwrap();
        assert_eq!(names.len(), original.len() + added.len());
        if v["axes"]["tools"] == "overlapping" {
            assert!(
                added.values().any(|o| o == EXPECTED),
                "the tool the check names gets a look-alike: {added:?}"
            );
        } else {
            assert!(added.is_empty());
        }
    }

    p.sweep(&["--strategy", "pairwise"], &KEY).success();
    let rows = p.export(None);
    let (mut over, mut other) = ((0, 0), (0, 0));
    for r in &rows {
        let failed = r["status"] == "fail";
        assert!(r["status"] == "pass" || failed, "{r}");
        let slot = if r["axes"]["tools"] == "overlapping" {
            &mut over
        } else {
            &mut other
        };
        slot.0 += 1;
        slot.1 += failed as u32;
    }
    assert!(over.0 >= 13, "{over:?}");
    assert_eq!(over.1, over.0, "every overlapping case fails");
    assert_eq!(other.1, 0, "nothing else fails");

    let out = p.run(&["brittleness", "--format", "json"], &[]).success();
    let b: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(significant(&b), ["tools=overlapping"], "{b:#}");
    let out = p.run(&["brittleness"], &[]).success();
    assert!(out.stdout.contains("tools"), "{}", out.stdout);

    // Shrink from a variant with three changed axes finds the tools value alone.
    let start = lines
        .iter()
        .find(|v| v["axes"]["tools"] == "overlapping")
        .unwrap();
    let filter = "persona=terse-expert,phrasing=direct,tools=overlapping";
    let out = p
        .run(&["expand", "--strategy", "full", "--axes", filter], &[])
        .success();
    let three = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| {
            v["axes"]["persona"] != "original"
                && v["axes"]["phrasing"] != "original"
                && v["axes"]["tools"] != "original"
        })
        .unwrap();
    let out = p
        .run(
            &[
                "shrink",
                "overlapping-tools",
                "--model",
                "gpt",
                "--variant",
                three["variant"].as_str().unwrap(),
                "--format",
                "json",
            ],
            &KEY,
        )
        .success();
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        s["minimal"]["axes"],
        json!({"tools": "overlapping"}),
        "{s:#}"
    );
    assert_eq!(s["minimal"]["variant"], start["variant"], "{s:#}");
}

#[test]
fn adaptive_finds_tools_overlapping_and_clears_the_rest() {
    let server = openai_agent();
    let p = Project::new(&project::model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "",
    ));
    p.templatize("overlapping-tools.yaml");
    let json = p.root().join("adaptive.json");
    p.sweep(
        &[
            "--strategy",
            "adaptive",
            "--axes",
            "persona,phrasing,tools",
            "--adaptive-json",
            json.to_str().unwrap(),
        ],
        &KEY,
    )
    .success();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["full_product"], 13 * 13 * 5);
    let g = &r["groups"][0];
    assert_eq!(g["causes"], json!(["tools=overlapping"]), "{r:#}");
    for v in g["values"].as_array().unwrap() {
        let cause = v["axis"] == "tools" && v["value"] == "overlapping";
        assert_eq!(v["decision"] == "cause", cause, "{v}");
    }
}

#[test]
fn both_wire_formats_carry_the_varied_catalog() {
    let anthropic = TestServer::start(|req, _| {
        if acted(req.json()) {
            return Reply::json(200, http_server::anthropic_text("claude", "Done."));
        }
        let tool = choice(req.json());
        Reply::json(
            200,
            http_server::anthropic_message(
                "claude",
                vec![
                    json!({"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"order_id": "B-20931"}}),
                ],
                "tool_use",
            ),
        )
    });
    let openai = openai_agent();
    let models = format!(
        "{}{}",
        project::model("claude", "anthropic", &anthropic.url(), ""),
        project::model("gpt", "openai", &format!("{}/v1", openai.url()), "")
    );
    let p = Project::new(&models);
    p.templatize("overlapping-tools.yaml");
    p.sweep(
        &[
            "--strategy",
            "one-at-a-time",
            "--axes",
            "tools=overlapping|shuffled",
        ],
        &KEY,
    )
    .success();
    for server in [&anthropic, &openai] {
        let reqs = server.requests();
        // Three episodes of two model calls each: act, then answer.
        assert_eq!(reqs.len(), 6);
        // Requests arrive in any order: the canonical is the one with the incident's catalog.
        let catalogs: Vec<Vec<String>> = reqs.iter().map(|r| offered(r.json())).collect();
        let base = &INCIDENT_TOOLS.map(String::from).to_vec();
        assert!(catalogs.contains(base), "{catalogs:?}");
        assert!(
            catalogs.iter().any(|c| c.len() == 4 && c != base),
            "shuffled: {catalogs:?}"
        );
        let over = catalogs.iter().find(|c| c.len() > 4).expect("overlapping");
        assert!(base.iter().all(|n| over.contains(n)));
        // Anthropic tools keep their native shape (input_schema) for the added tools too.
        for r in &reqs {
            for t in r.json()["tools"].as_array().unwrap() {
                assert!(
                    t["input_schema"].is_object() || t["function"]["parameters"].is_object(),
                    "{t}"
                );
            }
        }
    }
    let rows = p.export(None);
    for r in &rows {
        let over = r["axes"]["tools"] == "overlapping";
        assert_eq!(r["status"] == "fail", over, "{r}");
    }
}
