//! Property tests: whatever the input, the parsers do not panic and keep their promises.

use crate::common;

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
    fn resolving_any_text_never_panics_and_names_a_known_intent(text in "\\PC{0,400}") {
        let config = common::compiled();
        let resolution = config.resolver.resolve(&text);
        prop_assert!(config.pipeline(&resolution.intent).is_some(), "{:?} → {}", text, resolution.intent);
        for part in config.resolver.resolve_parts(&text) {
            prop_assert!(config.pipeline(&part.resolution.intent).is_some());
            prop_assert!(text.contains(&part.text), "a part is a piece of the message: {:?}", part.text);
        }
    }

    #[test]
    fn slot_filling_from_any_text_never_panics_or_invents(text in "\\PC{0,300}") {
        let config = common::compiled();
        for pipeline in &config.pipelines {
            for step in &pipeline.steps {
                if let chat_orchestrator::steps::Step::Extract(extract) = &step.step {
                    let mut slots = serde_json::Map::new();
                    let reader = extract.reader(pipeline, &config.catalogue, config.resolver.analyzer());
                    let reading = config.resolver.analyzer().read(&text);
                    reader.fill(&reading, chat_orchestrator::slots::fill::Said::Answer(None), &mut slots);
                    // a text value is always a piece of what was said (its invisible characters aside)
                    let shown: String = text.chars().filter(|c| !chat_orchestrator::nlu::text::is_invisible(*c)).collect();
                    for (name, value) in &slots {
                        if let Some(said) = value.as_str() {
                            prop_assert!(shown.contains(said), "{}.{} = {:?} from {:?}", pipeline.intent, name, said, text);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn planning_any_text_against_a_focus_never_panics_and_names_known_intents(text in "\\PC{0,300}") {
        let config = common::compiled();
        let focus = chat_orchestrator::session::Focus {
            intent: Some("droplet_endpoints".to_owned()),
            intent_turn: 3,
            values: vec![chat_orchestrator::session::FocusValue {
                slot: "droplet".to_owned(),
                kind: "droplet".to_owned(),
                value: serde_json::json!(14),
                turn: 3,
            }],
            // and a choice offered, which any text may pick from
            choice: Some(chat_orchestrator::session::Choice {
                intents: vec!["deregister_service".to_owned(), "list_registry".to_owned()],
                text: "delete registry entry 5".to_owned(),
                turn: 3,
            }),
        };
        let reading = std::sync::Arc::new(config.resolver.analyzer().read(&text));
        let in_focus = chat_orchestrator::dialogue::InFocus::new(&focus, 4, 4);
        for plan in chat_orchestrator::dialogue::plan(&config, &reading, None, &in_focus).plans {
            prop_assert!(config.pipeline(&plan.intent).is_some(), "{:?} → {}", text, plan.intent);
        }
    }

    #[test]
    fn numbers_are_read_from_any_text_without_panicking(text in "\\PC{0,300}") {
        let words = chat_orchestrator::nlu::text::words(&text);
        for found in chat_orchestrator::nlu::numbers::find(&text, &words) {
            prop_assert!(found.first < found.end && found.end <= words.len());
        }
        let _ = chat_orchestrator::nlu::numbers::parse(&text);
    }

    #[test]
    fn spoken_numbers_read_as_their_value(n in 1i64..1_000_000) {
        let spoken = english_number(n);
        let found = chat_orchestrator::nlu::numbers::parse(&spoken).and_then(|f| f.integer());
        prop_assert_eq!(found, Some(n), "{}", spoken);
    }

    #[test]
    fn typed_numbers_read_whole_never_cut_short(n in any::<i64>(), grouped in any::<bool>(), fraction in 1u8..10) {
        let typed = if grouped { grouped_in_thousands(n) } else { n.to_string() };
        let text = format!("remove service {typed} now");
        let found = chat_orchestrator::nlu::numbers::find(&text, &chat_orchestrator::nlu::text::words(&text));
        prop_assert_eq!(found.iter().map(|f| f.integer()).collect::<Vec<_>>(), vec![Some(n)], "{}", text);
        prop_assert_eq!(chat_orchestrator::nlu::numbers::parse(&typed).and_then(|f| f.integer()), Some(n));
        // a fraction is read as one, and is no whole number
        let fractional = format!("{typed}.{fraction}");
        let read = chat_orchestrator::nlu::numbers::parse(&fractional);
        prop_assert!(read.as_ref().is_some_and(|f| f.integer().is_none() && f.whole.is_none()), "{}: {:?}", fractional, read);
    }

    #[test]
    fn spoken_numbers_of_any_size_read_exactly(n in 1i128..1_000_000_000_000_000_000_000, negative in any::<bool>()) {
        let spoken = if negative { format!("minus {}", english_large_number(n)) } else { english_large_number(n) };
        let expected = if negative { -n } else { n };
        let found = chat_orchestrator::nlu::numbers::parse(&spoken);
        prop_assert_eq!(found.as_ref().and_then(|f| f.whole), Some(expected), "{}", spoken);
        // beyond 64 bits a slot refuses it rather than reading a part of it
        prop_assert_eq!(found.and_then(|f| f.integer()), i64::try_from(expected).ok(), "{}", spoken);
    }

    #[test]
    fn speech_is_always_speakable(text in "\\PC{0,300}") {
        let spoken = speech::to_speech(&text);
        prop_assert!(speech::is_speakable(&spoken), "{:?} became {:?}", text, spoken);
    }
}

/// `n` typed with thousands separators ("-1,250,000").
fn grouped_in_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `n` in English words with every scale word up to sextillion ("nine trillion five hundred").
fn english_large_number(n: i128) -> String {
    const SCALES: [&str; 8] =
        ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion", "sextillion"];
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push((rest % 1000) as i64);
        rest /= 1000;
    }
    let mut parts = Vec::new();
    for (power, group) in groups.iter().enumerate().rev() {
        if *group == 0 {
            continue;
        }
        let words = english_number(*group);
        parts.push(if power == 0 { words } else { format!("{words} {}", SCALES[power]) });
    }
    parts.join(" ")
}

/// `n` in English words, as a person says it ("three hundred and one").
fn english_number(n: i64) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    fn below_thousand(n: i64) -> String {
        let mut parts = Vec::new();
        if n >= 100 {
            parts.push(format!("{} hundred", ONES[(n / 100) as usize]));
        }
        let rest = n % 100;
        if rest > 0 {
            if n >= 100 {
                parts.push("and".to_owned());
            }
            if rest < 20 {
                parts.push(ONES[rest as usize].to_owned());
            } else if rest % 10 == 0 {
                parts.push(TENS[(rest / 10) as usize].to_owned());
            } else {
                parts.push(format!("{} {}", TENS[(rest / 10) as usize], ONES[(rest % 10) as usize]));
            }
        }
        parts.join(" ")
    }
    let (thousands, rest) = (n / 1000, n % 1000);
    match (thousands, rest) {
        (0, r) => below_thousand(r),
        (t, 0) => format!("{} thousand", below_thousand(t)),
        (t, r) => format!("{} thousand {}", below_thousand(t), below_thousand(r)),
    }
}

#[test]
fn a_very_long_message_is_read_in_bounded_words() {
    let config = common::compiled();
    let text = "show me the status of the registry please ".repeat(2_000);
    let resolution = config.resolver.resolve(&text);
    assert_ne!(resolution.intent, "", "a huge message still resolves");
    assert!(chat_orchestrator::nlu::text::words(&text).len() <= chat_orchestrator::nlu::text::MAX_WORDS);
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
            // every problem is reported, located and explained in the text a steward reads
            prop_assert!(!error.diagnostics.is_empty());
            let rendered = error.render();
            for diagnostic in error.diagnostics.iter() {
                prop_assert!(!diagnostic.message.trim().is_empty(), "{:?} says nothing", diagnostic);
                prop_assert!(rendered.contains(&diagnostic.message), "{:?} is not in the report", diagnostic);
                prop_assert!(rendered.contains(&diagnostic.file), "{:?}: the report does not name its file", diagnostic);
            }
        }
    }
}

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,40}".prop_map(serde_json::Value::from),
        prop::sample::select(vec!["6", "18", "12", "droplet-10", "drop5.fullpotential.ai", "registry", ""])
            .prop_map(serde_json::Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        let keys = prop::sample::select(vec![
            "trace_id",
            "source",
            "target",
            "message_type",
            "payload",
            "route_back",
            "timestamp",
            "udc_version",
            "message",
            "text",
            "metadata",
            "user_id",
            "session_id",
            "other",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys, inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn envelope_parsing_never_panics_and_accepted_envelopes_are_usable(value in json_value()) {
        use chat_orchestrator::envelope::Envelope;
        if let Ok(envelope) = Envelope::parse(&value) {
            prop_assert!(!envelope.trace_id.is_empty());
            let _ = envelope.user_text();
            prop_assert!(!envelope.session_id().is_empty());
            prop_assert_ne!(envelope.reply_target().droplet(), Some(18), "18 is always normalised to 6");
        }
    }
}

/// Words an answer to a read-back is made of: every yes form, courtesy, words about the action,
/// numbers and a few others.
fn answer_words() -> Vec<String> {
    let english = chat_orchestrator::nlu::Lexicon::english();
    english
        .yes
        .iter()
        .chain(english.courtesy.iter())
        .chain(english.consent_courtesy.iter())
        .chain(english.about_the_action.iter())
        .chain(["5", "twelve", "the id is 78", "call it Billing", "removal", "service", "please"])
        .map(str::to_owned)
        .collect()
}

/// Every form that holds an action back: no, wait and stop.
fn holding_back() -> Vec<String> {
    let english = chat_orchestrator::nlu::Lexicon::english();
    english.no.iter().chain(english.wait_words.iter()).chain(english.stop_words.iter()).map(str::to_owned).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn no_answer_with_a_no_a_wait_or_a_stop_is_ever_consent(
        before in proptest::collection::vec(proptest::sample::select(answer_words()), 0..4),
        holding in proptest::sample::select(holding_back()),
        after in proptest::collection::vec(proptest::sample::select(answer_words()), 0..4),
        separator in proptest::sample::select(vec![" ", ", ", ". ", "! ", " - "]),
    ) {
        use chat_orchestrator::dialogue::answers::ConsentAnswer;
        let text = before.iter().chain(std::iter::once(&holding)).chain(&after).cloned().collect::<Vec<_>>().join(separator);
        let answer = answer_to_removal_of_5(&text);
        prop_assert_ne!(answer, ConsentAnswer::Yes, "{:?} was read as consent", text);
    }

    #[test]
    fn a_bare_number_at_a_read_back_is_never_consent(n in -100i64..100_000) {
        use chat_orchestrator::dialogue::answers::ConsentAnswer;
        let answer = answer_to_removal_of_5(&n.to_string());
        prop_assert!(!matches!(answer, ConsentAnswer::Yes), "{} was read as consent", n);
        // a number other than the one read back corrects it (refused when it is not a valid id)
        if n != 5 {
            prop_assert!(matches!(answer, ConsentAnswer::Corrected { .. }), "{}: {:?}", n, answer);
        }
    }
}

/// How `text` reads as an answer to the shipped read-back "Remove the service with id 5?".
fn answer_to_removal_of_5(text: &str) -> chat_orchestrator::dialogue::answers::ConsentAnswer {
    use chat_orchestrator::dialogue::answers::{read_consent, AtReadBack};
    let config = common::compiled();
    let pipeline = config.pipeline("deregister_service").expect("the shipped removal");
    let step = pipeline
        .steps
        .iter()
        .position(|s| matches!(s.step, chat_orchestrator::steps::Step::Confirm(_)))
        .expect("a read-back");
    let slots = serde_json::json!({"id": 5}).as_object().cloned().expect("slots");
    let at = AtReadBack {
        pipeline,
        step,
        slots: &slots,
        catalogue: &config.catalogue,
        analyzer: config.resolver.analyzer(),
        another_request: false,
        follows_up: false,
    };
    read_consent(&at, text)
}
