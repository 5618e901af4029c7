//! A line diff with unified hunks (3 lines of context), for snapshot bodies of a few hundred
//! lines: a longest-common-subsequence table is small enough at that size.

/// One hunk: `@@ -a,b +c,d @@` and its lines (` `, `-`, `+` prefixed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hunk {
    pub header: String,
    pub lines: Vec<String>,
}

const CONTEXT: usize = 3;
/// Longer inputs are compared line by line in order, without alignment, to stay bounded.
const MAX_CELLS: usize = 16_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Removed(usize),
    Added(usize),
}

fn ops(old: &[&str], new: &[&str]) -> Vec<Op> {
    let (n, m) = (old.len(), new.len());
    if n.saturating_mul(m) > MAX_CELLS {
        let mut ops: Vec<Op> = old.iter().enumerate().map(|(i, _)| Op::Removed(i)).collect();
        ops.extend((0..m).map(Op::Added));
        return ops;
    }
    // lcs[i][j]: the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as unified diffs show them.
            ops.push(Op::Removed(i));
            i += 1;
        } else {
            ops.push(Op::Added(j));
            j += 1;
        }
    }
    ops
}

/// The hunks that turn `old` into `new`; empty when they are equal.
pub fn hunks(old: &str, new: &str) -> Vec<Hunk> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let ops = ops(&a, &b);
    let changed: Vec<usize> =
        ops.iter().enumerate().filter(|(_, op)| !matches!(op, Op::Same(..))).map(|(k, _)| k).collect();
    let mut hunks = Vec::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (mut old_start, mut new_start) = (None, None);
        let (mut old_count, mut new_count) = (0, 0);
        let mut lines = Vec::new();
        for op in &ops[start..end] {
            match *op {
                Op::Same(i, j) => {
                    old_start.get_or_insert(i);
                    new_start.get_or_insert(j);
                    old_count += 1;
                    new_count += 1;
                    lines.push(format!(" {}", a[i]));
                }
                Op::Removed(i) => {
                    old_start.get_or_insert(i);
                    old_count += 1;
                    lines.push(format!("-{}", a[i]));
                }
                Op::Added(j) => {
                    new_start.get_or_insert(j);
                    new_count += 1;
                    lines.push(format!("+{}", b[j]));
                }
            }
        }
        let header = format!(
            "@@ -{},{old_count} +{},{new_count} @@",
            old_start.map_or(0, |s| s + 1),
            new_start.map_or(0, |s| s + 1)
        );
        hunks.push(Hunk { header, lines });
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_line_is_one_hunk_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let got = hunks(old, new);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header, "@@ -2,7 +2,7 @@");
        assert_eq!(got[0].lines, [" b", " c", " d", "-e", "+E", " f", " g", " h"]);
        assert!(hunks(old, old).is_empty());
    }

    #[test]
    fn distant_changes_are_separate_hunks_and_additions_count() {
        let old: String = (0..30).map(|i| format!("{i}\n")).collect();
        let new: String = (0..30)
            .map(|i| match i {
                3 => "three\n".to_string(),
                25 => "25\nextra\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let got = hunks(&old, &new);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].lines.contains(&"+extra".to_string()));
    }
}
