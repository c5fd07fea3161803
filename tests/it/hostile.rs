//! Hostile content, path safety and template safety, through the real `cliffprobe` binary.
//!
//! - Model answers holding terminal escapes (CSI colours, OSC window titles), `<script>`,
//!   `]]>`, NUL and other control characters are stored and exported exactly (JSONL and CSV
//!   parse), and every command that prints model or incident text prints it sanitised.
//! - Ids and capability names never write outside the suite folder.
//! - User axis templates cannot include files, read the environment, loop or recurse without
//!   bound: each gets a clear error naming the file, fast, without a panic.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, openai_completion, openai_error};
use project::{Outcome, Project, model};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "hostile-key";
const ORDER_STATUS: &str = "order-status-table.yaml";
/// Every kind of hostile content at once; it fails the probe's checks ("has shipped").
const HOSTILE: &str = "\u{1b}[31mRED\u{1b}[0m \u{1b}]0;pwned-title\u{7} <script>alert('x')</script> ]]> \
                       a\u{0}nul \u{8}\u{8}back \u{7}bell \u{9b}31m c1 \r\rcr \u{202e}rtl: your tent has shipped.";
const GOOD: &str = "Your tent (A-10442) is delayed until 9 October.";

/// No escape or control character that could act on a terminal (newline and tab are fine).
#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for (i, c) in text.char_indices() {
        assert!(
            !(c.is_control() && c != '\n' && c != '\t'),
            "{what}: control character {c:?} at byte {i}:\n{}",
            text.escape_debug()
        );
    }
}

#[track_caller]
fn assert_outcome_clean(what: &str, o: &Outcome) {
    assert_clean(&format!("{what} stdout"), &o.stdout);
    assert_clean(&format!("{what} stderr"), &o.stderr);
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
}

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", KEY)]
}

#[test]
fn hostile_model_output_is_stored_exactly_and_shown_sanitised() {
    // The canonical variant passes; every other variant gets the hostile answer, so the
    // brittleness analysis and promotion have failures to show.
    let canonical: Arc<Mutex<Option<Value>>> = Arc::default();
    let known = canonical.clone();
    let server = TestServer::start(move |req, _| {
        let messages = http_server::neutral_messages(&req.json()["messages"]);
        let text = if known.lock().unwrap().as_ref() == Some(&messages) {
            GOOD
        } else {
            HOSTILE
        };
        Reply::json(200, openai_completion("gpt", text))
    });
    let p = Project::new(&model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "timeout = 5",
    ));
    p.templatize(ORDER_STATUS);
    let args = ["--strategy", "one-at-a-time", "--axes", "format"];
    let expanded = p
        .run(
            &["expand", "--strategy", "one-at-a-time", "--axes", "format"],
            &[],
        )
        .success();
    for line in expanded.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["canonical"] == true
            || v["axes"]
                .as_object()
                .is_some_and(|a| a.values().all(|x| x == "original"))
        {
            *canonical.lock().unwrap() = Some(v["request"]["messages"].clone());
        }
    }
    assert!(canonical.lock().unwrap().is_some(), "{}", expanded.stdout);

    // Without -q, so the progress lines are checked too.
    let mut all = vec!["sweep"];
    all.extend_from_slice(&args);
    let sweep = p.run(&all, &env()).success();
    assert_outcome_clean("sweep", &sweep);

    // Stored and exported exactly.
    let rows = p.export(None);
    assert_eq!(rows.len(), 9);
    let hostile_rows: Vec<&Value> = rows.iter().filter(|r| r["output"] == HOSTILE).collect();
    assert_eq!(hostile_rows.len(), 8, "{rows:#?}");
    assert!(hostile_rows.iter().all(|r| r["status"] == "fail"));
    assert_eq!(rows.iter().filter(|r| r["status"] == "pass").count(), 1);
    let csv = p.run(&["export", "--format", "csv"], &[]).success().stdout;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = header.iter().position(|h| h == "output").unwrap();
    let outputs: Vec<String> = reader
        .records()
        .map(|r| r.expect("CSV parses")[col].to_string())
        .collect();
    assert_eq!(outputs.len(), 9);
    assert_eq!(outputs.iter().filter(|o| *o == HOSTILE).count(), 8);

    // Every command that shows model text shows it sanitised.
    for (what, args) in [
        ("brittleness", vec!["brittleness"]),
        ("report text", vec!["report", "--format", "text"]),
        ("report markdown", vec!["report", "--format", "markdown"]),
        ("promote --dry-run", vec!["promote", "--dry-run"]),
    ] {
        let o = p.run(&args, &[]);
        assert!(o.code.is_some_and(|c| c <= 1), "{what}: {o:?}");
        assert_outcome_clean(what, &o);
    }
    // The HTML report shows the script, never runs it.
    let html = p.run(&["report", "--format", "html"], &[]);
    assert!(html.code.is_some_and(|c| c <= 1), "{html:?}");
    assert!(
        !html.stdout.contains("<script>alert"),
        "an unescaped model <script> in the HTML report"
    );
    // JUnit XML stays well-formed: it parses, and holds no character XML 1.0 forbids.
    let junit = p.run(&["report", "--format", "junit"], &[]);
    assert!(junit.code.is_some_and(|c| c <= 1), "{junit:?}");
    let mut xml = quick_xml::Reader::from_str(&junit.stdout);
    loop {
        match xml.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("JUnit XML does not parse ({e}):\n{}", junit.stdout),
        }
    }
    for c in junit.stdout.chars() {
        assert!(
            c >= '\u{20}' || matches!(c, '\n' | '\t' | '\r'),
            "JUnit XML holds {c:?}, which XML 1.0 forbids"
        );
    }

    // Promotion writes the hostile excerpts into the probe file, which still loads, and
    // `cases` shows them sanitised.
    let promote = p.run(&["promote"], &[]).success();
    assert_outcome_clean("promote", &promote);
    let validate = p.run(&["validate"], &[]).success();
    assert_outcome_clean("validate", &validate);
    let probe_file = p
        .files()
        .into_iter()
        .find(|(f, _)| f.starts_with(p.root().join("probes")))
        .unwrap();
    let probe = cliffprobe::probe::Probe::load(&probe_file.0).unwrap();
    assert!(!probe.cases.is_empty(), "failing variants were promoted");
    let cases = p.run(&["cases", &probe.id], &[]).success();
    assert_outcome_clean("cases", &cases);
    assert!(
        cases.stdout.contains("RED"),
        "the text is shown, minus the escapes: {}",
        cases.stdout
    );
}

