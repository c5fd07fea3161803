//! Terminal safety: text from models and incidents is shown, never obeyed; and the aligned
//! tables the commands print.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use std::io::IsTerminal;

/// Removes control characters and escape sequences (keeps newlines and tabs), so a model
/// answer cannot move the cursor, recolour the terminal or hide text.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI/OSC sequences: skip to their end.
                match chars.peek() {
                    Some('[') => {
                        chars.next();
                        for d in chars.by_ref() {
                            if ('@'..='~').contains(&d) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        chars.next();
                        while let Some(d) = chars.next() {
                            if d == '\u{7}' || (d == '\u{1b}' && chars.peek() == Some(&'\\')) {
                                chars.next_if_eq(&'\\');
                                break;
                            }
                        }
                    }
                    _ => {
                        chars.next();
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// An aligned table with `headers`, in the house style; plain (no colour or terminal width)
/// when stdout is not a terminal, so piped output is the same on every machine.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    if !std::io::stdout().is_terminal() {
        t.force_no_tty();
    }
    t.set_header(headers.iter().map(Cell::new).collect::<Vec<_>>());
    t
}

/// A right-aligned cell: the numbers of a [`table`].
pub fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_escapes() {
        assert_eq!(
            super::sanitize("a\u{1b}[31mred\u{1b}[0m\u{7}b\u{1b}]0;title\u{7}c\nd"),
            "aredbc\nd"
        );
    }
}
