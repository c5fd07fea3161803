//! `cliffprobe paraphrase` and `templatize --paraphrase-with`, through the real binary against
//! the scripted local HTTP server: paraphrases that drop an identifier or add a number are
//! rejected, the rest are frozen into the probe file, `expand` offers them as `llm-N`
//! phrasings (verbatim in their own voice, data never template code), other variant ids do not
//! move, a second run without `--force` and a failing endpoint leave the file untouched, and
//! `validate` points at a hand-edited paraphrase that lost its identifier.

use crate::support::http_server;
use crate::support::project;

use http_server::{Reply, TestServer, openai_completion, openai_error};
use project::{Project, model};
use serde_json::Value;
use std::collections::BTreeMap;

const PROBE: &str = "probes/reading-a-status-from-a-tool-s-table-output/order-status-table.yaml";
const QUESTION: &str = "Great, so what is the status of order A-10442?";

fn env() -> [(&'static str, &'static str); 1] {
    [("TEST_KEY", "test-key")]
}

/// The endpoint: in the neutral voice, two good paraphrases among one that drops the order id
/// and one that adds a number; in a persona's voice, one good (holding template syntax, which
/// must stay data) and one without the id, every time it is asked.
fn paraphraser() -> TestServer {
    TestServer::start(|req, _| {
        let system = req.json()["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let texts: Vec<&str> = if system.contains("<example>") {
            vec![
                "A-10442: status? {{ question }} {% raw %}",
                "Status of that order, tersely?",
            ]
        } else {
            vec![
                "Could you tell me where order A-10442 stands right now?",
                "What's the current state of order A-1044?",
                "Will order A-10442 arrive within 3 days?",
                "Order A-10442: what is its status?",
            ]
        };
        let reply = serde_json::to_string(&texts).unwrap();
        Reply::json(200, openai_completion("para-2024-01-01", &reply))
    })
}

fn project(server: &TestServer) -> Project {
    let p = Project::new(&model(
        "para",
        "openai",
        &format!("{}/v1", server.url()),
        "max_retries = 0",
    ));
    p.templatize("order-status-table.yaml");
    p
}

/// `expand` rows as (persona, phrasing) → (variant id, last user message).
fn expand(p: &Project, args: &[&str]) -> BTreeMap<(String, String), (String, String)> {
    let mut all = vec!["expand", PROBE];
    all.extend_from_slice(args);
    let out = p.run(&all, &[]).success();
    out.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let user = v["request"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string();
            (
                (
                    v["axes"]["persona"].as_str().unwrap().to_string(),
                    v["axes"]["phrasing"].as_str().unwrap().to_string(),
                ),
                (v["variant"].as_str().unwrap().to_string(), user),
            )
        })
        .collect()
}

fn key(persona: &str, phrasing: &str) -> (String, String) {
    (persona.to_string(), phrasing.to_string())
}