#[test]
fn hostile_error_messages_are_sanitised() {
    // Every answer is a permanent error whose message holds escapes: the sweep's closing
    // "first reason" line and the export carry it, sanitised where printed.
    let server =
        TestServer::start(|_, _| Reply::json(400, openai_error(HOSTILE, "invalid_request_error")));
    let p = Project::new(&model(
        "gpt",
        "openai",
        &format!("{}/v1", server.url()),
        "timeout = 5\nmax_retries = 0",
    ));
    p.templatize(ORDER_STATUS);
    let out = p
        .run(
            &["sweep", "--strategy", "one-at-a-time", "--axes", "format"],
            &env(),
        )
        .exits(1);
    assert!(out.stderr.contains("first reason"), "{}", out.stderr);
    assert!(out.stderr.contains("RED"), "{}", out.stderr);
    assert_outcome_clean("sweep (all errors)", &out);
    for r in p.export(None) {
        assert_eq!(r["status"], "error");
        assert!(r["error"].as_str().unwrap().contains("pwned-title"), "{r}");
    }
}

#[test]
fn hostile_incident_text_is_shown_sanitised() {
    let p = Project::new("");
    let text = std::fs::read_to_string(format!("{}/{ORDER_STATUS}", project::INCIDENTS)).unwrap();
    let text = text.replacen(
        "capability: reading a status from a tool's table output",
        "capability: \"\\e]0;pwned\\a\\e[2Jtable \\0 reading\"\ntitle2: x",
        1,
    );
    let text = text.replace("title2: x\n", "");
    p.write("incident.yaml", &text);
    let o = p.run(&["templatize", "incident.yaml", "--suite", "probes"], &[]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_outcome_clean("templatize", &o);
    let o = p.run(&["validate"], &[]).success();
    assert_outcome_clean("validate", &o);
}

/// Every file under the project, relative.
fn tree(p: &Project) -> BTreeSet<PathBuf> {
    p.files()
        .into_iter()
        .map(|(f, _)| f.strip_prefix(p.root()).unwrap().to_path_buf())
        .collect()
}

#[test]
fn ids_and_capabilities_never_escape_the_suite() {
    let p = Project::new("");
    // The suite sits two levels down, so `../../` would land inside the project, visibly.
    let suite = "deep/er/probes";
    std::fs::create_dir_all(p.root().join(suite)).unwrap();
    let incident = format!("{}/{ORDER_STATUS}", project::INCIDENTS);
    let before = tree(&p);
    let abs = p.root().join("abs-target");
    let abs = abs.to_str().unwrap();
    for id in [
        "../../x",
        "../../../x",
        abs,
        "a/b",
        "..",
        ".",
        "x\\..\\y",
        "-rf",
        "",
    ] {
        let o = p.run(
            &["templatize", &incident, "--suite", suite, "--id", id],
            &[],
        );
        assert_ne!(o.code, Some(0), "--id {id:?} was accepted: {o:?}");
        assert!(!o.stderr.contains("panicked"), "{o:?}");
        assert_outcome_clean("templatize --id", &o);
        assert_eq!(tree(&p), before, "--id {id:?} wrote a file");
    }
    let mut written = BTreeSet::new();
    for (i, cap) in [
        "../../../etc",
        "../../..",
        "/etc/passwd",
        "a/../../b",
        "C:\\Windows\\System32",
        "\u{202e}gnp.exe",
        "ｆｕｌｌｗｉｄｔｈ／ｓｌａｓｈ",
        "über/../../ﬁ",
        "\u{1b}[31m\u{7}",
        "..",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("cap-{i}");
        let o = p.run(
            &[
                "templatize",
                &incident,
                "--suite",
                suite,
                "--id",
                &id,
                "--capability",
                cap,
            ],
            &[],
        );
        assert!(!o.stderr.contains("panicked"), "{o:?}");
        assert_outcome_clean("templatize --capability", &o);
        if o.code == Some(0) {
            written.insert(id);
        }
    }
    assert!(!written.is_empty());
    let root = p.root().canonicalize().unwrap();
    let suite_dir = root.join(suite);
    for f in tree(&p).difference(&before) {
        let full = root.join(f).canonicalize().unwrap();
        assert!(
            full.starts_with(&suite_dir),
            "{} is outside the suite",
            full.display()
        );
        // SUITE/<capability>/<id>.yaml, one level down, a plain ASCII folder name.
        let rel = full.strip_prefix(&suite_dir).unwrap();
        assert_eq!(rel.components().count(), 2, "{}", rel.display());
        let folder = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        assert!(
            !folder.is_empty()
                && folder != ".."
                && folder
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "folder {folder:?}"
        );
    }
    assert_eq!(tree(&p).len() - before.len(), written.len());
    assert!(!p.root().join("deep/x.yaml").exists() && !p.root().join("x.yaml").exists());

    // An incident whose own id is a path is refused or reduced to a safe name.
    let text = std::fs::read_to_string(&incident).unwrap();
    p.write("evil.yaml", &format!("id: ../../../../tmp/evil\n{text}"));
    let before = tree(&p);
    let o = p.run(&["templatize", "evil.yaml", "--suite", suite], &[]);
    assert!(!o.stderr.contains("panicked"), "{o:?}");
    for f in tree(&p).difference(&before) {
        let full = root.join(f).canonicalize().unwrap();
        assert!(
            full.starts_with(&suite_dir),
            "{} is outside the suite",
            full.display()
        );
    }
}

/// A persona library whose one value has this template.
fn persona_library(template: &str) -> String {
    format!(
        "axis: persona\nvalues:\n  - name: hostile\n    description: x\n    template: {}\n",
        serde_json::to_string(template).unwrap()
    )
}

#[test]
fn user_axis_templates_are_sandboxed() {
    let p = Project::new("");
    p.templatize(ORDER_STATUS);
    p.run(&["validate"], &[]).success();
    let cases = [
        (
            "include a file",
            "{% include \"/etc/passwd\" %}{{ question }}",
        ),
        (
            "import a file",
            "{% import \"/etc/passwd\" as x %}{{ question }}",
        ),
        (
            "extends a file",
            "{% extends \"/etc/hostname\" %}{{ question }}",
        ),
        (
            "a huge range",
            "{% for i in range(10**9) %}x{% endfor %}{{ question }}",
        ),
        ("a huge range, printed", "{{ range(10**9) }}{{ question }}"),
        (
            "nested loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ question }}{% endfor %}{% endfor %}",
        ),
        (
            "recursive macro",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}{{ question }}",
        ),
        ("environment variable", "{{ HOME }}{{ question }}"),
        ("env object", "{{ env.HOME }}{{ question }}"),
        ("a string a billion long", "{{ question * 1000000000 }}"),
    ];
    let doubling = format!(
        "{{% set a = question * 1000 %}}{}{{{{ question }}}}",
        "{% set a = a ~ a %}".repeat(22)
    );
    let cases = cases.into_iter().map(|(w, t)| (w, t.to_string())).chain([
        ("a string doubled 22 times", doubling),
        (
            "a builtin filter that pads",
            "{{ question | center(1000000000) }}".to_string(),
        ),
        (
            "operators",
            "{{ (question * 2000000) ~ (question * 2000000) }}".to_string(),
        ),
    ]);
    for (what, template) in cases {
        let template = template.as_str();
        p.write("templates/persona.yaml", &persona_library(template));
        let started = Instant::now();
        let o = p.run(
            &["expand", "--strategy", "one-at-a-time", "--axes", "persona"],
            &[],
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        assert!(!o.stderr.contains("panicked"), "{what}: {o:?}");
        assert_eq!(o.code, Some(2), "{what}: not refused: {o:?}");
        assert!(
            o.stderr.contains("templates/persona.yaml"),
            "{what}: the error names the file: {}",
            o.stderr
        );
        assert!(!o.stdout.contains("root:"), "{what}: read a file");
        assert_outcome_clean(what, &o);
    }
    // Filters stay available.
    p.write(
        "templates/persona.yaml",
        &persona_library("Quick one: {{ question | lower_first | typos(0.1) }}"),
    );
    p.run(
        &["expand", "--strategy", "one-at-a-time", "--axes", "persona"],
        &[],
    )
    .success();
}
