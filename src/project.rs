//! The project a command works in: `cliffprobe.toml` (or the defaults), the folder its paths
//! are relative to, and where the suite, the axis library and the store are.
//!
//! The binary and the viewer both start from a [`Project`], so that a path in the config means
//! the same thing to every command.

use crate::axes::AxisLibrary;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::expand::Strategy;
use crate::probe;
use std::path::{Path, PathBuf};

/// The project context every command starts from: the config and where things live.
pub struct Project {
    /// The configuration (defaults when there is no file).
    pub config: Config,
    /// The config file, when there is one.
    pub config_path: Option<PathBuf>,
    /// The folder the config file is in (paths in it are relative to it).
    pub root: PathBuf,
}

impl Project {
    /// Loads `cliffprobe.toml` when present.
    pub fn load(path: &Path) -> Result<Project> {
        if path.exists() {
            let config = Config::load(path)?;
            let root = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok(Project {
                config,
                config_path: Some(path.to_path_buf()),
                root,
            })
        } else {
            Ok(Project {
                config: Config::default(),
                config_path: None,
                root: PathBuf::from("."),
            })
        }
    }

    /// The suite folder.
    pub fn suite(&self) -> PathBuf {
        self.rooted(
            self.config
                .suite
                .clone()
                .unwrap_or_else(|| PathBuf::from("probes")),
        )
    }

    /// The axis library: `templates/` when present, else the embedded defaults.
    pub fn library(&self) -> Result<AxisLibrary> {
        let dir = self.rooted(
            self.config
                .templates
                .clone()
                .unwrap_or_else(|| PathBuf::from("templates")),
        );
        Ok(if dir.is_dir() {
            AxisLibrary::load(&dir)?
        } else {
            AxisLibrary::embedded()
        })
    }

    /// The strategy: the option when given, else `[sweep] strategy`, else pairwise.
    pub fn strategy(&self, given: Option<Strategy>) -> Result<Strategy> {
        if let Some(s) = given {
            return Ok(s);
        }
        let configured = self.config.sweep.strategy.as_deref().unwrap_or("pairwise");
        configured.parse().map_err(|e: String| {
            Error::field(
                self.config_path.clone().unwrap_or_default(),
                "sweep.strategy",
                e,
            )
        })
    }

    /// A path from the config, relative to the config file's folder.
    pub fn rooted(&self, p: PathBuf) -> PathBuf {
        if self.root == Path::new(".") || p.is_absolute() {
            p
        } else {
            self.root.join(p)
        }
    }

    /// The store location: the variable named by `store_env` when set, else `store`, else the
    /// default file. A `store_env` variable that is unset becomes `env://NAME`, which the store
    /// refuses to open with a message naming the variable.
    pub fn store_url(&self) -> String {
        if let Some(var) = &self.config.store_env {
            return match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
                _ => format!("env://{var}"),
            };
        }
        match &self.config.store {
            Some(s) if s.contains("://") => s.clone(),
            Some(s) => self.rooted(PathBuf::from(s)).display().to_string(),
            None => self
                .rooted(PathBuf::from(".cliffprobe/cliffprobe.db"))
                .display()
                .to_string(),
        }
    }

    /// Opens the store named by a `--store` option, else the configured one.
    ///
    /// For the commands that read results: a SQLite store that does not exist is refused (exit
    /// 2) instead of being created empty, so a mistyped `--store` leaves no file behind.
    pub fn open_store(&self, option: Option<&str>) -> Result<crate::store::Store> {
        let url = option
            .map(str::to_string)
            .unwrap_or_else(|| self.store_url());
        let file = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(&url);
        if !file.contains("://") && !Path::new(file).exists() {
            return Err(Error::field(
                "<command line>",
                "--store",
                format!(
                    "no store at {file}: nothing has been swept with it yet (run `cliffprobe sweep` first, or pass --store PATH)"
                ),
            ));
        }
        crate::store::Store::open_url(&url)
    }

    /// Probe files under `paths`, or the whole suite.
    pub fn probe_files(&self, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
        if paths.is_empty() && !self.suite().exists() {
            return Err(Error::Refused(format!(
                "no suite at {}: run `cliffprobe init` for a new project, or `cliffprobe templatize INCIDENT` to make the first probe family",
                self.suite().display()
            )));
        }
        let paths = if paths.is_empty() {
            vec![self.suite()]
        } else {
            paths.to_vec()
        };
        probe::discover(&paths)
    }
}
