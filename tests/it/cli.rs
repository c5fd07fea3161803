//! The command line end to end: the real binary, run in temporary folders.
//!
//! Covers templatizing every example incident and captured OpenAI/Anthropic request into a
//! suite, validating it, refusing bad input with a clear error and no partial writes, keeping
//! paths inside the suite, `init`, and `expand` (canonical first, stable ids, the `full`
//! safety limit). Snapshots pin the rendered questions, tool outputs and
//! templatized probe files of fixed examples.

use assert_cmd::Command;
use cliffprobe::axes::AxisLibrary;
use cliffprobe::chat::Role;
use cliffprobe::domain::Tier;
use cliffprobe::probe::Probe;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> PathBuf {
    repo().join("examples/incidents").join(name)
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/incidents"))
        .expect("examples/incidents")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "json"))
        .collect();
    v.sort();
    v
}

fn input(name: &str) -> PathBuf {
    repo().join("tests/inputs").join(name)
}

/// The binary, run in `dir` (so no `cliffprobe.toml` or `templates/` of the repo is seen).
fn cli(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cliffprobe"));
    c.current_dir(dir);
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(mut c: Command) -> Out {
    let o = c.output().expect("run cliffprobe");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(o.stderr).expect("utf-8 stderr"),
    }
}

fn ok(c: Command) -> Out {
    let o = run(c);
    assert_eq!(
        o.code, 0,
        "expected success\nstdout:\n{}\nstderr:\n{}",
        o.stdout, o.stderr
    );
    o
}

/// Every file (not folder) under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `templatize INCIDENT --suite SUITE ARGS…` run in `dir`.
fn templatize(dir: &Path, incident: &Path, suite: &Path, args: &[&str]) -> Command {
    let mut c = cli(dir);
    c.arg("templatize").arg(incident).arg("--suite").arg(suite);
    c.args(args);
    c
}

/// Templatizes `incident` into `suite` and returns the written probe and its path.
fn templatize_ok(dir: &Path, incident: &Path, suite: &Path, args: &[&str]) -> (Probe, PathBuf) {
    let out = ok(templatize(dir, incident, suite, args));
    let wrote = out
        .stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("wrote"))
        .unwrap_or_else(|| panic!("no `wrote` line in:\n{}", out.stdout))
        .trim();
    let path = dir.join(wrote);
    let probe = Probe::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (probe, path)
}

/// The JSON lines of `expand`.
fn expand_lines(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut c = cli(dir);
    c.arg("expand").args(args);
    let out = ok(c);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

fn last_user_content(v: &Value) -> String {
    v["request"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .expect("a user message with content")
        .to_string()
}

fn tool_content(v: &Value) -> String {
    v["request"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .expect("a tool message with content")
        .to_string()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// templatize: the examples

#[test]
fn every_example_templatizes_into_the_suite_and_validates() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let all = examples();
    assert_eq!(all.len(), 9, "examples/incidents holds 9 incidents");
    for inc in &all {
        let out = ok(templatize(tmp.path(), inc, &suite, &[]));
        let s = &out.stdout;
        // The summary names what was found: slots, axes and variant counts.
        for needle in [
            "templatized",
            "probe",
            "question",
            "checks",
            "bad output",
            "axes",
            "variants",
            "full",
            "pairwise",
            "one-at-a-time",
            "wrote",
        ] {
            assert!(
                s.contains(needle),
                "{}: summary lacks `{needle}`:\n{s}",
                inc.display()
            );
        }
        let wrote = s
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("wrote"))
            .expect("wrote line")
            .trim();
        let path = tmp.path().join(wrote);
        let p = Probe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        // SUITE/<capability-slug>/<id>.yaml
        let expected = suite
            .join(cliffprobe::templatize::slug(&p.capability))
            .join(format!("{}.yaml", p.id));
        assert_eq!(path, tmp.path().join(&expected), "{}", inc.display());
        assert_eq!(
            Some(p.id.as_str()),
            inc.file_stem().and_then(|x| x.to_str()),
            "the id defaults to the incident's file name"
        );
        // Every slot appears in the summary.
        let tool_lines = s
            .lines()
            .filter(|l| l.trim_start().starts_with("tool output"))
            .count();
        assert_eq!(tool_lines, p.slots.tool_outputs.len(), "{s}");
        for id in p.slots.tool_outputs.keys() {
            assert!(s.contains(&format!("tool output {id}")), "{s}");
        }
        for name in p.slots.documents.keys() {
            assert!(s.contains(&format!("document    {name}")), "{s}");
        }
        let axes_line = s
            .lines()
            .find(|l| l.trim_start().starts_with("axes"))
            .expect("axes line");
        for a in &p.axes {
            assert!(axes_line.contains(a.as_str()), "{axes_line}");
        }
        // The incident's own failure reproduces: every example with checks grades `fail`; the
        // invariant one without checks is compared with its canonical answer instead.
        if p.checks.is_empty() {
            assert!(p.invariant, "{}", inc.display());
            assert!(s.contains("no checks to grade it with"), "{s}");
            assert!(s.contains("invariant   every variant's answer"), "{s}");
        } else {
            assert!(s.contains("grades `fail`"), "{s}");
        }
    }
    assert_eq!(files_under(&suite).len(), 9);
    assert!(
        files_under(tmp.path())
            .iter()
            .all(|f| f.starts_with("suite") && f.extension().is_some_and(|x| x == "yaml")),
        "only probe files were written (no temporary files left over): {:?}",
        files_under(tmp.path())
    );

    let mut c = cli(tmp.path());
    c.arg("validate").arg(&suite);
    let out = ok(c);
    assert!(out.stdout.contains("9 probe files OK"), "{}", out.stdout);
}

#[test]
fn summary_counts_match_the_expansion() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &example("order-status-table.yaml"),
        &suite,
        &[],
    ));
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("variants"))
        .expect("variants line")
        .to_string();
    let count = |strategy: &str| -> usize {
        let mut c = cli(tmp.path());
        c.args(["expand", "--count", "--strategy", strategy])
            .arg(&suite);
        let o = ok(c);
        o.stdout
            .trim()
            .split('\t')
            .nth(1)
            .expect("id<TAB>count")
            .parse()
            .expect("a count")
    };
    for s in ["full", "pairwise", "one-at-a-time"] {
        let n = count(s);
        assert!(
            line.contains(&format!("{s} {n}")),
            "summary `{line}` disagrees with `expand --count --strategy {s}` = {n}"
        );
    }
    assert!(out.stdout.contains("key record #2 (order_id=A-10442)"));
}