/// The `paraphrases:` section of a probe file, its date blanked.
fn section(text: &str) -> String {
    let start = text
        .find("\nparaphrases:\n")
        .expect("a paraphrases section")
        + 1;
    text[start..]
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("date: ") {
                "  date: <date>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn paraphrases_are_checked_frozen_and_expanded() {
    let server = paraphraser();
    let p = project(&server);
    let axes = [
        "--strategy",
        "full",
        "--axes",
        "persona=terse-expert|anxious-novice,phrasing",
    ];
    let before = expand(&p, &axes);

    let out = p
        .run(
            &[
                "paraphrase",
                PROBE,
                "--with",
                "para",
                "--paraphrases",
                "2",
                "--personas",
                "terse-expert",
            ],
            &env(),
        )
        .success();
    // Neutral voice: one call, 2 kept, the dropped id and the added number rejected.
    assert!(
        out.stdout.contains("original                  2 kept, 2 rejected (1 dropped `A-10442`, 1 added `3`, which the question does not hold) in 1 call"),
        "{}",
        out.stdout
    );
    // The persona: 1 kept, then re-asked twice for the missing one, in vain.
    assert!(
        out.stdout.contains("terse-expert              1 kept, 5 rejected (3 dropped `A-10442`, 2 a duplicate) in 3 calls"),
        "{}",
        out.stdout
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    // Voices are asked concurrently: find the requests by their prompts.
    let system = |r: &http_server::ReceivedRequest| {
        r.json()["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let neutral: Vec<_> = requests
        .iter()
        .filter(|r| !system(r).contains("<example>"))
        .collect();
    assert_eq!(neutral.len(), 1);
    let first = neutral[0].json();
    assert_eq!(first["temperature"], 0.7);
    assert_eq!(first["messages"][1]["content"], QUESTION);
    let sys = system(neutral[0]);
    assert!(sys.contains("«A-10442»") && sys.contains("Write exactly 2 different paraphrases"));
    // Re-asks ask for the missing one only, and list what was already written.
    let reasks: Vec<String> = requests
        .iter()
        .map(system)
        .filter(|s| s.contains("Write exactly 1 different"))
        .collect();
    assert_eq!(reasks.len(), 2);
    let reask = &reasks[0];
    assert!(
        reask.contains("Write exactly 1 different paraphrases"),
        "{reask}"
    );
    assert!(reask.contains("already written"), "{reask}");

    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    insta::assert_snapshot!("frozen_paraphrases_section", section(&text));
    p.run(&["validate"], &[]).success();

    // Expansion: llm-1 and llm-2 join the phrasing axis; the other ids do not move.
    let after = expand(&p, &axes);
    for (k, (id, user)) in &before {
        assert_eq!(&after[k], &(id.clone(), user.clone()), "{k:?} changed");
    }
    let llm: Vec<_> = after
        .keys()
        .filter(|(_, ph)| ph.starts_with("llm-"))
        .collect();
    assert_eq!(llm.len(), 6, "{llm:?}");
    // The neutral paraphrases, as frozen.
    assert_eq!(
        after[&key("original", "llm-1")].1,
        "Could you tell me where order A-10442 stands right now?"
    );
    assert_eq!(
        after[&key("original", "llm-2")].1,
        "Order A-10442: what is its status?"
    );
    // The persona's own paraphrase verbatim (no persona template on top), template syntax
    // literal.
    assert_eq!(
        after[&key("terse-expert", "llm-1")].1,
        "A-10442: status? {{ question }} {% raw %}"
    );
    // No second paraphrase of its own: the neutral one, in the persona's template.
    assert_eq!(
        after[&key("terse-expert", "llm-2")].1,
        "Order A-10442: what is its status? Just the answer, skip the explanation."
    );
    // A persona not asked: the neutral paraphrase in its template.
    let novice = &after[&key("anxious-novice", "llm-1")].1;
    assert!(
        novice.starts_with("Hi, sorry")
            && novice.contains("Could you tell me where order A-10442 stands right now?"),
        "{novice}"
    );

    // Again without --force: refused, nothing asked, nothing written.
    let out = p
        .run(&["paraphrase", PROBE, "--with", "para"], &env())
        .exits(2);
    assert!(
        out.stderr.contains("already has frozen paraphrases"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(server.requests().len(), 4);
    assert_eq!(std::fs::read_to_string(p.root().join(PROBE)).unwrap(), text);

    // A hand edit that loses the id: validate names the file, the line and the field.
    let edited = text.replacen(
        "Could you tell me where order A-10442 stands",
        "Could you tell me where order A-1 stands",
        1,
    );
    assert_ne!(edited, text);
    p.write(PROBE, &edited);
    let out = p.run(&["validate"], &[]).exits(2);
    let section_start = edited.lines().position(|l| l == "paraphrases:").unwrap();
    let line = section_start
        + edited
            .lines()
            .skip(section_start)
            .position(|l| l.trim() == "original:")
            .unwrap()
        + 1;
    assert!(
        out.stderr.contains(&format!(
            "order-status-table.yaml:{line}: field `paraphrases.personas.original[0]`: dropped `A-10442`"
        )),
        "{}",
        out.stderr
    );

    // An edited question makes the set stale until it is written again with --force.
    let edited = text.replacen(
        &format!("question: {QUESTION}"),
        "question: Great, so what is the status of order A-10442 today?",
        1,
    );
    assert_ne!(edited, text);
    p.write(PROBE, &edited);
    let out = p.run(&["validate"], &[]).exits(2);
    assert!(
        out.stderr
            .contains("field `paraphrases.question_digest`: the question changed"),
        "{}",
        out.stderr
    );
    p.run(
        &[
            "paraphrase",
            PROBE,
            "--with",
            "para",
            "--paraphrases",
            "1",
            "--personas",
            "",
            "--force",
        ],
        &env(),
    )
    .success();
    p.run(&["validate"], &[]).success();
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    assert!(text.contains("question_digest") && !text.contains("terse-expert:"));
}

#[test]
fn a_failing_endpoint_leaves_the_probe_untouched() {
    let server = TestServer::start(|_, _| {
        Reply::json(500, openai_error("the model is on fire", "server_error"))
    });
    let p = project(&server);
    let before = std::fs::read(p.root().join(PROBE)).unwrap();
    // An unknown model is bad input, refused before any call.
    let out = p
        .run(&["paraphrase", "probes", "--with", "nope"], &env())
        .exits(2);
    assert!(
        out.stderr
            .contains("no model `nope` is configured; configured: para"),
        "{}",
        out.stderr
    );
    assert_eq!(server.requests().len(), 0);

    let out = p
        .run(&["paraphrase", "probes", "--with", "para"], &env())
        .exits(1);
    assert!(
        out.stderr
            .contains("model `para` failed to paraphrase probe order-status-table (persona "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("500"), "{}", out.stderr);
    assert_eq!(std::fs::read(p.root().join(PROBE)).unwrap(), before);
    // (How many voices were asked before the first failure abandoned the rest depends on
    // scheduling: at least the one that failed.)
    assert!(!server.requests().is_empty());
}

#[test]
fn templatize_freezes_mock_paraphrases_offline() {
    let p = Project::new("[models.prod]\nprovider = \"mock\"\nmodel = \"mock-steady-1\"\n");
    let incident = format!("{}/order-status-table.yaml", project::INCIDENTS);
    let out = p
        .run(
            &[
                "templatize",
                &incident,
                "--suite",
                "probes",
                "--paraphrase-with",
                "prod",
                "--paraphrases",
                "2",
            ],
            &[],
        )
        .success();
    assert!(
        out.stdout
            .contains("paraphrases 13 voices from prod (phrasing llm-1 … llm-2)"),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(p.root().join(PROBE)).unwrap();
    assert!(text.contains("(mock paraphrase two) Great, so what is the status of order A-10442?"));
    let rows = expand(
        &p,
        &["--strategy", "one-at-a-time", "--axes", "phrasing=llm-2"],
    );
    assert_eq!(
        rows[&key("original", "llm-2")].1,
        "(mock paraphrase two) Great, so what is the status of order A-10442?"
    );
    // Suite-wide, `llm-N` is per probe: a probe without paraphrases skips it.
    p.templatize("invoice-arithmetic.yaml");
    let out = p
        .run(
            &[
                "expand",
                "--count",
                "--strategy",
                "one-at-a-time",
                "--axes",
                "phrasing=llm-2",
            ],
            &[],
        )
        .success();
    assert!(
        out.stdout.contains("order-status-table\t2\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("invoice-arithmetic\t1\n"),
        "{}",
        out.stdout
    );
    let out = p.run(&["expand", "--axes", "phrasing=bogus"], &[]).exits(2);
    assert!(
        out.stderr.contains("unknown phrasing value `bogus`"),
        "{}",
        out.stderr
    );
}
