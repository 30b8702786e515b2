//! Turning text into something a voice assistant can say.
//!
//! Voice templates are written as plain speech, but a steward can slip (a bullet, an emoji, a
//! copied `name:value`). Every voice reply goes through [`to_speech`] last, so the voice
//! channel's invariant — no markdown, emoji, URLs or stray symbols — holds whatever a template
//! says. It is also available to templates as the `speak` filter.

use std::sync::OnceLock;

use regex::Regex;

struct Patterns {
    link: Regex,
    url: Regex,
    table_rule: Regex,
    line_marker: Regex,
    key_value: Regex,
    path: Regex,
    slash_words: Regex,
    spaces: Regex,
    space_before_punct: Regex,
    repeated_punct: Regex,
    symbol: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("static regex");
        Patterns {
            link: re(r"\[([^\]]*)\]\([^)]*\)"),
            // any scheme (`ftp://`, `mailto:`), `www.`, and bare domains with a path
            // (`evil.example/login`) or a well-known ending (`example.com`)
            url: re(r"(?i)(?:\b[a-z][a-z0-9+.-]*://|\bmailto:|\bwww\.)\S+|\b(?:[a-z0-9-]+\.)+[a-z]{2,}/\S*|\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|ai|dev|app|co|uk|de|info|biz|me|xyz|example|local|internal|test)\b\S*"),
            table_rule: re(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$"),
            line_marker: re(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•]\s+|\d+[.)]\s+)"),
            key_value: re(r"(\p{L}[\p{L}\p{N}_]*):(\S)"),
            path: re(r"(^|\s)/([\p{L}\p{N}_-]+(?:/[\p{L}\p{N}_-]+)*)"),
            slash_words: re(r"(\p{L})/(\p{L})"),
            spaces: re(r"[ \t]+"),
            space_before_punct: re(r"\s+([,.;:!?])"),
            repeated_punct: re(r"([,.;:!?])[,.;:]+"),
            // symbols a voice cannot say (™ © ® § ¶ ✓ and the like) and modifier symbols;
            // maths and currency signs are spelt out or dropped below
            symbol: re(r"[\p{So}\p{Sk}§¶]"),
        }
    })
}

/// Pictographs, dingbats, flags, arrows and the joiners that glue emoji sequences together.
fn is_emoji_like(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2190..=0x21FF | 0x2B00..=0x2BFF | 0x2300..=0x23FF
        | 0x25A0..=0x25FF | 0xFE00..=0xFE0F | 0x200D | 0x20E3 | 0xE0020..=0xE007F)
}

