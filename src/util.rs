//! General helpers any module may use. It imports nothing from the crate, so it can sit below
//! every layer (see ARCHITECTURE.md, "Layers").

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, as RFC 3339 UTC with a `Z` and milliseconds (the mesh's send format).
pub fn utc_timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// "5 seconds", "1 second", "250 milliseconds": read aloud as well as shown.
pub fn human_duration(d: Duration) -> String {
    let (n, unit) = if d.as_millis().is_multiple_of(1000) {
        (d.as_secs() as u128, "second")
    } else {
        (d.as_millis(), "millisecond")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Serde for state enums by their strum names (`IntoStaticStr` to write, `EnumString` and
/// `VariantNames` to read), and `as_str` for the same name, so each name is written once, in the
/// enum's `strum(...)`, and metrics labels, templates and stored data all use it.
#[macro_export]
macro_rules! serde_by_name {
    ($($state:ty),+ $(,)?) => {$(
        impl $state {
            /// The state's name (its strum and serde name).
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl serde::Serialize for $state {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(<&'static str>::from(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $state {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&name, <$state as strum::VariantNames>::VARIANTS)
                })
            }
        }
    )+};
}

/// A state the API documents: a fieldless enum named in `snake_case` once, for strum, serde,
/// `as_str` and poem-openapi alike (see [`serde_by_name!`]). Doc comments and `#[default]` on
/// variants pass through; extra derives go in the attributes before `pub enum`.
#[macro_export]
macro_rules! api_state {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
            strum::EnumIter, poem_openapi::Enum,
        )]
        #[strum(serialize_all = "snake_case")]
        #[oai(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        $crate::serde_by_name!($name);
    };
}

/// Compiled regexes by source, shared by every configuration this process loads. A reload
/// compiles every pattern of every pipeline again, and compiling them was half of a reload's
/// time; most patterns are unchanged between two reloads (a steward edits one file). Bounded:
/// past [`REGEX_CACHE_ENTRIES`] the cache starts over. A pattern that does not compile is not
/// kept, so its error is reported every time.
pub fn cached_regex(pattern: &str, case_insensitive: bool) -> Result<regex::Regex, regex::Error> {
    static CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<(String, bool), regex::Regex>>> =
        std::sync::LazyLock::new(Default::default);
    let key = (pattern.to_owned(), case_insensitive);
    if let Some(found) = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
        return Ok(found.clone());
    }
    let compiled =
        regex::RegexBuilder::new(pattern).case_insensitive(case_insensitive).size_limit(REGEX_SIZE_LIMIT).build()?;
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.len() >= REGEX_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    Ok(compiled)
}

/// [`cached_regex`] for a case-insensitive set of patterns (the intents' `match:` rules).
pub fn cached_regex_set(patterns: &[String]) -> Result<regex::RegexSet, regex::Error> {
    static CACHE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<Vec<String>, regex::RegexSet>>> =
        std::sync::LazyLock::new(Default::default);
    if let Some(found) = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(patterns) {
        return Ok(found.clone());
    }
    let compiled =
        regex::RegexSetBuilder::new(patterns).case_insensitive(true).size_limit(REGEX_SET_SIZE_LIMIT).build()?;
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // one set per configuration: the last few are worth keeping, not every one ever loaded
    if cache.len() >= 4 {
        cache.clear();
    }
    cache.insert(patterns.to_vec(), compiled.clone());
    Ok(compiled)
}

/// How large one compiled pattern may grow (a steward's pattern, or one built from slot names).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_SET_SIZE_LIMIT: usize = 64 * 1024 * 1024;
/// Patterns kept by [`cached_regex`]: several configurations' worth.
const REGEX_CACHE_ENTRIES: usize = 8192;

/// The HTTP client for every call this droplet makes to another (a droplet, the Orchestrator, the
/// Registry, a language model). Redirects are not followed: a host that answers "go elsewhere" has
/// not answered, and a command must never be posted again to a host nobody configured.
pub fn outgoing_http(timeout: Option<std::time::Duration>) -> reqwest::Client {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let builder = match timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder,
    };
    // as `reqwest::Client::new` does: only a TLS backend that cannot start fails here
    builder.build().expect("the HTTP client starts")
}

/// The largest answer read from another droplet, the Orchestrator or the Registry (bytes): far
/// above any answer the catalogue describes, so only a broken or hostile peer reaches it, and
/// one such answer cannot take the process's memory.
pub const MAX_PEER_ANSWER_BYTES: usize = 2 << 20;

/// A response body read up to `limit` bytes; `None` once it is larger (the rest is not read).
pub async fn body_within(mut response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return None;
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.ok().flatten() {
        if bytes.len() + chunk.len() > limit {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    Some(bytes)
}

/// A peer's answer as JSON (`null` when it is not JSON); `None` when it is larger than
/// [`MAX_PEER_ANSWER_BYTES`].
pub async fn peer_json(response: reqwest::Response) -> Option<serde_json::Value> {
    let bytes = body_within(response, MAX_PEER_ANSWER_BYTES).await?;
    Some(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Said when a peer's answer was larger than [`MAX_PEER_ANSWER_BYTES`].
pub fn too_large(who: &str) -> String {
    format!("The {who}'s answer was larger than {} MiB and was not read.", MAX_PEER_ANSWER_BYTES >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_pattern_keeps_its_flags_and_a_broken_one_keeps_failing() {
        let insensitive = cached_regex(r"\bstatus\b", true).expect("compiles");
        let sensitive = cached_regex(r"\bstatus\b", false).expect("compiles");
        assert!(insensitive.is_match("STATUS please") && !sensitive.is_match("STATUS please"));
        assert!(cached_regex(r"\bstatus\b", true).expect("cached").is_match("Status"));
        for _ in 0..2 {
            assert!(cached_regex(r"(unclosed", true).is_err(), "an error is reported every time");
        }
    }

    #[test]
    fn a_cached_set_is_the_set_of_its_patterns() {
        let patterns = vec![r"\bstatus\b".to_owned(), r"\bcancel\b".to_owned()];
        let set = cached_regex_set(&patterns).expect("compiles");
        assert_eq!(set.matches("please CANCEL").into_iter().collect::<Vec<_>>(), [1]);
        let other = cached_regex_set(&patterns[..1]).expect("compiles");
        assert_eq!(other.len(), 1, "another list is another set");
    }

    #[test]
    fn durations_read_aloud() {
        assert_eq!(human_duration(Duration::from_secs(1)), "1 second");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 milliseconds");
    }
}
