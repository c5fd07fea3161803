//! Limits on user input, so no file can make cliffprobe allocate without bound or recurse
//! forever; each limit fails with a message naming the file and the limit.

use crate::error::{Error, Result};
use std::path::Path;

/// Largest incident, capture or probe file read.
pub const MAX_INPUT_BYTES: usize = 32 << 20;
/// Deepest nesting of brackets/braces accepted in JSON-like input.
pub const MAX_NESTING: usize = 128;
/// Most variants a single expansion may plan before `--yes` (or a sampling strategy) is asked for.
pub const MAX_VARIANTS_WITHOUT_YES: u64 = 1_000_000;

/// Refuses text nested deeper than [`MAX_NESTING`] (a cheap scan, before any parser recurses).
pub fn check_nesting(path: &Path, text: &str) -> Result<()> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let (line, _) = crate::error::line_col(text, i);
                    return Err(Error::Input {
                        location: crate::error::Location {
                            path: path.to_path_buf(),
                            line: Some(line),
                            ..Default::default()
                        },
                        message: format!("nested more than {MAX_NESTING} levels deep"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
