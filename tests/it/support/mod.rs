//! Fixtures shared by the integration tests: a local HTTP server with scripted replies, and a
//! throwaway cliffprobe project that runs the real binary.

#![allow(dead_code)]

pub mod http_server;
pub mod postgres;
pub mod project;