#[test]
fn dry_run_prints_the_probe_and_writes_nothing() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &example("order-status-table.yaml"),
        &suite,
        &["--dry-run"],
    ));
    let p = Probe::parse(Path::new("<stdout>"), &out.stdout).expect("dry run prints a probe");
    assert_eq!(p.id, "order-status-table");
    assert!(!suite.exists(), "--dry-run created the suite folder");
    assert!(files_under(tmp.path()).is_empty());
}

#[test]
fn second_templatize_refuses_without_force_and_keeps_the_file() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let inc = example("shipment-xml-lookup.yaml");
    let (_, path) = templatize_ok(tmp.path(), &inc, &suite, &[]);
    let before = std::fs::read(&path).unwrap();

    // Same incident, same capability: same file, so the run is refused (another option, like
    // the tier, makes no difference).
    let out = run(templatize(
        tmp.path(),
        &inc,
        &suite,
        &["--tier", "frontier"],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert!(
        out.stderr.contains("shipment-xml-lookup.yaml"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the refused run changed the file"
    );
    assert_eq!(files_under(tmp.path()).len(), 1);

    // --force overwrites.
    let (p, path2) = templatize_ok(tmp.path(), &inc, &suite, &["--tier", "frontier", "--force"]);
    assert_eq!(path2, path);
    assert_eq!(p.tier, Tier::Frontier);
    assert_ne!(std::fs::read(&path).unwrap(), before);
    assert_eq!(files_under(tmp.path()).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// templatize: bad input

/// Runs templatize on a malformed input; it must exit 2, name the file and the given
/// fragments (line, field, help), and write nothing at all.
fn refused(fixture: &str, args: &[&str], fragments: &[&str]) -> Out {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = run(templatize(tmp.path(), &input(fixture), &suite, args));
    assert_eq!(
        out.code, 2,
        "{fixture}: expected exit 2\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(fixture),
        "{fixture}: the error does not name the file:\n{}",
        out.stderr
    );
    for f in fragments {
        assert!(
            out.stderr.contains(f),
            "{fixture}: the error lacks `{f}`:\n{}",
            out.stderr
        );
    }
    assert!(!suite.exists(), "{fixture}: the suite folder was created");
    assert!(
        files_under(tmp.path()).is_empty(),
        "{fixture}: files were written: {:?}",
        files_under(tmp.path())
    );
    out
}

#[test]
fn bad_yaml_is_refused_with_its_line() {
    // The unterminated quote on line 5 is reported where the parser notices it: line 6.
    refused("bad-yaml.yaml", &[], &["bad-yaml.yaml:6:", "quoted scalar"]);
}

#[test]
fn bad_json_capture_is_refused_with_its_line_and_field() {
    let expect = ["--expect", "contains=delayed"];
    refused(
        "bad-json.json",
        &expect,
        &["bad-json.json:5:", "trailing comma"],
    );
    refused(
        "bad-role.json",
        &expect,
        &["field `messages[1].role`", "found `customer`"],
    );
}

#[test]
fn missing_conversation_or_messages_is_refused() {
    refused(
        "missing-conversation.yaml",
        &[],
        &["`conversation`", "`messages`"],
    );
    refused(
        "capture-messages-not-list.json",
        &["--expect", "contains=delayed"],
        &["field `messages`", "list"],
    );
    refused("no-user-turn.yaml", &[], &["field `conversation`", "user"]);
}

#[test]
fn unknown_check_type_is_refused_with_its_line_and_the_known_types() {
    refused(
        "unknown-check.yaml",
        &[],
        &[
            "unknown-check.yaml:9:",
            "sounds_like",
            "not_contains",
            "tool_call",
        ],
    );
    // The same on the command line: the "file" is the command line, the field `--expect`.
    let tmp = TempDir::new().unwrap();
    let out = run(templatize(
        tmp.path(),
        &input("no-expected.yaml"),
        &tmp.path().join("suite"),
        &["--expect", "sounds_like=forty-two"],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    for f in [
        "<command line>",
        "field `--expect`",
        "unknown check type `sounds_like`",
    ] {
        assert!(out.stderr.contains(f), "lacks `{f}`:\n{}", out.stderr);
    }
    assert!(files_under(tmp.path()).is_empty());
}

#[test]
fn an_incident_without_expected_shows_how_to_write_one() {
    refused(
        "no-expected.yaml",
        &[],
        &[
            "field `expected`",
            "expected:",
            "- contains:",
            "- not_contains:",
            "--expect contains=",
        ],
    );
    // Checks on the command line are enough.
    let tmp = TempDir::new().unwrap();
    let (p, _) = templatize_ok(
        tmp.path(),
        &input("no-expected.yaml"),
        &tmp.path().join("suite"),
        &["--expect", "numeric=42"],
    );
    assert_eq!(p.checks.len(), 1);
}

#[test]
fn checks_that_pass_the_bad_output_are_refused_unless_forced() {
    refused(
        "checks-pass-bad-output.yaml",
        &[],
        &["PASS", "do not reproduce the failure", "--force"],
    );
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &input("checks-pass-bad-output.yaml"),
        &suite,
        &["--force"],
    ));
    assert!(out.stdout.contains("PASSES the checks"), "{}", out.stdout);
    assert_eq!(files_under(&suite).len(), 1);
}

#[test]
fn validate_names_file_line_and_field_of_a_bad_probe() {
    let tmp = TempDir::new().unwrap();
    let mut c = cli(tmp.path());
    c.arg("validate").arg(input("probe-unknown-axis.yaml"));
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for f in [
        "probe-unknown-axis.yaml:14",
        "field `axes`",
        "colour",
        "1 of 1 probe files have problems",
    ] {
        assert!(out.stderr.contains(f), "lacks `{f}`:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// templatize: captured requests

const OPENAI_EXPECT: &[&str] = &[
    "--expect",
    "contains=INV-7711",
    "--expect",
    "not_contains=INV-7712",
    "--capability",
    "reading a JSON tool output",
];

fn assert_openai_probe(p: &Probe) {
    assert_eq!(p.source.kind, "openai-capture");
    assert_eq!(p.source.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(
        p.slots.question,
        "Which one is overdue, INV-7711 or INV-7712?"
    );
    let roles: Vec<Role> = p.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
    assert_eq!(p.messages[5].content.as_deref(), Some("{{ question }}"));
    assert_eq!(p.messages[2].tool_calls[0].function.name, "get_invoices");
    let slot = &p.slots.tool_outputs["call_inv1"];
    assert_eq!(slot.tool.as_deref(), Some("get_invoices"));
    assert_eq!(slot.format, "json");
    let data = slot.data.as_ref().expect("the JSON tool output is parsed");
    assert_eq!(data.container.as_deref(), Some("invoices"));
    assert_eq!(data.records.len(), 3);
    assert_eq!(data.envelope.get("page"), Some(&Value::from(1)));
    // The question names two invoices: both are key records.
    assert_eq!(slot.key_records, vec![1, 2]);
    assert_eq!(slot.key_fields, vec!["invoice_id".to_string()]);
    assert_eq!(p.tools.len(), 1);
    assert_eq!(p.tools[0].function.name, "get_invoices");
    assert_eq!(p.checks.len(), 2);
    assert_eq!(p.axes, ["persona", "phrasing", "length", "format", "tools"]);
}

#[test]
fn captured_openai_request_alone_templatizes() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &input("openai-request.json"),
        &suite,
        OPENAI_EXPECT,
    ));
    assert!(out.stdout.contains("(openai-capture)"), "{}", out.stdout);
    assert!(out.stdout.contains("none recorded"), "{}", out.stdout);
    let (p, path) = templatize_ok(
        tmp.path(),
        &input("openai-request.json"),
        &suite,
        &[OPENAI_EXPECT, &["--force"]].concat(),
    );
    assert!(path.ends_with("reading-a-json-tool-output/openai-request.yaml"));
    assert_openai_probe(&p);
    assert_eq!(p.source.bad_output, None);
}

#[test]
fn captured_openai_request_and_response_templatizes() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &input("openai-capture.json"),
        &suite,
        OPENAI_EXPECT,
    ));
    assert!(out.stdout.contains("grades `fail`"), "{}", out.stdout);
    let p = Probe::load(&suite.join("reading-a-json-tool-output/openai-capture.yaml")).unwrap();
    assert_openai_probe(&p);
    assert_eq!(
        p.source.bad_output.as_deref(),
        Some("Invoice INV-7712 is overdue.")
    );

    // A capture carries no checks of its own: without --expect, the help is shown.
    let tmp2 = TempDir::new().unwrap();
    let out = run(templatize(
        tmp2.path(),
        &input("openai-capture.json"),
        &tmp2.path().join("suite"),
        &[],
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("field `expected`"), "{}", out.stderr);
    assert!(out.stderr.contains("--expect"), "{}", out.stderr);
    assert!(files_under(tmp2.path()).is_empty());
}

#[test]
fn captured_anthropic_request_with_tool_blocks_templatizes() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let out = ok(templatize(
        tmp.path(),
        &input("anthropic-capture.json"),
        &suite,
        &[
            "--expect",
            "contains=customs",
            "--expect",
            "not_contains=has been released",
            "--capability",
            "reading a CSV tool output",
        ],
    ));
    assert!(out.stdout.contains("(anthropic-capture)"), "{}", out.stdout);
    assert!(out.stdout.contains("grades `fail`"), "{}", out.stdout);
    let path = suite.join("reading-a-csv-tool-output/anthropic-capture.yaml");
    let p = Probe::load(&path).unwrap();
    assert_eq!(p.source.kind, "anthropic-capture");
    assert_eq!(
        p.source.model.as_deref(),
        Some("claude-sonnet-4-5-20250929")
    );
    assert_eq!(
        p.source.bad_output.as_deref(),
        Some("Yes, KSTU-400112 has been released in Rotterdam.")
    );
    let roles: Vec<Role> = p.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    // tool_use → an assistant tool call; tool_result → a tool message answering it.
    let call = &p.messages[2].tool_calls[0];
    assert_eq!(call.id, "toolu_01A");
    assert_eq!(call.function.name, "list_containers");
    assert_eq!(
        serde_json::from_str::<Value>(&call.function.arguments).unwrap(),
        serde_json::json!({"vessel": "MV Kestrel"})
    );
    assert_eq!(
        p.messages[2].content.as_deref(),
        Some("Let me look those up.")
    );
    assert_eq!(p.messages[3].tool_call_id.as_deref(), Some("toolu_01A"));
    // The question is the text of the last user turn, after its tool_result block.
    assert_eq!(p.slots.question, "Is container KSTU-400112 released yet?");
    assert_eq!(p.messages[4].content.as_deref(), Some("{{ question }}"));
    let slot = &p.slots.tool_outputs["toolu_01A"];
    assert_eq!(slot.tool.as_deref(), Some("list_containers"));
    assert_eq!(slot.format, "csv");
    let data = slot.data.as_ref().expect("the CSV tool result is parsed");
    assert_eq!(data.records.len(), 3);
    assert_eq!(data.records[0]["status"], Value::from("customs_hold"));
    assert_eq!(slot.key_records, vec![0]);
    assert_eq!(slot.key_fields, vec!["container_id".to_string()]);
    assert_eq!(p.tools[0].function.name, "list_containers");
    assert_eq!(
        p.tools[0].function.parameters["required"],
        serde_json::json!(["vessel"])
    );

    // The canonical variant reproduces the capture: same tool result text, same question.
    let mut c = cli(tmp.path());
    c.arg("validate").arg(&suite);
    ok(c);
    let lines = expand_lines(
        tmp.path(),
        &[
            path.to_str().unwrap(),
            "--strategy",
            "one-at-a-time",
            "--axes",
            "format",
        ],
    );
    assert_eq!(lines[0]["canonical"], true);
    assert_eq!(tool_content(&lines[0]), slot.original);
    assert_eq!(
        last_user_content(&lines[0]),
        "Is container KSTU-400112 released yet?"
    );
    assert_eq!(lines[0]["request"]["messages"][0]["role"], "system");
}

// ---------------------------------------------------------------------------------------------
// init

#[test]
fn init_writes_config_templates_and_probes() {
    let tmp = TempDir::new().unwrap();
    let mut c = cli(tmp.path());
    c.args(["init", "proj"]);
    let out = ok(c);
    assert!(out.stdout.contains("cliffprobe.toml"), "{}", out.stdout);
    let proj = tmp.path().join("proj");
    assert!(proj.join("cliffprobe.toml").is_file());
    assert!(proj.join("probes").is_dir());
    for (name, text) in AxisLibrary::default_files() {
        let written = std::fs::read_to_string(proj.join("templates").join(name)).unwrap();
        assert_eq!(&written, text, "templates/{name} differs from the default");
        let in_repo = std::fs::read_to_string(repo().join("templates").join(name)).unwrap();
        assert_eq!(written, in_repo, "embedded templates/{name} is stale");
    }
    let before = files_under(&proj);
    assert_eq!(before.len(), 6, "{before:?}");

    // Again: refused, nothing changed; --force overwrites.
    let mut c = cli(tmp.path());
    c.args(["init", "proj"]);
    let again = run(c);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    let mut c = cli(tmp.path());
    c.args(["init", "proj", "--force"]);
    ok(c);

    // The project works: templatize into its suite (from cliffprobe.toml), validate, expand.
    let mut c = cli(&proj);
    c.arg("templatize").arg(example("order-status-table.yaml"));
    ok(c);
    assert!(
        proj.join("probes/reading-a-status-from-a-tool-s-table-output/order-status-table.yaml")
            .is_file()
    );
    let mut c = cli(&proj);
    c.arg("validate");
    let out = ok(c);
    assert!(out.stdout.contains("1 probe files OK"), "{}", out.stdout);
    let lines = expand_lines(&proj, &["--strategy", "one-at-a-time"]);
    assert_eq!(lines.len(), 45);
}

// ---------------------------------------------------------------------------------------------
// expand

fn suite_of_examples(tmp: &TempDir) -> PathBuf {
    let suite = tmp.path().join("suite");
    for inc in examples() {
        ok(templatize(tmp.path(), &inc, &suite, &[]));
    }
    suite
}

#[test]
fn expand_streams_canonical_first_with_the_documented_shape() {
    let tmp = TempDir::new().unwrap();
    let suite = suite_of_examples(&tmp);
    let lines = expand_lines(tmp.path(), &[suite.to_str().unwrap()]);
    let mut seen: Vec<String> = Vec::new();
    let mut ids = HashSet::new();
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(
            keys(v),
            set(&[
                "probe",
                "variant",
                "canonical",
                "axes",
                "request",
                "added_tools"
            ]),
            "line {i}"
        );
        assert_eq!(
            keys(&v["axes"]),
            set(&["persona", "phrasing", "length", "format", "tools"])
        );
        assert_eq!(keys(&v["request"]), set(&["messages", "tools"]));
        assert!(!v["request"]["messages"].as_array().unwrap().is_empty());
        let probe = v["probe"].as_str().unwrap().to_string();
        let variant = v["variant"].as_str().unwrap();
        assert_eq!(variant.len(), 16);
        assert!(variant.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            ids.insert(variant.to_string()),
            "duplicate variant id {variant}"
        );
        let all_original = ["persona", "phrasing", "length", "format", "tools"]
            .iter()
            .all(|a| v["axes"][a] == "original");
        assert_eq!(v["canonical"], all_original, "line {i}");
        if seen.last() != Some(&probe) {
            assert!(!seen.contains(&probe), "probe {probe} is not contiguous");
            assert_eq!(
                v["canonical"], true,
                "the first variant of {probe} is not the canonical"
            );
            seen.push(probe);
        } else {
            assert_eq!(v["canonical"], false, "two canonicals for {probe}");
        }
    }
    assert_eq!(seen.len(), 9);
}

#[test]
fn variant_ids_are_stable_and_follow_the_question() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let (mut p, path) = templatize_ok(tmp.path(), &example("order-status-table.yaml"), &suite, &[]);
    let args = [path.to_str().unwrap(), "--strategy", "one-at-a-time"];
    let run_once = || {
        let mut c = cli(tmp.path());
        c.arg("expand").args(args);
        ok(c).stdout
    };
    let first = run_once();
    assert_eq!(first, run_once(), "two runs differ");
    let ids = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["variant"].to_string())
            .collect()
    };
    let before = ids(&first);

    // Metadata (title) does not shape a request: ids stay.
    p.title = Some("Edited title".into());
    std::fs::write(&path, p.to_yaml()).unwrap();
    assert_eq!(ids(&run_once()), before);

    // The question does: every id changes.
    p.slots.question = "Great, so what is the status of order A-10441?".into();
    std::fs::write(&path, p.to_yaml()).unwrap();
    let after = ids(&run_once());
    assert_eq!(after.len(), before.len());
    let b: HashSet<_> = before.iter().collect();
    assert!(
        after.iter().all(|id| !b.contains(id)),
        "an id survived a question change"
    );
}

