//! Property tests: whatever the input, the parsers do not panic and keep their promises.

mod common;

use chat_orchestrator::config::{self, ConfigFiles};
use chat_orchestrator::slots::KeyValueParser;
use chat_orchestrator::speech;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn key_value_parsing_never_panics_and_only_returns_known_keys(text in "\\PC{0,200}") {
        let parser = KeyValueParser::new(["name", "id", "service_name", "title"].into_iter()).expect("keys");
        for (key, value) in parser.parse(&text) {
            prop_assert!(["name", "id", "service_name", "title"].contains(&key.as_str()));
            prop_assert_eq!(value.trim(), value.as_str());
        }
    }

    #[test]
    fn key_value_parsing_finds_what_was_written(name in "[A-Za-z][A-Za-z ]{0,30}[A-Za-z]", id in 0u32..1_000_000) {
        let parser = KeyValueParser::new(["name", "id"].into_iter()).expect("keys");
        let found = parser.parse(&format!("register name:{name} id:{id}"));
        prop_assert_eq!(found, vec![("name".to_owned(), name.clone()), ("id".to_owned(), id.to_string())]);
    }

    #[test]
    fn speech_is_always_speakable(text in "\\PC{0,300}") {
        let spoken = speech::to_speech(&text);
        prop_assert!(speech::is_speakable(&spoken), "{:?} became {:?}", text, spoken);
    }
}

/// A shipped pipeline with random edits: loading never panics, and every problem it reports
/// points inside the files it was given.
fn edited(original: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = original.chars().collect();
    for &(position, kind, c) in edits {
        let at = position % (chars.len() + 1);
        match kind % 3 {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    // each load compiles the whole configuration; a few dozen mutated files cover the paths
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn loading_a_damaged_pipeline_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), prop::sample::select(vec![':', ' ', '\n', '-', '{', '}', '[', ']', '"', '\'', 'x', '#', '|', '\t', '*', '&'])), 1..8)
    ) {
        let original = include_str!("../pipelines/register_service.yaml");
        let text = edited(original, &edits);
        let files = common::repo_files().overlay(ConfigFiles::from_pairs([("pipelines/register_service.yaml", text.clone())]));
        if let Err(error) = config::load(&files) {
            let lines = text.lines().count() as u32 + 1;
            for diagnostic in error.diagnostics.iter() {
                if diagnostic.file == "pipelines/register_service.yaml" {
                    prop_assert!(diagnostic.position.line <= lines, "{:?} is outside the file", diagnostic);
                }
            }
            prop_assert!(!error.render().is_empty());
        }
    }
}
