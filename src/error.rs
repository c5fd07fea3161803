//! The library's error type.
//!
//! Errors about *user input* (incident files, probe files, `cliffprobe.toml`, command-line
//! values) carry the file, the line when known and the field, so the CLI can print a message
//! a person can act on and exit with status 2. Everything else is an environment problem
//! (I/O, the store) and exits with status 1.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a user's file a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file (or `<stdin>`, `<command line>`).
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The field, as a dotted path (`checks[2].numeric.value`), when known.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// A library error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is wrong; `message` says what was expected.
    #[error("{location}: {message}")]
    Input {
        /// Where.
        location: Location,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The PostgreSQL store failed. The store builds it (`From<postgres::Error>` in
    /// `store::engine`), as only the store knows which of the error's causes to show.
    #[error("store: {message}")]
    Postgres {
        /// The server's message when it sent one, else the error with its causes.
        message: String,
        /// The cause.
        #[source]
        source: postgres::Error,
    },
    /// A refusal to do something unsafe or unasked-for (overwrite, huge expansion…).
    #[error("{0}")]
    Refused(String),
    /// The store holds something this cliffprobe cannot read: an unknown value in a column, a
    /// damaged snapshot, a schema version it does not know. Not the user's input: the store
    /// is written by cliffprobe.
    #[error("{0}")]
    StoreData(String),
    /// The store cannot be opened, read or reached.
    #[error("{0}")]
    StoreOpen(String),
    /// A value could not be encoded (JSON, CSV).
    #[error("{0}")]
    Encode(String),
    /// A probe's template failed while rendering a variant (the probe validated, so this is
    /// a value the template cannot handle, such as a missing variable at render time).
    #[error("{0}")]
    Render(String),
    /// A model's answers could not be used for the job (no usable paraphrase after re-asks).
    #[error("{0}")]
    Model(String),
    /// A thread, task or async runtime of cliffprobe's own could not start, or stopped.
    #[error("{0}")]
    Runtime(String),
    /// An environment variable holds a value cliffprobe cannot use.
    #[error("{0}")]
    Environment(String),
    /// cliffprobe broke one of its own invariants: a bug to report.
    #[error("{0}")]
    Bug(String),
    /// Not an error for anyone: a walk stopped because whoever consumed its rows is gone.
    #[error("the consumer of a store walk is gone")]
    Abandoned,
    /// A sweep stopped before its end: the message says why, what was kept and how to resume.
    #[error("{0}")]
    SweepFailed(String),
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An input error in `path`.
    pub fn input(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Input {
            location: Location {
                path: path.as_ref().to_path_buf(),
                ..Default::default()
            },
            message: message.into(),
        }
    }

    /// An input error naming a field.
    pub fn field(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Input {
            location: Location {
                path: path.as_ref().to_path_buf(),
                field: Some(field.into()),
                ..Default::default()
            },
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// True for errors the user fixes by changing their input (exit status 2): bad input, a
    /// refusal, or a file that does not exist (a path typo).
    pub fn is_input(&self) -> bool {
        match self {
            Error::Input { .. } | Error::Refused(_) => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// Converts a YAML error from serde-saphyr, keeping its line and column.
    pub fn from_yaml(path: impl AsRef<Path>, err: &serde_saphyr::Error) -> Error {
        let text = err.to_string();
        let (line, column) = yaml_position(&text);
        Error::Input {
            location: Location {
                path: path.as_ref().to_path_buf(),
                line,
                column,
                field: None,
            },
            message: text
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .trim()
                .to_string()
                + &yaml_detail(&text),
        }
    }

    /// Converts a JSON error from serde_json, keeping its line and column.
    pub fn from_json(path: impl AsRef<Path>, err: &serde_json::Error) -> Error {
        Error::Input {
            location: Location {
                path: path.as_ref().to_path_buf(),
                line: Some(err.line()).filter(|l| *l > 0),
                column: Some(err.column()).filter(|c| *c > 0),
                field: None,
            },
            message: strip_json_position(&err.to_string()),
        }
    }
}

fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// serde-saphyr prints `... at line L, column C` or a snippet with `-->`; pull the numbers out.
fn yaml_position(text: &str) -> (Option<usize>, Option<usize>) {
    let re = regex::Regex::new(r"line (\d+),? column (\d+)|:(\d+):(\d+)").expect("static regex");
    if let Some(c) = re.captures(text) {
        let l = c.get(1).or(c.get(3)).and_then(|m| m.as_str().parse().ok());
        let col = c.get(2).or(c.get(4)).and_then(|m| m.as_str().parse().ok());
        return (l, col);
    }
    (None, None)
}

fn yaml_detail(text: &str) -> String {
    // Keep the snippet serde-saphyr draws under the message: it shows the offending line.
    let rest: Vec<&str> = text.lines().skip(1).collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!("\n{}", rest.join("\n"))
    }
}