#[test]
fn expand_axes_filter_limits_what_varies() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let (_, path) = templatize_ok(tmp.path(), &example("order-status-table.yaml"), &suite, &[]);
    let lines = expand_lines(
        tmp.path(),
        &[
            path.to_str().unwrap(),
            "--strategy",
            "full",
            "--axes",
            "persona,format=xml|csv",
        ],
    );
    let personas = AxisLibrary::embedded().personas.len() + 1;
    assert_eq!(lines.len(), personas * 3);
    for v in &lines {
        assert_eq!(v["axes"]["phrasing"], "original");
        assert_eq!(v["axes"]["length"], "original");
        let f = v["axes"]["format"].as_str().unwrap();
        assert!(["original", "xml", "csv"].contains(&f), "{f}");
    }
    let mut c = cli(tmp.path());
    c.arg("expand").arg(&path).args(["--axes", "format=yml"]);
    let out = run(c);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown format value `yml`"),
        "{}",
        out.stderr
    );
}

/// A library with `n` personas and `n` phrasings (each valid: keeps the question).
fn write_big_library(dir: &Path, n: usize) {
    let t = dir.join("templates");
    std::fs::create_dir_all(&t).unwrap();
    for axis in ["persona", "phrasing"] {
        let mut y = format!("axis: {axis}\nvalues:\n");
        for i in 0..n {
            // Names only: letters, so the wrapper text has no digits.
            let name: String = format!("{i:03}")
                .chars()
                .map(|c| char::from(b'a' + (c as u8 - b'0')))
                .collect();
            y.push_str(&format!(
                "  - name: v-{name}\n    template: \"Voice {name}: {{{{ question }}}}\"\n"
            ));
        }
        std::fs::write(t.join(format!("{axis}.yaml")), y).unwrap();
    }
}

