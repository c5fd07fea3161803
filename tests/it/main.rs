//! The integration tests: one binary (so `tests/support` is compiled once and linked once) with
//! a module per area. Every test runs the real `cliffprobe` binary or the library against local
//! servers on loopback (`support::http_server`) in throwaway projects (`support::project`).

mod support;

mod adaptive;
mod architecture;
mod brittleness;
mod cli;
mod episode;
mod hostile;
mod judge_http;
mod kill_resume;
mod models_check;
mod paraphrase;
mod parsers_fuzz;
mod postgres;
mod properties;
mod provider_http;
mod real_servers;
mod replay;
mod report;
mod shard;
mod shrink;
mod soak;
mod sweep_http;
mod sweep_pressure;
mod tiers;
mod tools_axis;
mod view;
