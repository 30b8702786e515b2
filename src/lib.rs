//! Chat Orchestrator (droplet 12): a declarative conversation engine.
//!
//! Stewards describe each intent as a YAML pipeline (`pipelines/`) and write its replies as
//! minijinja templates (`templates/`); the droplets of the mesh are data (`catalogue/`). This
//! crate checks and compiles that configuration and runs it behind a poem-openapi server.
//! ARCHITECTURE.md has the data flow and the invariants.
//!
//! # Layout
//!
//! - [`config`]: files → located YAML → JSON Schema → `*Spec` → [`config::CompiledConfig`],
//!   collecting every [`diagnostic::Diagnostic`] before failing.
//! - [`engine`]: one turn in, one reply out; pure (no HTTP, no files).
//! - [`intent`]: rule-based intent resolution that explains itself.
//! - [`pipeline`] and [`steps`]: the runtime pipeline and its step kinds (`extract`, `query`,
//!   `format`), one file each.
//! - [`slots`]: `key:value` parsing, coercion and validation of slot values.
//! - [`catalogue`]: the droplets; [`backend`]: how droplet calls are made (the bundled sample
//!   data by default).
//! - [`template`] and [`speech`]: the minijinja environment, and the voice channel's text rules.
//! - [`session`]: conversation state behind a store trait, in memory by default.
//! - [`api`] and [`server`]: the HTTP surface; [`settings`]: environment variables.

pub mod api;
pub mod auth;
pub mod backend;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod connections;
pub mod coverage;
pub mod credentials;
pub mod diagnostic;
pub mod dialogue;
pub mod droplet_ids;
pub mod engine;
pub mod envelope;
pub mod fixture;
pub mod identity;
pub mod intent;
pub mod lifecycle;
pub mod llm;
pub mod mesh;
pub mod metrics;
pub mod nlu;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod server;
pub mod session;
pub mod settings;
pub mod shapes;
pub mod slots;
pub mod speech;
pub mod stats;
pub mod statuses;
pub mod steps;
pub mod template;
pub mod trace;
pub mod turn_events;
pub mod understand;
pub mod util;
pub mod utterances;

/// The layering ARCHITECTURE.md states ("Layers"), checked on the source: a module may name
/// (`crate::x`) only modules on its own layer or below.
#[cfg(test)]
mod layering {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Bottom to top, as in ARCHITECTURE.md.
    const LAYERS: &[&[&str]] = &[
        &[
            "util",
            "droplet_ids",
            "statuses",
            "diagnostic",
            "shapes",
            "auth",
            "connections",
            "credentials",
            "identity",
            "metrics",
        ],
        &[
            "catalogue",
            "nlu",
            "speech",
            "template",
            "intent",
            "slots",
            "backend",
            "trace",
            "llm",
            "session",
            "envelope",
            "stats",
            "lifecycle",
            "mesh",
            "turn_events",
        ],
        &["pipeline", "steps"],
        &["config", "coverage", "understand"],
        &["dialogue"],
        &["engine"],
        &["replay", "reload", "fixture", "utterances", "settings", "api", "server", "cli"],
    ];

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// A file's code without its `#[cfg(test)] mod … { … }` blocks (unit tests may use any
    /// module); every other item, `#[cfg(test)]` or not, is kept.
    fn without_test_modules(source: &str) -> String {
        let start =
            regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{").expect("static pattern");
        let mut code = String::new();
        let mut rest = source;
        while let Some(found) = start.find(rest) {
            code.push_str(&rest[..found.start()]);
            let mut depth = 1;
            let body = &rest[found.end()..];
            let end = body
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(body.len(), |(i, _)| i + 1);
            rest = &body[end..];
        }
        code.push_str(rest);
        code
    }

    /// The modules a file names (`crate::x`, and each of `crate::{x, y::z}`), outside comments
    /// and its test modules.
    fn named(source: &str) -> BTreeSet<String> {
        let code: String = without_test_modules(source)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let single = regex::Regex::new(r"crate::([a-z_]+)").expect("static pattern");
        let grouped = regex::Regex::new(r"crate::\{([^}]*)\}").expect("static pattern");
        let first_name = regex::Regex::new(r"^\s*([a-z_]+)").expect("static pattern");
        let mut out: BTreeSet<String> = single.captures_iter(&code).map(|c| c[1].to_owned()).collect();
        for group in grouped.captures_iter(&code) {
            out.extend(group[1].split(',').filter_map(|part| Some(first_name.captures(part)?[1].to_owned())));
        }
        out
    }

    #[test]
    fn the_reader_sees_grouped_imports_and_code_after_test_items() {
        let source = "use crate::{config, engine::Engine,\n    nlu::text};\n#[cfg(test)]\nfn helper() {}\nuse crate::api;\n#[cfg(test)]\nmod tests { use crate::cli; }\nuse crate::llm;";
        let names: Vec<String> = named(source).into_iter().collect();
        assert_eq!(names, ["api", "config", "engine", "llm", "nlu"]);
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Modules allowed to name each other: a `Pipeline` holds its steps, and a step runs with the
    /// pipeline's `RunEnv` and `TurnState`.
    const ALLOWED_CYCLE: &[&str] = &["pipeline", "steps"];

    /// The top-level module each file of `src/` belongs to, with its source.
    fn modules() -> Vec<(std::path::PathBuf, String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        all.into_iter()
            .filter_map(|path| {
                let relative = path.strip_prefix(&src).expect("under src").to_path_buf();
                let top = relative.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or_default();
                let module = top.trim_end_matches(".rs").to_owned();
                let source = std::fs::read_to_string(&path).expect("readable");
                (module != "lib" && module != "main").then_some((relative, module, source))
            })
            .collect()
    }

    #[test]
    fn no_import_cycle_but_a_pipeline_and_its_steps() {
        let mut uses: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for (_, module, source) in modules() {
            let named: Vec<String> =
                named(&source).into_iter().filter(|used| *used != module && layer_of(used).is_some()).collect();
            uses.entry(module).or_default().extend(named);
        }
        // a module is in a cycle when it reaches itself again through what it uses
        let reaches = |from: &str| {
            let mut seen = BTreeSet::new();
            let mut next: Vec<String> = uses.get(from).into_iter().flatten().cloned().collect();
            while let Some(module) = next.pop() {
                if seen.insert(module.clone()) {
                    next.extend(uses.get(&module).into_iter().flatten().cloned());
                }
            }
            seen
        };
        let in_cycles: Vec<String> = uses
            .keys()
            .filter(|module| reaches(module).contains(*module))
            .filter(|module| !ALLOWED_CYCLE.contains(&module.as_str()))
            .map(|module| {
                let back: Vec<&String> = uses[module].iter().filter(|used| reaches(used).contains(module)).collect();
                format!("{module} (through {back:?})")
            })
            .collect();
        assert!(in_cycles.is_empty(), "modules in an import cycle:\n{}", in_cycles.join("\n"));
    }

    #[test]
    fn no_module_reaches_up() {
        let mut wrong = Vec::new();
        for (relative, module, source) in modules() {
            let own = layer_of(&module)
                .unwrap_or_else(|| panic!("`{module}` is in no layer: add it to LAYERS and ARCHITECTURE.md"));
            for used in named(&source) {
                if let Some(theirs) = layer_of(&used) {
                    if theirs > own {
                        wrong.push(format!(
                            "{} (layer {}) uses `{used}` (layer {})",
                            relative.display(),
                            own + 1,
                            theirs + 1
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "modules reaching up a layer:\n{}", wrong.join("\n"));
    }
}