/// Rewrites `text` as plain speech: sentences only, no markup or symbols.
pub fn to_speech(text: &str) -> String {
    let p = patterns();
    let mut sentences: Vec<String> = Vec::new();
    for raw_line in text.lines() {
        if p.table_rule.is_match(raw_line) {
            continue;
        }
        let mut line = p.line_marker.replace(raw_line, "").into_owned();
        if line.trim_start().starts_with('|') {
            // a table row: read its cells as a list
            line = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>().join(", ");
        }
        line = p.link.replace_all(&line, "$1").into_owned();
        line = line.chars().filter_map(crate::nlu::text::visible).collect();
        line = p.url.replace_all(&line, "a web address").into_owned();
        line = line.chars().filter(|c| !is_emoji_like(*c)).collect();
        line = line.replace('°', " degrees").replace('±', " plus or minus ");
        line = p.symbol.replace_all(&line, "").into_owned();
        line = p.key_value.replace_all(&line, "$1 colon $2").into_owned();
        line = p
            .path
            .replace_all(&line, |c: &regex::Captures| format!("{}{}", &c[1], c[2].replace('/', " ")))
            .into_owned();
        line = p.slash_words.replace_all(&line, "$1 or $2").into_owned();
        line = line.replace('&', " and ").replace('%', " percent").replace('_', " ");
        line = line
            .chars()
            .filter(|c| {
                !matches!(
                    c,
                    '*' | '#'
                        | '`'
                        | '|'
                        | '<'
                        | '>'
                        | '['
                        | ']'
                        | '{'
                        | '}'
                        | '('
                        | ')'
                        | '~'
                        | '^'
                        | '\\'
                        | '='
                        | '+'
                        | '@'
                        | '$'
                        | '"'
                        | '/'
                )
            })
            .collect();
        let line = p.spaces.replace_all(line.trim(), " ").into_owned();
        if line.chars().any(char::is_alphanumeric) {
            sentences.push(line);
        }
    }
    let mut out = String::new();
    for sentence in sentences {
        if !out.is_empty() {
            let ends_clause = out.ends_with(['.', '!', '?', ':', ';', ',']);
            if !ends_clause {
                out.push('.');
            }
            out.push(' ');
        }
        out.push_str(&sentence);
    }
    let out = p.space_before_punct.replace_all(&out, "$1");
    let out = p.repeated_punct.replace_all(&out, "$1");
    // dropping punctuation can join a domain back together ("a.:me" → "a.me")
    let out = p.url.replace_all(&out, "a web address");
    let mut out = out.trim().to_owned();
    if !out.is_empty() && !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Characters a voice reply must never contain (used by tests and by [`is_speakable`]).
pub const FORBIDDEN_IN_SPEECH: &[char] =
    &['*', '#', '`', '|', '<', '>', '[', ']', '{', '}', '(', ')', '_', '~', '\\', '/', '"'];

/// Whether a text already satisfies the voice invariant.
pub fn is_speakable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| FORBIDDEN_IN_SPEECH.contains(&c) || is_emoji_like(c) || crate::nlu::text::visible(c) != Some(c))
        && !patterns().url.is_match(text)
        && !patterns().symbol.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_markdown_and_emoji_into_sentences() {
        let chat = "## Droplets 🟢\n\n- **Registry** is active\n- *Dashboard* is `inactive`\nSee [the docs](https://x.example/docs).";
        assert_eq!(to_speech(chat), "Droplets. Registry is active. Dashboard is inactive. See the docs.");
    }

    #[test]
    fn says_colons_and_reads_tables() {
        assert_eq!(to_speech("Reply like name:MyService id:123"), "Reply like name colon MyService id colon 123.");
        let table = "| id | name |\n|---|---|\n| 1 | Registry |";
        assert_eq!(to_speech(table), "id, name. 1, Registry.");
        assert_eq!(
            to_speech("POST /register is active/inactive, 50%"),
            "POST register is active or inactive, 50 percent."
        );
        assert_eq!(to_speech("Visit https://drop12.fullpotential.ai now"), "Visit a web address now.");
        assert_eq!(to_speech("• POST /tasks/new"), "POST tasks new.");
    }

    #[test]
    fn links_domains_and_schemes_are_not_read_out() {
        assert_eq!(to_speech("visit evil.example/login now"), "visit a web address now.");
        assert_eq!(
            to_speech("get ftp://files.example/x and mailto:eve@example.com"),
            "get a web address and a web address."
        );
        assert_eq!(to_speech("see example.com"), "see a web address.");
        assert_eq!(to_speech("version 2.5 of Node.js is fine"), "version 2.5 of Node.js is fine.");
    }

    #[test]
    fn invisible_characters_symbols_and_full_width_forms_go() {
        assert_eq!(to_speech("Acme\u{202E}\u{200B} is ready"), "Acme is ready.");
        assert_eq!(to_speech("Acme™ © 2026, 20° ± 2"), "Acme 2026, 20 degrees plus or minus 2.");
        assert_eq!(to_speech("ＡＰＩ ＊ ＃ ｜ ok"), "API ok.");
    }

    #[test]
    fn result_is_always_speakable() {
        for input in [
            "**x** | y",
            "🟢 ok",
            "a_b <c> {d}",
            "`code` ~~strike~~ \\ /path/to",
            "\"quoted\"",
            "x\u{202E}y ™ ＊",
            "ftp://a.example/b",
            "a.:me ",
        ] {
            let spoken = to_speech(input);
            assert!(is_speakable(&spoken), "{input:?} became {spoken:?}");
        }
    }
}
