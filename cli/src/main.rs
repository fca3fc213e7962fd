//! The `handover` command line (see `handover --help`).

fn main() -> std::process::ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`handover … | head -1`) instead of failing to print.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default, before any
    // thread is started, has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    handover_cli::cli::main()
}
