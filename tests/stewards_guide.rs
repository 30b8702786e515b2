//! STEWARDS.md quotes real files; this keeps every quote identical to the file it names, so the
//! guide's worked example is always the one the rest of the suite runs; and its appendix is the
//! catalogue's answer reference.

use crate::common;

use std::path::Path;

#[test]
fn every_file_quoted_in_the_guide_is_the_shipped_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("STEWARDS.md")).expect("STEWARDS.md");
    let mut quoted = 0;
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("<!-- file: ").and_then(|rest| rest.strip_suffix(" -->")) else { continue };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "a code block must follow the marker for {path}");
        let block: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let shipped = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|_| panic!("the guide quotes {path}, which does not exist"));
        assert_eq!(
            block.join("\n").trim_end(),
            shipped.trim_end(),
            "STEWARDS.md's copy of {path} differs from the file"
        );
        quoted += 1;
    }
    assert_eq!(quoted, 4, "the guide quotes the pipeline, both templates and the conversation");
}

/// The guide's appendix is the catalogue's answer reference, as `chat-orchestrator answers`
/// prints it: a shape changed in the catalogue shows up here too.
#[test]
fn the_guides_answer_tables_are_the_catalogues() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("STEWARDS.md")).expect("STEWARDS.md");
    let start =
        guide.find("<!-- answers:start -->\n").expect("the appendix's start marker") + "<!-- answers:start -->\n".len();
    let end = guide.find("<!-- answers:end -->").expect("the appendix's end marker");
    let expected = common::compiled().catalogue.answers_reference();
    assert!(
        guide[start..end] == expected,
        "STEWARDS.md's appendix is out of date; replace what is between the markers with the output of `chat-orchestrator answers`"
    );
}
