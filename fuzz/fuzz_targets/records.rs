//! Structured tool outputs (JSON, CSV, TSV, XML, YAML, Markdown tables, key=value), and
//! re-rendering whatever parsed in every format.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some((_, records)) = cliffprobe::tool_output::parse_structured(&text) {
        for f in cliffprobe::tool_output::FORMATS {
            let _ = records.render(f);
        }
    }
});
