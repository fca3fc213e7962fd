//! The people around the engine, through the `handover` binary, in one test
//! binary (one link instead of four: CI has 45 minutes):
//!
//! | module | what |
//! |---|---|
//! | `cli` | the mistakes operators make, and what the office and the device say (issue 17) |
//! | `deploy` | the systemd unit and the container recipe (issue 17) |
//! | `readme_day` | the README's worked day, run as written (issue 17) |
//! | `presence` | presence evidence against the address's DIGIPIN (issue 21) |

mod cli;
mod deploy;
mod presence;
mod readme_day;
