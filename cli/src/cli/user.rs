//! `handover office user …`: staff accounts for the office console
//! (`handover_office::staff`). Passwords come on standard input only, never
//! as arguments (which `ps` shows) and are never printed.

use std::io::Read;

use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use handover_office::staff::{self, Role};

use super::args::*;
use crate::error::{Error, Result};

/// A role, as the command line spells it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum RoleArg {
    /// Everything, user management included.
    Postmaster,
    /// Everything but revoking devices and managing users.
    Clerk,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Postmaster => Role::Postmaster,
            RoleArg::Clerk => Role::Clerk,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Make a staff account for the console.
    Add {
        #[command(flatten)]
        d: OfficeDir,
        /// The sign-in name (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
        /// What they may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the staff accounts (never their passwords).
    List {
        #[command(flatten)]
        d: OfficeDir,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Refuse an account from now on (its history stays).
    Disable {
        #[command(flatten)]
        d: OfficeDir,
        /// The sign-in name.
        #[arg(long)]
        name: String,
    },
    /// Set an account's password.
    Passwd {
        #[command(flatten)]
        d: OfficeDir,
        /// The sign-in name.
        #[arg(long)]
        name: String,
        /// Read the new password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .take(staff::MAX_PASSWORD as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|_| Error::Usage("--password-stdin: standard input is not text".into()))?;
    let line = text.lines().next().unwrap_or("");
    Ok(zeroize::Zeroizing::new(line.to_owned()))
}

pub(super) fn run(cmd: UserCommand, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        UserCommand::Add { d, name, role, .. } => {
            let password = password_from_stdin()?;
            d.open()?
                .add_user(&name, role.into(), &password, staff::COMMAND_LINE, now)?;
            println!("user {name} added ({})", Role::from(role).as_str());
        }
        UserCommand::List { d, json: as_json } => {
            let users = d.open()?.users()?;
            if as_json {
                println!("{}", json(&users)?);
            } else {
                println!("{:<24} {:<11} {:<9} CREATED", "NAME", "ROLE", "STATE");
                for u in users {
                    println!(
                        "{:<24} {:<11} {:<9} {}",
                        u.name,
                        u.role.as_str(),
                        if u.disabled { "disabled" } else { "enabled" },
                        u.created_at.format("%Y-%m-%d %H:%M")
                    );
                }
            }
        }
        UserCommand::Disable { d, name } => {
            d.open()?.disable_user(&name, staff::COMMAND_LINE, now)?;
            println!("user {name} disabled");
        }
        UserCommand::Passwd { d, name, .. } => {
            let password = password_from_stdin()?;
            d.open()?
                .set_password(&name, &password, staff::COMMAND_LINE, now)?;
            println!("password of {name} changed");
        }
    }
    Ok(())
}
