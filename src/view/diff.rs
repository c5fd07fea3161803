//! A line diff of two answers, for the viewer's comparison of two models or runs.
//!
//! Longest common subsequence over lines after the common head and tail are cut off; the
//! table it needs is bounded ([`MAX_CELLS`]): two answers too different and too long for it
//! are shown as the one block removed and the other added, which is still a correct diff.

/// The largest LCS table (lines × lines) computed; beyond it the middle is one change.
pub const MAX_CELLS: usize = 4_000_000;

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    /// `same`, `del` (only in A) or `add` (only in B).
    pub op: &'static str,
    /// The line, without its newline.
    pub text: String,
}

/// The line diff from `a` to `b`.
pub fn diff_lines(a: &str, b: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let line = |op, t: &str| DiffLine {
        op,
        text: t.to_string(),
    };
    let mut out: Vec<DiffLine> = a[..head].iter().map(|t| line("same", t)).collect();
    if am.len().saturating_mul(bm.len()) > MAX_CELLS {
        out.extend(am.iter().map(|t| line("del", t)));
        out.extend(bm.iter().map(|t| line("add", t)));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() && j < bm.len() {
            if am[i] == bm[j] {
                out.push(line("same", am[i]));
                i += 1;
                j += 1;
            } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
                out.push(line("del", am[i]));
                i += 1;
            } else {
                out.push(line("add", bm[j]));
                j += 1;
            }
        }
        out.extend(am[i..].iter().map(|t| line("del", t)));
        out.extend(bm[j..].iter().map(|t| line("add", t)));
    }
    out.extend(a[a.len() - tail..].iter().map(|t| line("same", t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(d: &[DiffLine]) -> String {
        d.iter()
            .map(|l| format!("{}{}", &l.op[..1], l.text))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn equal_texts_are_all_same() {
        assert_eq!(ops(&diff_lines("a\nb", "a\nb")), "sa sb");
    }

    #[test]
    fn a_changed_line_is_removed_and_added() {
        assert_eq!(ops(&diff_lines("a\nb\nc", "a\nx\nc")), "sa db ax sc");
        assert_eq!(ops(&diff_lines("", "new")), "anew");
        assert_eq!(ops(&diff_lines("old", "")), "dold");
    }

    #[test]
    fn the_diff_rebuilds_both_sides() {
        let (a, b) = ("1\n2\n3\n4\n5\n6", "0\n2\n3\nx\n5\n6\n7");
        let d = diff_lines(a, b);
        let side = |skip: &str| {
            d.iter()
                .filter(|l| l.op != skip)
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(side("add"), a);
        assert_eq!(side("del"), b);
    }
}
