//! Reading natural language without a model: what the rules-only default understands.
//!
//! - [`lexicon`]: the English the engine relies on (fillers, stopwords, yes and no, …), one
//!   lexicon per language;
//! - [`text`]: words of a message, normalised (contractions, possessives, invisible characters);
//! - [`numbers`]: numbers in digits and in English words, ordinals;
//! - [`vocabulary`]: the stewards' synonyms;
//! - [`analyzer`]: text → terms (typo correction, entity placeholders, synonyms, stems);
//! - [`matcher`]: how much a message resembles each intent's examples (weighted cosine);
//! - [`answers`]: yes and no, as people say them.
//!
//! Everything here is deterministic, built at load time and bounded in time for any input.

pub mod analyzer;
pub mod answers;
pub mod lexicon;
pub mod matcher;
pub mod numbers;
pub mod text;
pub mod vocabulary;

pub use analyzer::{Analysis, Analyzer, Entities, Reading};
pub use lexicon::Lexicon;
