//! Property tests for every input parser: arbitrary text and mutations of valid inputs never
//! panic, and every error names the file. Also the limits: 10,000-deep nesting and a 40 MB
//! file get a clear error. (The `fuzz/` folder has cargo-fuzz targets for the same parsers.)

use cliffprobe::axes::AxisLibrary;
use cliffprobe::config::Config;
use cliffprobe::incident::Incident;
use cliffprobe::probe::Probe;
use cliffprobe::tool_output;
use proptest::prelude::*;
use std::path::Path;

const NAME: &str = "fuzz-input-file.yaml";

fn incidents() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/incidents");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    // Captured OpenAI and Anthropic requests (with responses), and a JSON native record.
    v.push(r#"{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Status of A-1?"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#.into());
    v.push(r#"{"request":{"model":"claude-x","system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Status of A-1?"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}]},"response":{"type":"message","content":[{"type":"text","text":"shipped"}],"stop_reason":"end_turn"}}"#.into());
    v.push(r#"{"conversation":[{"role":"user","content":"Status of A-1?"}],"expected":[{"contains":"delayed"}]}"#.into());
    v
}

fn probe_text() -> String {
    let inc = Incident::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/incidents/order-status-table.yaml"
    )))
    .unwrap();
    let t = cliffprobe::templatize::templatize(
        &inc,
        Path::new("order-status-table.yaml"),
        &Default::default(),
    )
    .unwrap();
    t.probe.to_yaml()
}

const CONFIG: &str = concat!(
    "suite = \"probes\"\nstore = \".cliffprobe/cliffprobe.db\"\n[sweep]\nseed = 7\nrepeats = 2\n",
    "[models.gpt]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"gpt-2024-01-01\"\n",
    "api_key_env = \"K\"\ntimeout = 0.5\n[floors]\nhard = 0.5\n"
);

/// Byte-level mutations of a valid input: flip, delete, duplicate or insert at a position.
fn mutate(text: &str, ops: &[(u8, usize, u8)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(op, pos, byte) in ops {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let i = pos % b.len();
        match op % 5 {
            0 => b[i] = byte,
            1 => {
                b.remove(i);
            }
            2 => {
                let end = (i + 1 + byte as usize).min(b.len());
                let chunk = b[i..end].to_vec();
                b.splice(i..i, chunk);
            }
            3 => b.insert(i, byte),
            _ => b.truncate(i),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[track_caller]
fn names_file<T>(r: cliffprobe::Result<T>) {
    if let Err(e) = r {
        let msg = e.to_string();
        assert!(
            msg.contains(NAME),
            "the error does not name the file: {msg}"
        );
    }
}

fn all_parsers(text: &str) {
    let path = Path::new(NAME);
    names_file(Incident::parse(path, text));
    names_file(Probe::parse(path, text));
    names_file(Config::parse(path, text));
    let _ = tool_output::parse_structured(text);
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        all_parsers(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_incidents_never_panic(
        which in 0usize..64,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let all = incidents();
        let text = mutate(&all[which % all.len()], &ops);
        names_file(Incident::parse(Path::new(NAME), &text));
        let _ = tool_output::parse_structured(&text);
    }

    #[test]
    fn mutated_probes_never_panic(
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let text = mutate(&probe_text(), &ops);
        names_file(Probe::parse(Path::new(NAME), &text));
    }

    #[test]
    fn mutated_configs_never_panic(
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
    ) {
        names_file(Config::parse(Path::new(NAME), &mutate(CONFIG, &ops)));
    }

    #[test]
    fn mutated_tool_outputs_never_panic(
        format in 0usize..8,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let samples = [
            "order_id,status\nA-1,shipped\nA-2,delayed\n",
            r#"[{"order_id":"A-1","status":"shipped"},{"order_id":"A-2","status":"delayed"}]"#,
            "<orders><order><id>A-1</id><status>shipped</status></order></orders>",
            "| id | status |\n|---|---|\n| A-1 | shipped |\n",
            "- id: A-1\n  status: shipped\n- id: A-2\n  status: delayed\n",
            "id\tstatus\nA-1\tshipped\n",
            r#"{"orders":[{"id":"A-1"},{"id":"A-2"}]}"#,
            "id=A-1 status=shipped\nid=A-2 status=delayed\n",
        ];
        let text = mutate(samples[format], &ops);
        if let Some((fmt, recs)) = tool_output::parse_structured(&text) {
            // Whatever was parsed renders in every format without panicking.
            for f in tool_output::FORMATS {
                let _ = recs.render(f);
            }
            let _ = fmt;
        }
    }

    #[test]
    fn mutated_axis_libraries_never_panic(
        file in 0usize..4,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
    ) {
        let (name, text) = AxisLibrary::default_files()[file];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), mutate(text, &ops)).unwrap();
        if let Err(e) = AxisLibrary::load(dir.path()) {
            let msg = e.to_string();
            prop_assert!(msg.contains(name), "the error does not name {name}: {msg}");
        }
    }
}

#[test]
fn deep_nesting_is_a_clear_error() {
    let path = Path::new(NAME);
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!(
        "{{\"messages\": {}{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let deep_yaml = format!("conversation: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    for text in [&deep_json, &deep_obj, &deep_yaml] {
        let e = Incident::parse(path, text).unwrap_err().to_string();
        assert!(e.contains(NAME) && e.contains("nested"), "{e}");
        let e = Probe::parse(path, text).unwrap_err().to_string();
        assert!(e.contains(NAME), "{e}");
        let _ = tool_output::parse_structured(text);
    }
    let deep_toml = format!("x = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = Config::parse(path, &deep_toml).unwrap_err().to_string();
    assert!(e.contains(NAME), "{e}");
}

#[test]
fn huge_files_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    std::fs::write(&path, line.repeat((40 << 20) / line.len() + 1)).unwrap();
    for e in [
        Incident::load(&path).unwrap_err().to_string(),
        Probe::load(&path).unwrap_err().to_string(),
    ] {
        assert!(e.contains("huge.yaml") && e.contains("MB"), "{e}");
    }
}