#[test]
fn full_over_the_limit_needs_yes() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    // Templatize before the big library exists (its summary plans a pairwise array).
    let (_, path) = templatize_ok(tmp.path(), &example("order-status-table.yaml"), &suite, &[]);
    // Under the limit: `full` runs without --yes (13 × 13 × 10 × 9 × 4 with the embedded
    // library: its one tool gives the tools axis `overlapping`, `terse` and `verbose`).
    let mut c = cli(tmp.path());
    c.arg("expand")
        .arg(&path)
        .args(["--strategy", "full", "--count"]);
    let out = ok(c);
    assert!(out.stdout.trim().ends_with("\t60840"), "{}", out.stdout);

    // 121 × 121 × 10 × 9 × 4 = 5,270,760 > MAX_VARIANTS_WITHOUT_YES.
    write_big_library(tmp.path(), 120);
    let full: u64 = 121 * 121 * 10 * 9 * 4;
    assert!(full > cliffprobe::limits::MAX_VARIANTS_WITHOUT_YES);
    let mut c = cli(tmp.path());
    c.arg("expand").arg(&path).args(["--strategy", "full"]);
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "variants were printed before the refusal"
    );
    assert!(out.stderr.contains(&full.to_string()), "{}", out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    // Narrowed by --axes it is small again.
    let mut c = cli(tmp.path());
    c.arg("expand")
        .arg(&path)
        .args(["--strategy", "full", "--axes", "persona", "--count"]);
    let out = ok(c);
    assert!(out.stdout.trim().ends_with("\t121"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// Path safety

#[test]
fn unsafe_ids_are_refused() {
    for id in ["../evil", "a/b", "..", "/etc/passwd", ""] {
        let tmp = TempDir::new().unwrap();
        let suite = tmp.path().join("s").join("suite");
        let out = run(templatize(
            tmp.path(),
            &example("order-status-table.yaml"),
            &suite,
            &["--id", id],
        ));
        assert_eq!(out.code, 2, "--id {id:?}: {}", out.stderr);
        assert!(out.stderr.contains("not safe"), "{}", out.stderr);
        assert!(
            files_under(tmp.path()).is_empty(),
            "--id {id:?} wrote a file"
        );
    }
}

#[test]
fn capabilities_are_slugged_into_the_suite() {
    for (cap, folder) in [
        ("../../etc", "etc"),
        ("/abs/olute", "abs-olute"),
        ("..", "uncategorized"),
        ("a\\..\\..\\b", "a-b"),
    ] {
        let tmp = TempDir::new().unwrap();
        let suite = tmp.path().join("s").join("suite");
        let (p, path) = templatize_ok(
            tmp.path(),
            &example("order-status-table.yaml"),
            &suite,
            &["--capability", cap],
        );
        assert_eq!(p.capability, cap, "the capability itself is kept as text");
        assert_eq!(path, suite.join(folder).join("order-status-table.yaml"));
        assert_eq!(
            files_under(tmp.path()),
            vec![PathBuf::from(format!(
                "s/suite/{folder}/order-status-table.yaml"
            ))]
        );
    }
}

#[test]
fn an_incident_id_is_slugged_into_a_safe_file_name() {
    let tmp = TempDir::new().unwrap();
    let text = std::fs::read_to_string(input("no-expected.yaml"))
        .unwrap()
        .replace("title:", "id: ../../Evil Twin\ntitle:");
    let inc = tmp.path().join("incident.yaml");
    std::fs::write(&inc, text).unwrap();
    let suite = tmp.path().join("suite");
    let (p, path) = templatize_ok(tmp.path(), &inc, &suite, &["--expect", "numeric=42"]);
    assert_eq!(p.id, "evil-twin");
    assert_eq!(path, suite.join("arithmetic/evil-twin.yaml"));
}

#[test]
fn validate_and_expand_refuse_a_suite_with_a_bad_or_duplicate_probe() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let inc = example("order-status-table.yaml");
    templatize_ok(tmp.path(), &inc, &suite, &[]);
    // The same id under another capability: two files, one id.
    templatize_ok(tmp.path(), &inc, &suite, &["--capability", "other"]);
    let mut c = cli(tmp.path());
    c.arg("validate").arg(&suite);
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("field `id`"), "{}", out.stderr);
    assert!(out.stderr.contains("is also the id of"), "{}", out.stderr);

    // A broken probe file: expand prints nothing at all, and names it.
    std::fs::remove_dir_all(suite.join("other")).unwrap();
    std::fs::copy(
        input("probe-unknown-axis.yaml"),
        suite.join("zz-broken.yaml"),
    )
    .unwrap();
    let mut c = cli(tmp.path());
    c.arg("expand").arg(&suite);
    let out = run(c);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "expand printed variants before failing"
    );
    assert!(out.stderr.contains("zz-broken.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("field `axes`"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// The order-status probe templatized into a fresh suite; returns the tempdir and probe path.
fn order_status() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let (_, path) = templatize_ok(tmp.path(), &example("order-status-table.yaml"), &suite, &[]);
    (tmp, path)
}

/// `expand --strategy one-at-a-time --axes AXES` rendered as `### axis: value` sections.
fn sections(axes: &str, axis: &str, part: fn(&Value) -> String) -> String {
    let (tmp, path) = order_status();
    let lines = expand_lines(
        tmp.path(),
        &[
            path.to_str().unwrap(),
            "--strategy",
            "one-at-a-time",
            "--axes",
            axes,
        ],
    );
    let mut out = String::new();
    for v in &lines {
        out.push_str(&format!(
            "### {axis}: {}\n{}\n\n",
            v["axes"][axis].as_str().unwrap(),
            part(v)
        ));
    }
    out
}

#[test]
fn snapshot_question_for_every_persona() {
    let s = sections("persona", "persona", last_user_content);
    let lib = AxisLibrary::embedded();
    for p in &lib.personas {
        assert!(s.contains(&format!("### persona: {}\n", p.name)));
    }
    insta::assert_snapshot!("order_status_question_by_persona", s);
}

#[test]
fn snapshot_question_for_every_phrasing() {
    let s = sections("phrasing", "phrasing", last_user_content);
    let lib = AxisLibrary::embedded();
    for p in &lib.phrasings {
        assert!(s.contains(&format!("### phrasing: {}\n", p.name)));
    }
    insta::assert_snapshot!("order_status_question_by_phrasing", s);
}

#[test]
fn snapshot_tool_output_for_every_format_and_one_length() {
    let s = sections("format", "format", tool_content);
    for f in cliffprobe::tool_output::FORMATS {
        assert!(s.contains(&format!("### format: {f}\n")));
    }
    assert_eq!(
        s.split("### ").filter(|x| x.contains("A-10442")).count(),
        cliffprobe::tool_output::FORMATS.len() + 1,
        "the key order is in every format"
    );
    insta::assert_snapshot!("order_status_tool_output_by_format", s);
    let s = sections("length=2k-middle", "length", tool_content);
    assert!(s.contains("### length: 2k-middle\n"));
    insta::assert_snapshot!("order_status_tool_output_length_2k_middle", s);
}

/// `templatize --dry-run` of an example, with `source.file` normalised.
fn dry_run_yaml(name: &str) -> String {
    let tmp = TempDir::new().unwrap();
    let inc = example(name);
    let out = ok(templatize(
        tmp.path(),
        &inc,
        &tmp.path().join("suite"),
        &["--dry-run"],
    ));
    let normal = format!("examples/incidents/{name}");
    let yaml = out.stdout.replace(inc.to_str().unwrap(), &normal);
    assert!(
        yaml.contains(&format!("  file: {normal}\n")),
        "source.file not normalised:\n{yaml}"
    );
    yaml
}

#[test]
fn snapshot_templatized_probe_files() {
    insta::assert_snapshot!(
        "probe_order_status_table",
        dry_run_yaml("order-status-table.yaml")
    );
    insta::assert_snapshot!(
        "probe_overlapping_tools",
        dry_run_yaml("overlapping-tools.yaml")
    );
}

/// `cliffprobe init` writes `examples/cliffprobe.toml`; the repo's own `cliffprobe.toml` (the
/// offline demo) is the same file, so the demo is what a new project starts from.
#[test]
fn the_demo_config_is_the_init_default() {
    let root = std::fs::read_to_string(repo().join("cliffprobe.toml")).unwrap();
    let example = std::fs::read_to_string(repo().join("examples/cliffprobe.toml")).unwrap();
    assert_eq!(root, example);
    // It judges offline with the mock, and says so.
    assert!(root.contains("[judge]\nmodel = \"mock-judge\""), "{root}");
    assert!(root.contains("SIMULATED"), "{root}");
}

/// The incident format carries `invariant: true`, `answer_pattern` and `judge` checks into the
/// probe; `--invariant` / `--answer-pattern` do the same for captures (which carry no checks).
#[test]
fn templatize_carries_invariance_and_judge_checks() {
    let tmp = TempDir::new().unwrap();
    let suite = tmp.path().join("suite");
    let (p, _) = templatize_ok(
        tmp.path(),
        &example("loan-prescreen-consistency.yaml"),
        &suite,
        &[],
    );
    assert!(p.invariant && p.checks.is_empty());
    assert_eq!(
        p.answer_pattern.as_deref(),
        Some("(?i)decision:\\s*(not eligible|eligible)")
    );
    let (p, _) = templatize_ok(
        tmp.path(),
        &example("opened-item-refund-policy.yaml"),
        &suite,
        &[],
    );
    assert!(!p.invariant);
    assert_eq!(
        p.checks.iter().map(|c| c.kind()).collect::<Vec<_>>(),
        ["contains", "judge"]
    );

    // A capture with no checks: refused, unless invariant.
    let cap = input("openai-capture.json");
    let refused = run(templatize(tmp.path(), &cap, &suite, &["--dry-run"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let out = ok(templatize(
        tmp.path(),
        &cap,
        &suite,
        &[
            "--dry-run",
            "--invariant",
            "--answer-pattern",
            "(?i)status: (\\w+)",
        ],
    ));
    assert!(
        out.stdout.contains("\ninvariant: true\nanswer_pattern: "),
        "{}",
        out.stdout
    );

    // answer_pattern without invariance, or a bad regex: exit 2, naming the field, no file.
    for (args, field) in [
        (vec!["--answer-pattern", "x"], "--answer-pattern"),
        (
            vec!["--invariant", "--answer-pattern", "(unclosed"],
            "--answer-pattern",
        ),
    ] {
        let mut all = vec!["--id", "never-written", "--expect", "contains=x"];
        all.extend(args);
        let o = run(templatize(tmp.path(), &cap, &suite, &all));
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(
            o.stderr.contains(&format!("field `{field}`")),
            "{}",
            o.stderr
        );
    }
    assert!(
        !files_under(&suite)
            .iter()
            .any(|f| f.ends_with("never-written.yaml"))
    );
}

/// The shipped suite is what `templatize` makes of the shipped incidents today: a change to
/// templatize that would alter the probes must regenerate them in the same commit.
#[test]
fn shipped_probes_are_the_templatized_example_incidents() {
    let tmp = TempDir::new().expect("tempdir");
    let suite = tmp.path().join("suite");
    for inc in examples() {
        let rel = inc
            .strip_prefix(repo())
            .expect("under the repo")
            .to_path_buf();
        let mut c = cli(&repo());
        c.arg("templatize").arg(&rel).arg("--suite").arg(&suite);
        ok(c);
    }
    let shipped = files_under(&repo().join("probes"));
    assert_eq!(files_under(&suite), shipped, "the same probe files");
    for f in shipped {
        let want = std::fs::read_to_string(repo().join("probes").join(&f)).expect("shipped probe");
        let got = std::fs::read_to_string(suite.join(&f)).expect("templatized probe");
        assert_eq!(
            got,
            want,
            "{} differs from what templatize writes now",
            f.display()
        );
    }
}

/// Regression: `cliffprobe expand | head -1` exited 1 with "error: Broken pipe" because the
/// io error arrived wrapped in a serde_json error. A closed stdout is success.
#[test]
fn expand_into_a_closed_pipe_is_success() {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cliffprobe"))
        .current_dir(repo())
        .args(["expand", "--strategy", "pairwise"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is closed now; the expansion (megabytes) cannot fit in the pipe.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Read-only commands never create a store: a mistyped --store is an input error and leaves
/// no file behind.
#[test]
fn reading_commands_refuse_a_missing_store_without_creating_it() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("typo/cliffprobe.db");
    for cmd in [
        vec!["report"],
        vec!["export"],
        vec!["brittleness"],
        vec!["tiers"],
        vec!["trend"],
        vec!["promote", "--dry-run"],
    ] {
        let mut c = cli(tmp.path());
        c.args(&cmd).arg("--store").arg(&missing);
        let o = run(c);
        assert_eq!(o.code, 2, "{cmd:?}: {}", o.stderr);
        assert!(o.stderr.contains("no store at"), "{cmd:?}: {}", o.stderr);
    }
    assert!(!tmp.path().join("typo").exists(), "nothing was created");
}

/// Path typos are input errors (exit 2) with the cause said once; a --config that names a
/// missing file is refused instead of silently using the defaults.
#[test]
fn path_typos_are_input_errors() {
    let tmp = TempDir::new().unwrap();
    let o = run(templatize(
        tmp.path(),
        Path::new("incidnet.yaml"),
        &tmp.path().join("suite"),
        &[],
    ));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(
        o.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("incidnet.yaml"), "{}", o.stderr);

    let mut c = cli(tmp.path());
    c.args(["--config", "cliffprobe.tmol", "validate"]);
    let o = run(c);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("field `--config`: no configuration file at cliffprobe.tmol"),
        "{}",
        o.stderr
    );
}
