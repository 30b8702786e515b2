//! The stewards' synonyms and the mesh's nouns (`catalogue/vocabulary.yaml`).

use super::Compiler;
use crate::config::files::VOCABULARY_FILE;
use crate::config::schema::Schema;
use crate::config::spec::VocabularySpec;
use crate::diagnostic::{Code, Diagnostic};
use crate::nlu::vocabulary::{MeshNouns, Vocabulary};

impl Compiler<'_> {
    /// `catalogue/vocabulary.yaml`, when there is one: synonyms without cycles or double meanings,
    /// and the mesh's nouns (single lowercase words, as the schema requires).
    pub(super) fn vocabulary(&mut self, schema: &Schema) -> Option<Vocabulary> {
        let Some(text) = self.files.get(VOCABULARY_FILE) else {
            return Some(
                Vocabulary::default()
                    .with_focus_turns(crate::config::spec::FocusSpec::DEFAULT_TURNS)
                    .with_command_lead(crate::config::spec::CommandsSpec::DEFAULT_LEAD),
            );
        };
        let (document, spec) = self.parse::<VocabularySpec>(VOCABULARY_FILE, text, schema)?;
        let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
        let nouns = MeshNouns {
            droplet_words: spec.droplet_words.clone(),
            generic_nouns: spec.generic_nouns.clone(),
            every_droplet_words: spec.every_droplet_words.clone(),
        };
        let entries: Vec<(String, Vec<String>)> = spec.synonyms.into_iter().collect();
        match Vocabulary::build(
            &entries,
            |w| stemmer.stem(w).into_owned(),
            |t| crate::nlu::text::words(t).into_iter().map(|w| w.text).collect(),
        ) {
            Ok(vocabulary) => Some(
                vocabulary.with_nouns(nouns).with_focus_turns(spec.focus.turns).with_command_lead(spec.commands.lead),
            ),
            Err(problems) => {
                for problem in problems {
                    self.report(
                        Diagnostic::new(
                            Code::BadVocabulary,
                            VOCABULARY_FILE,
                            document.at(&problem.pointer),
                            problem.message,
                        )
                        .with_help(problem.help),
                    );
                }
                None
            }
        }
    }
}
