//! Rebuild when the configuration that is embedded in the binary changes. `include_dir!` cannot
//! tell cargo which files it read (that needs a nightly compiler), so a new template or pipeline
//! would otherwise leave a stale embedded copy behind.

fn main() {
    for path in ["pipelines", "templates", "catalogue", "schemas", "udc_config.json", "playground"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
