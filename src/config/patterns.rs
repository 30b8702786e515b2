//! The stewards' `match:` patterns: compiled, or a located problem in plain words.
//!
//! Two traps get their own message. A pattern written in double quotes loses its backslashes
//! to YAML (`"\bkeeper\b"` holds two backspaces and never matches anything a user types), so a
//! pattern holding a control character is refused with the single-quoted spelling to write. And
//! a regex error points at the offending character (not the opening quote) and says what is
//! wrong without regex jargon.

use regex::Regex;
use regex_syntax::ast::ErrorKind;

use crate::diagnostic::{Code, Diagnostic, Position};

/// What every regex help ends with.
const PATTERN_HELP: &str = "in a pattern `\\b` marks the edge of a word and `(a|b)` means a or b; put `\\` before a bracket, `?`, `*`, `+` or `.` to match it as it is";

/// Compiles `pattern` (case-insensitive), written at `at` of `file`, whose YAML line is `line`.
pub fn compile(pattern: &str, file: &str, at: Position, line: &str) -> Result<Regex, Diagnostic> {
    if let Some(diagnostic) = yaml_escape_trap(pattern, file, at) {
        return Err(diagnostic);
    }
    crate::util::cached_regex(pattern, true).map_err(|error| {
        let (what, help, offset) = explain(pattern, &error);
        let at = match offset {
            Some(offset) => Position { line: at.line, column: column_of(line, at.column, offset) },
            None => at,
        };
        Diagnostic::new(Code::BadRegex, file, at, format!("the pattern `{pattern}` does not work: {what}"))
            .with_help(format!("{help}; {PATTERN_HELP}"))
    })
}

/// The escape YAML double quotes made of a backslash, and how it was written.
const CONTROL_ESCAPES: &[(char, &str, &str)] = &[
    ('\u{8}', "\\b", "a backspace"),
    ('\t', "\\t", "a tab"),
    ('\n', "\\n", "a line break"),
    ('\r', "\\r", "a carriage return"),
    ('\u{7}', "\\a", "a bell"),
    ('\u{b}', "\\v", "a vertical tab"),
    ('\u{c}', "\\f", "a form feed"),
    ('\u{1b}', "\\e", "an escape character"),
    ('\0', "\\0", "a null character"),
];

fn yaml_escape_trap(pattern: &str, file: &str, at: Position) -> Option<Diagnostic> {
    let (_, written, what) = CONTROL_ESCAPES.iter().find(|(c, _, _)| pattern.contains(*c))?;
    let restored: String = pattern
        .chars()
        .map(|c| match CONTROL_ESCAPES.iter().find(|(control, _, _)| *control == c) {
            Some((_, written, _)) => (*written).to_owned(),
            None => c.to_string(),
        })
        .collect::<String>()
        .replace('\'', "''");
    Some(
        Diagnostic::new(
            Code::QuotedPattern,
            file,
            at,
            format!(
                "this pattern holds {what} where `{written}` was written: inside double quotes YAML turns `{written}` into {what}, so the pattern never matches"
            ),
        )
        .with_help(format!("write patterns in single quotes, where a backslash stays a backslash: '{restored}'")),
    )
}

