//! Terminal safety: text from models and incidents is shown, never obeyed.

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
