//! Wording and locating YAML and template syntax errors.

use crate::diagnostic::Position;

/// How to fix a YAML syntax error. A backslash inside double quotes starts a YAML escape, and
/// the ones regular expressions use (`\s`, `\d`, `\w`, `\.`) are not YAML escapes: that is
/// nearly always a pattern that wants single quotes, not an indentation problem.
pub(super) fn yaml_help(text: &str, at: Position, message: &str) -> String {
    let line = text.lines().nth(at.line.saturating_sub(1) as usize).unwrap_or_default();
    if message.contains("escape") || (line.contains('"') && line.contains('\\')) {
        let quoted = line.split('"').nth(1).unwrap_or_default().replace('\'', "''");
        return format!(
            "inside double quotes YAML reads a backslash as the start of an escape; write patterns in single quotes, where it stays a backslash: '{quoted}'"
        );
    }
    "check indentation and that every `[`, `{` and quote is closed".to_owned()
}

/// minijinja's message without its own location suffix.
pub(super) fn error_detail(error: &minijinja::Error) -> String {
    let detail = error.detail().map(str::to_owned).unwrap_or_else(|| error.kind().to_string());
    format!("{} ({detail})", error.kind())
}

pub(super) fn template_error_position(error: &minijinja::Error, source: &str) -> Position {
    let line = error.line().unwrap_or(0) as u32;
    let column = error
        .range()
        .and_then(|range| {
            let before = source.get(..range.start)?;
            let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
            Some(before[line_start..].chars().count() as u32 + 1)
        })
        .unwrap_or(1);
    Position { line, column }
}
