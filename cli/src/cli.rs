//! The `handover` command line. Command names, flags, exit codes and the
//! `--json` objects are a contract: other tools depend on them.
//!
//! Standard output carries results (bare values, tables or JSON); standard
//! error carries advice and errors. Exit codes: 0 success; 1 a code was not
//! accepted (`device verify`); 2 an error, with one line saying what is wrong
//! and what to do.
//!
//! One file per command group, as atuin's `command/client/*.rs`:
//!
//! | file | commands |
//! |---|---|
//! | `cli.rs` | the command tree, `main`, `demo` |
//! | `cli/office.rs` | `handover office …` |
//! | `cli/sms.rs` | `handover office sms …` |
//! | `cli/device.rs` | `handover device …` |
//! | `cli/load.rs` | `handover load` |
//! | `cli/args.rs` | shared arguments and helpers |
//!
//! `completions` and `man` are generated from this tree (clap_complete,
//! clap_mangen), so they never fall behind it.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::demo;
use crate::error::Result;

mod args;
mod backup;
mod device;
mod keys;
mod load;
mod office;
mod report;
mod sms;
mod user;

pub use args::{draw_qr, draw_qr_for};
pub use office::enrol_payload;

/// handover: offline proof of handover for doorstep delivery and vaccination.
#[derive(Debug, Parser)]
#[command(name = "handover", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole working day end to end on this machine.
    Demo {
        /// Keep the day's files here (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Bookings per device.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
        items: u32,
        /// Seed of the day's randomness.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The office: keys, enrolment, manifests, ingest, reports, the sync service.
    #[command(subcommand)]
    Office(office::OfficeCommand),
    /// Load the sync service: enrol simulated devices, drive their batches
    /// through HTTP concurrently, report events/s and batch latency, then
    /// check what the office holds against what was sent.
    Load(load::LoadArgs),
    /// A field device (postman's or vaccinator's handheld), offline.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Print the shell completion script: `handover completions bash >
    /// ~/.local/share/bash-completion/completions/handover`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (handover.1, handover-office-issue.1, …) into
    /// a directory, e.g. ~/.local/share/man/man1.
    Man {
        /// The directory to write them into (made if absent).
        #[arg(long)]
        out_dir: PathBuf,
    },
}

/// Run the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            for line in e.details() {
                eprintln!("  {line}");
            }
            match e.advice() {
                Some(advice) => eprintln!("error: {e}; {advice}"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = Utc::now();
    match cli.command {
        Command::Demo { dir, items, seed } => {
            let started = std::time::Instant::now();
            demo::run(&demo::DemoConfig {
                dir,
                items,
                seed,
                verbose: true,
            })?;
            println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
        }
        Command::Office(cmd) => office::run(cmd, now)?,
        Command::Load(args) => load::run(args)?,
        Command::Device(cmd) => return device::run(cmd, now),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "handover", &mut std::io::stdout());
        }
        Command::Man { out_dir } => {
            std::fs::create_dir_all(&out_dir).map_err(crate::error::io(&out_dir))?;
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::generate_to(cmd, &out_dir).map_err(crate::error::io(&out_dir))?;
            eprintln!("manual pages written to {}", out_dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
