//! The `view` command: serve the local web viewer, or write a run's pages as a static bundle.
//!
//! The server binds 127.0.0.1 unless `--host` names another address (stored outputs can be
//! sensitive, so that prints a warning), on `--port` (0: any free port), prints its URL and
//! opens nothing by itself. It runs until Ctrl-C.

use anyhow::Result;
use cliffprobe::error::Error;
use cliffprobe::project::Project;
use cliffprobe::view::{Site, ViewError, bundle};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `view` options.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// The store (path or sqlite:// URL).
    #[arg(long)]
    pub store: Option<String>,
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8620)]
    pub port: u16,
    /// Address to listen on. Anything but a loopback address exposes the stored prompts and
    /// outputs to the network, and prints a warning.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// Write the pages of one run as static files into DIR (a new or empty folder) instead of
    /// serving them.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// The run to bundle (default: the latest run). Only with --bundle.
    #[arg(long, requires = "bundle")]
    pub run: Option<String>,
    /// At most this many case pages in a bundle (failing cases first, then errors).
    #[arg(long, value_name = "N", default_value_t = 2000, requires = "bundle")]
    pub bundle_cases: usize,
}

fn store_file(project: &Project, option: Option<&str>) -> Result<PathBuf> {
    let url = option
        .map(str::to_string)
        .unwrap_or_else(|| project.store_url());
    if url.contains("://") && !url.starts_with("sqlite://") {
        // A PostgreSQL store (or an unset `store_env`): the store checks and opens it.
        return Ok(PathBuf::from(url));
    }
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(&url);
    if !Path::new(file).is_file() {
        return Err(Error::field(
            "<command line>",
            "--store",
            format!(
                "no store at {file}: nothing has been swept with it yet (run `cliffprobe sweep` first, or pass --store PATH)"
            ),
        )
        .into());
    }
    Ok(PathBuf::from(file))
}

fn view_error(e: ViewError) -> anyhow::Error {
    match e {
        ViewError::BadRequest(m) => Error::field("<command line>", "--bundle", m).into(),
        ViewError::NotFound(m) => Error::field("<command line>", "--run", m).into(),
        ViewError::Internal(m) => anyhow::anyhow!(m),
    }
}

/// The URL to print for a listener bound to `bound`: an unspecified address (`0.0.0.0`, `::`)
/// cannot be browsed to, so the URL names the loopback address of its family.
fn printed_url(bound: SocketAddr) -> String {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            format!("http://{}:{}/", Ipv4Addr::LOCALHOST, bound.port())
        }
        IpAddr::V4(ip) => format!("http://{ip}:{}/", bound.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            format!("http://[{}]:{}/", Ipv6Addr::LOCALHOST, bound.port())
        }
        IpAddr::V6(ip) => format!("http://[{ip}]:{}/", bound.port()),
    }
}

/// Runs `cliffprobe view`.
pub fn view_cmd(project: Project, a: &ViewArgs) -> Result<ExitCode> {
    let path = store_file(&project, a.store.as_deref())?;
    let site = Site::open(project, path)?;
    if let Some(dir) = &a.bundle {
        let run = {
            let store =
                cliffprobe::store::Store::open_read_only_url(&site.store_path().to_string_lossy())?;
            store.resolve_run(a.run.as_deref())?
        };
        let s = bundle::write_bundle(&site, &run, dir, a.bundle_cases).map_err(view_error)?;
        println!(
            "wrote {} files for run {} into {} ({} case pages{}); open {}",
            s.files,
            s.run,
            dir.display(),
            s.cases,
            if s.cases_left_out > 0 {
                format!(
                    ", {} more failing or erroring cases left out: raise --bundle-cases",
                    s.cases_left_out
                )
            } else {
                String::new()
            },
            dir.join("index.html").display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let site = Arc::new(site);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::field(
                "<command line>",
                "--port",
                format!("cannot listen on {addr}: {e}"),
            )
        })?;
        let bound = listener.local_addr()?;
        if !a.host.is_loopback() {
            eprintln!(
                "warning: listening on {} — every stored prompt and model output is readable by anyone who can reach this address",
                bound
            );
        }
        let url = printed_url(bound);
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "cliffprobe view: {url}  (read-only; Ctrl-C to stop)")?;
            out.flush()?;
        }
        site.warm();
        cliffprobe::view::server::serve(listener, site).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// An IP address, or `localhost` (the loopback address), for `--host`. Other host names are
/// refused: the viewer binds one address and says which, so it never guesses what a name
/// resolves to.
fn parse_host(s: &str) -> std::result::Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse().map_err(|_| {
        format!("expected an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got {s:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_takes_addresses_and_localhost_only() {
        assert_eq!(parse_host("localhost"), Ok(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(parse_host("::1"), Ok("::1".parse().unwrap()));
        assert!(parse_host("0.0.0.0").unwrap().is_unspecified());
        assert!(parse_host("db.internal").unwrap_err().contains("localhost"));
    }

    #[test]
    fn the_printed_url_can_be_browsed_to() {
        let at = |s: &str| printed_url(s.parse().unwrap());
        assert_eq!(at("127.0.0.1:8620"), "http://127.0.0.1:8620/");
        assert_eq!(at("0.0.0.0:8620"), "http://127.0.0.1:8620/");
        assert_eq!(at("[::]:8620"), "http://[::1]:8620/");
        assert_eq!(at("[::1]:8620"), "http://[::1]:8620/");
        assert_eq!(at("10.1.2.3:80"), "http://10.1.2.3:80/");
    }
}
