//! Probe family files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("fuzz.yaml");
    if let Err(e) = cliffprobe::probe::Probe::parse(path, &text) {
        assert!(e.to_string().contains("fuzz.yaml"), "{e}");
    }
});
