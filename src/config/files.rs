//! The configuration as a set of in-memory files.
//!
//! The loader never touches the file system: it is handed a [`ConfigFiles`] (read from a
//! directory, or the copy embedded in the binary), which keeps loading pure and lets tests
//! overlay a broken file on the shipped configuration.

use std::collections::BTreeMap;
use std::path::Path;

use include_dir::{include_dir, Dir};

/// The configuration shipped in this repository, compiled into the binary so that it runs with
/// no files around it.
static EMBEDDED: [(&str, Dir<'static>); 3] = [
    ("pipelines", include_dir!("$CARGO_MANIFEST_DIR/pipelines")),
    ("templates", include_dir!("$CARGO_MANIFEST_DIR/templates")),
    ("catalogue", include_dir!("$CARGO_MANIFEST_DIR/catalogue")),
];

/// Folders (relative to the configuration root) the loader reads. `schemas/` is not among them:
/// the schemas describe what this build understands, so they are compiled into it.
pub const CONFIG_FOLDERS: [&str; 3] = ["pipelines", "templates", "catalogue"];

/// Path of the droplet catalogue relative to the root.
pub const CATALOGUE_FILE: &str = "catalogue/droplets.yaml";

/// The stewards' synonyms and the mesh's nouns, beside the droplets: what the assistant knows
/// of its world's words. Optional: without it there are no synonyms and no such nouns.
pub const VOCABULARY_FILE: &str = "catalogue/vocabulary.yaml";

/// This droplet's UDC identity, at the root of the repository.
pub const UDC_CONFIG_FILE: &str = "udc_config.json";

static EMBEDDED_UDC_CONFIG: &str = include_str!("../../udc_config.json");

/// Text files by path relative to the configuration root, always with `/` separators.
#[derive(Debug, Clone, Default)]
pub struct ConfigFiles {
    files: BTreeMap<String, String>,
    /// Where the files came from, for start-up logs and traces.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct ReadError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl ConfigFiles {
    /// The configuration embedded at build time.
    pub fn embedded() -> Self {
        let mut files = BTreeMap::new();
        for (folder, dir) in &EMBEDDED {
            collect_embedded(dir, folder, &mut files);
        }
        files.insert(UDC_CONFIG_FILE.to_owned(), EMBEDDED_UDC_CONFIG.to_owned());
        ConfigFiles { files, origin: "embedded".to_owned() }
    }

    /// Reads the configuration folders under `root`. Missing folders are simply empty; the
    /// compile pass reports what that leaves missing.
    pub fn from_dir(root: &Path) -> Result<Self, ReadError> {
        let mut files = BTreeMap::new();
        for folder in CONFIG_FOLDERS {
            let dir = root.join(folder);
            if dir.is_dir() {
                read_dir_into(&dir, folder, &mut files)?;
            }
        }
        let udc_config = root.join(UDC_CONFIG_FILE);
        if udc_config.is_file() {
            let text = std::fs::read_to_string(&udc_config)
                .map_err(|source| ReadError { path: udc_config.display().to_string(), source })?;
            files.insert(UDC_CONFIG_FILE.to_owned(), text);
        }
        Ok(ConfigFiles { files, origin: root.display().to_string() })
    }

    /// Builds a set from explicit `(path, text)` pairs (tests, tools).
    pub fn from_pairs<P: Into<String>, T: Into<String>>(pairs: impl IntoIterator<Item = (P, T)>) -> Self {
        let files = pairs.into_iter().map(|(p, t)| (p.into(), t.into())).collect();
        ConfigFiles { files, origin: "memory".to_owned() }
    }

    /// Adds or replaces files; the overlay wins.
    pub fn overlay(mut self, other: ConfigFiles) -> Self {
        self.files.extend(other.files);
        self
    }

    /// Removes one file (tests use it to show what a missing file does).
    pub fn remove(&mut self, path: &str) -> Option<String> {
        self.files.remove(path)
    }

    /// Every file, by path, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(path, text)| (path.as_str(), text.as_str()))
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Files under `folder/` whose name ends with `suffix`, in path order.
    pub fn under<'a>(&'a self, folder: &'a str, suffix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let prefix = format!("{folder}/");
        self.files
            .iter()
            .filter(move |(path, _)| path.starts_with(&prefix) && path.ends_with(suffix))
            .map(|(path, text)| (path.as_str(), text.as_str()))
    }
}

fn collect_embedded(dir: &Dir<'static>, folder: &str, files: &mut BTreeMap<String, String>) {
    for file in dir.files() {
        if let Some(text) = file.contents_utf8() {
            let relative = file.path().to_string_lossy().replace('\\', "/");
            files.insert(format!("{folder}/{relative}"), text.to_owned());
        }
    }
    for sub in dir.dirs() {
        collect_embedded(sub, folder, files);
    }
}

fn read_dir_into(dir: &Path, prefix: &str, files: &mut BTreeMap<String, String>) -> Result<(), ReadError> {
    let wrap = |path: &Path, source| ReadError { path: path.display().to_string(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(|e| wrap(dir, e))?.collect::<Result<_, _>>().map_err(|e| wrap(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // editor swap files and the like
        }
        let relative = format!("{prefix}/{name}");
        if path.is_dir() {
            read_dir_into(&path, &relative, files)?;
        } else {
            let text = std::fs::read_to_string(&path).map_err(|e| wrap(&path, e))?;
            files.insert(relative, text);
        }
    }
    Ok(())
}
