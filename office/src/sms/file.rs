//! The SMS file: `mobile,reference,message` rows, for offices without a
//! gateway (the `file` sender) and for `office issue --sms-out`. Created
//! mode 0600 with a header, appended to, never through a symlink, never
//! overwritten: an unsent SMS file keeps its rows.

use serde::Serialize;

use crate::error::{Error, Result};

/// One SMS to send. The message holds the code.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Sms {
    /// Full mobile number.
    pub mobile: String,
    /// The item.
    pub reference: String,
    /// The text, code included.
    pub message: String,
    /// The code the text carries, as the recipient reads it: for the
    /// simulations (the demo, the load generator) and the tests, which
    /// would otherwise take it back out of the wording. Never serialised.
    #[serde(skip)]
    pub code: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// Append SMS rows as `mobile,reference,message` to `path`, creating it
/// (mode 0600, with a header) if absent. Never follows a symlink and never
/// overwrites what is there: an unsent SMS file keeps its rows.
pub fn write_sms_csv(path: &std::path::Path, sms: &[Sms]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let encode = |_| Error::Encoding("SMS file");
    let exists = crate::files::append_private(path, b"")?;
    if !exists {
        w.write_record(["mobile", "reference", "message"])
            .map_err(encode)?;
    }
    for s in sms {
        w.write_record([&s.mobile, &s.reference, &s.message])
            .map_err(encode)?;
    }
    let bytes = w.into_inner().map_err(|_| Error::Encoding("SMS file"))?;
    crate::files::append_private(path, &bytes)?;
    Ok(())
}
