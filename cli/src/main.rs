//! The `handover` command line (see `handover --help`).

fn main() -> std::process::ExitCode {
    handover_cli::cli::main()
}