/// What is wrong, how to fix it, and the character offset of the offending part.
fn explain(pattern: &str, error: &regex::Error) -> (String, String, Option<usize>) {
    let Err(problem) = regex_syntax::ast::parse::Parser::new().parse(pattern) else {
        // the syntax is fine; the pattern is too big, or names a class that does not exist
        return (last_line(error), "simplify the pattern".to_owned(), None);
    };
    let offset = pattern.get(..problem.span().start.offset).map(|before| before.chars().count());
    let at = pattern.get(problem.span().start.offset..).and_then(|rest| rest.chars().next()).unwrap_or(' ');
    let (what, help) = match problem.kind() {
        ErrorKind::GroupUnclosed => {
            ("this `(` is never closed".to_owned(), "close it with `)`, or write `\\(` to match a bracket".to_owned())
        }
        ErrorKind::GroupUnopened => {
            ("this `)` has no `(` before it".to_owned(), "write `\\)` to match a bracket".to_owned())
        }
        ErrorKind::ClassUnclosed => (
            "this `[` is never closed".to_owned(),
            "close the list of characters with `]`, or write `\\[` to match a bracket".to_owned(),
        ),
        ErrorKind::RepetitionMissing => {
            (format!("this `{at}` has nothing before it to repeat"), format!("write `\\{at}` to match a `{at}`"))
        }
        ErrorKind::RepetitionCountUnclosed
        | ErrorKind::RepetitionCountInvalid
        | ErrorKind::RepetitionCountDecimalEmpty
        | ErrorKind::DecimalEmpty
        | ErrorKind::DecimalInvalid => (
            "this `{` does not start a count such as `{2}` or `{1,3}`".to_owned(),
            "write `\\{` to match a brace".to_owned(),
        ),
        ErrorKind::EscapeUnrecognized => (
            format!("`\\{at}` is not something a backslash can start"),
            "write `\\\\` for a backslash itself".to_owned(),
        ),
        ErrorKind::EscapeUnexpectedEof => {
            ("the pattern ends with a lone `\\`".to_owned(), "remove it, or write `\\\\` for a backslash".to_owned())
        }
        ErrorKind::ClassRangeInvalid => (
            "this range of characters goes backwards".to_owned(),
            "write the lower character first, as in `[a-z]`".to_owned(),
        ),
        other => (other.to_string(), "check the character the caret points at".to_owned()),
    };
    (what, help, offset)
}

/// The regex crate's last message line, for the problems its parser does not locate.
fn last_line(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.lines().last().unwrap_or_default().trim().to_owned())
}

/// The column of the pattern's `offset`-th character, given the YAML scalar starting at
/// `start` (1-based) on `line`: past an opening quote, counting `''` (single quotes) and
/// `\x` (double quotes) as the one character they stand for.
fn column_of(line: &str, start: u32, offset: usize) -> u32 {
    let chars: Vec<char> = line.chars().collect();
    let mut i = start.saturating_sub(1) as usize;
    let quote = chars.get(i).copied().filter(|c| *c == '\'' || *c == '"');
    if quote.is_some() {
        i += 1;
    }
    let mut seen = 0;
    while seen < offset && i < chars.len() {
        match (quote, chars[i]) {
            (Some('\''), '\'') | (Some('"'), '\\') => i += 2,
            _ => i += 1,
        }
        seen += 1;
    }
    i as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(pattern: &str, line: &str, column: u32) -> Diagnostic {
        compile(pattern, "pipelines/x.yaml", Position { line: 1, column }, line).expect_err("a problem")
    }

    #[test]
    fn an_unclosed_bracket_is_pointed_at_in_plain_words() {
        let line = "  any: ['\\bping(\\b', 'pong']";
        let d = problem("\\bping(\\b", line, 10);
        assert_eq!(d.code, Code::BadRegex);
        assert!(d.message.contains("this `(` is never closed"), "{}", d.message);
        assert_eq!(line.chars().nth(d.position.column as usize - 1), Some('('));
    }

    #[test]
    fn a_lone_question_mark_says_what_to_write() {
        let d = problem("?who", "  - '?who'", 5);
        assert!(d.message.contains("this `?` has nothing before it to repeat"), "{}", d.message);
        assert!(d.help.as_deref().unwrap_or_default().contains("write `\\?`"));
        assert_eq!(d.position.column, 6);
    }

    #[test]
    fn doubled_single_quotes_count_as_one_character() {
        let line = "  - 'what''s (up'";
        let d = problem("what's (up", line, 5);
        assert_eq!(line.chars().nth(d.position.column as usize - 1), Some('('));
    }

    #[test]
    fn a_double_quoted_word_edge_is_caught_with_the_single_quoted_spelling() {
        let d = problem("\u{8}keeper\u{8}", "  - \"\\bkeeper\\b\"", 5);
        assert_eq!(d.code, Code::QuotedPattern);
        assert!(d.message.contains("a backspace where `\\b` was written"), "{}", d.message);
        assert_eq!(
            d.help.as_deref(),
            Some("write patterns in single quotes, where a backslash stays a backslash: '\\bkeeper\\b'")
        );
    }

    #[test]
    fn a_good_pattern_compiles_case_insensitively() {
        let regex = compile("\\bstatus\\b", "f", Position::default(), "").expect("compiles");
        assert!(regex.is_match("STATUS of 2"));
    }
}
