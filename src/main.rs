//! The `chat-orchestrator` binary: parse the command line and run the subcommand (`serve` by
//! default). See `cli` for the subcommands.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a turn allocates a lot of small, short-lived values
/// (template values, JSON), and under load glibc's arena locks and consolidation showed in the
/// profile (bench/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option numbers (`mi_option_e` in its `mimalloc.h`; the crate's `v2` feature).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Lean by default: commit arena memory as it is used and give freed pages back at once.
    // With mimalloc's defaults the idle server held 58–64 MiB instead of glibc's 28; with these
    // (and mimalloc v2 rather than v3) 36 MiB, for about 5% of the allocator's throughput gain.
    // Set before any other thread starts.
    // SAFETY: `mi_option_set` only stores an option value.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = chat_orchestrator::cli::Cli::parse();
    if !matches!(cli.command, None | Some(chat_orchestrator::cli::Command::Serve)) {
        exit_quietly_on_closed_pipe();
        plain_error_when_output_cannot_be_written();
    }
    match chat_orchestrator::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // for operators and stewards: one plain line, no backtrace
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `print!` panics when standard output cannot be written (a full disk, `> /dev/full`): say
/// so in one line and exit 1, as for any other error, instead of a panic and a backtrace.
fn plain_error_when_output_cannot_be_written() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") {
            eprintln!(
                "error: could not write the output: {}",
                message.trim_start_matches("failed printing to stdout: ")
            );
            std::process::exit(1);
        }
        default(info);
    }));
}

/// A command's output piped into `head` stops when `head` has read enough, as other command
/// line tools do, instead of panicking on the closed pipe. Rust ignores SIGPIPE so that a
/// server writing to a gone client gets an error, not death: the server keeps that.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: `signal` only sets the process's action for SIGPIPE; nothing else in this program
    // installs a SIGPIPE handler, so restoring the default cannot undo or race another one.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
