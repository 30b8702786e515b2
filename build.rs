//! Build facts for `/version` and `/capabilities`, and rebuilds when the configuration embedded in
//! the binary changes (`include_dir!` cannot tell cargo which files it read on a stable compiler,
//! so a new template or pipeline would otherwise leave a stale embedded copy behind).

use std::process::Command;

fn main() {
    for path in ["pipelines", "templates", "catalogue", "schemas", "udc_config.json", "playground", ".git/HEAD"] {
        println!("cargo:rerun-if-changed={path}");
    }
    // a container build has no .git: the Dockerfile passes the commit in
    println!("cargo:rerun-if-env-changed=CHAT_ORCHESTRATOR_GIT_COMMIT");
    let commit = std::env::var("CHAT_ORCHESTRATOR_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c != "unknown")
        .or_else(|| output("git", &["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let date = output("date", &["-u", "+%Y-%m-%d"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CHAT_ORCHESTRATOR_COMMIT={commit}");
    println!("cargo:rustc-env=CHAT_ORCHESTRATOR_BUILD_DATE={date}");
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned()).filter(|s| !s.is_empty())
}
