//! `handover office sms …`: the SMS outbox.

use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::error::{Error, Result};
use handover_office::sms;

use super::args::*;

#[derive(Debug, Subcommand)]
pub(super) enum SmsCommand {
    /// List the messages owed and what became of them (numbers masked, no texts).
    List {
        #[command(flatten)]
        d: OfficeDir,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send every queued message with the configured sender (office.toml).
    Send {
        #[command(flatten)]
        d: OfficeDir,
        /// Queue the failed messages again first.
        #[arg(long)]
        retry_failed: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one test message through the configured sender (the English
    /// post code template with stand-in values) and print the gateway's
    /// answer. Nothing is queued or recorded.
    Test {
        #[command(flatten)]
        d: OfficeDir,
        /// The mobile number to send it to.
        #[arg(long)]
        to: String,
    },
    /// Send the current code of one item again (the recipient did not get it).
    Resend {
        #[command(flatten)]
        d: OfficeDir,
        /// The item.
        #[arg(long)]
        reference: String,
    },
}

pub(super) fn run(cmd: SmsCommand, now: DateTime<Utc>) -> Result<()> {
    match cmd {
        SmsCommand::List { d, json: as_json } => {
            let rows = d.open()?.sms_list()?;
            if as_json {
                println!("{}", json(&rows)?);
            } else {
                println!(
                    "{:>6} {:<12} {:<16} {:<12} {:<6} {:<10} {:>8} {:>8} {:<16} REASON",
                    "ID",
                    "PURPOSE",
                    "REFERENCE",
                    "MOBILE",
                    "LANG",
                    "STATUS",
                    "ATTEMPTS",
                    "SEGMENTS",
                    "UPDATED"
                );
                for r in rows {
                    println!(
                        "{:>6} {:<12} {:<16} {:<12} {:<6} {:<10} {:>8} {:>8} {:<16} {}",
                        r.id,
                        r.purpose.as_str(),
                        r.reference,
                        r.mobile,
                        r.language,
                        r.status,
                        r.attempts,
                        r.segments,
                        r.updated_at
                            .with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M"),
                        r.reason.unwrap_or_default()
                    );
                }
            }
        }
        SmsCommand::Send {
            d,
            retry_failed,
            json: as_json,
        } => {
            let office = d.open()?;
            if retry_failed {
                office.sms_requeue_failed(now)?;
            }
            let sender = office.sender()?;
            let bar = super::office::progress_bar(office.sms_waiting()?, "sending SMS");
            let s = office.sms_send_with(&*sender, None, now, &|done| bar.set_position(done));
            bar.finish_and_clear();
            let s = s?;
            if as_json {
                println!("{}", json(&s)?);
            } else {
                println!(
                    "{} sent ({} segments), {} failed, {} attempts",
                    s.sent, s.segments, s.failed, s.attempts
                );
            }
            if let Some(why) = s.stopped {
                return Err(Error::SmsFailed {
                    failed: s.failed,
                    why: format!("stopped: {why}"),
                });
            }
            if s.failed > 0 {
                return Err(Error::SmsFailed {
                    failed: s.failed,
                    why: "see `handover office sms list` for the reasons".into(),
                });
            }
        }
        SmsCommand::Test { d, to } => {
            let office = d.open()?;
            let sender = office.sender()?;
            match office.sms_test(&*sender, &to)? {
                sms::Attempt::Sent { gateway_id } => println!(
                    "sent; the gateway's message id: {}",
                    gateway_id.as_deref().unwrap_or("(none given)")
                ),
                sms::Attempt::Refused(why) => {
                    return Err(Error::SmsFailed {
                        failed: 1,
                        why: format!("the gateway refused the test message: {why}"),
                    })
                }
                sms::Attempt::Later(why) => {
                    return Err(Error::SmsFailed {
                        failed: 1,
                        why: format!("the gateway did not take the test message: {why}"),
                    })
                }
            }
        }
        SmsCommand::Resend { d, reference } => {
            let office = d.open()?;
            let id = office.sms_resend(&reference, now)?;
            let sender = office.sender()?;
            let s = office.sms_send_some(&*sender, Some(&[id]), now)?;
            if s.failed > 0 {
                return Err(Error::SmsFailed {
                    failed: s.failed,
                    why: "see `handover office sms list` for the reason".into(),
                });
            }
            println!("the current code of {reference} was sent again (message {id})");
        }
    }
    Ok(())
}
