//! `cliffprobe.toml`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("cliffprobe.toml");
    if let Err(e) = cliffprobe::config::Config::parse(path, &text) {
        assert!(e.to_string().contains("cliffprobe.toml"), "{e}");
    }
});
