//! UPI collect requests for cash-on-delivery: the NPCI `upi://pay` deep link
//! and its QR code.
//!
//! The URI carries `pa` (payee VPA), `pn` (payee name), `am` (amount in
//! rupees with two decimals), `cu=INR`, `tr` (a transaction reference unique
//! per item and attempt, so a payment can be matched to one request) and `tn`
//! (a note). Values are percent-encoded. [`UpiRequest::qr_modules`] gives the
//! QR module matrix for an app to draw; the library draws nothing itself.
//!
//! ```
//! use handover_core::upi::UpiRequest;
//! let r = UpiRequest::new("merchant@sbi", "India Post", 12_345, "RR287043775IN-1", "COD RR287043775IN").unwrap();
//! assert_eq!(
//!     r.uri(),
//!     "upi://pay?pa=merchant@sbi&pn=India%20Post&am=123.45&cu=INR&tr=RR287043775IN-1&tn=COD%20RR287043775IN"
//! );
//! let qr = r.qr_modules().unwrap();
//! assert_eq!(qr.modules.len(), qr.width * qr.width);
//! ```

use serde::Serialize;

use crate::error::{Error, Result};

/// Largest amount a request may carry: one crore rupees, in paise.
pub const MAX_AMOUNT_PAISE: u64 = 1_000_000_000;

/// Validate a UPI id (VPA): `handle@psp`, handle of letters, digits, `.`,
/// `-`, `_` (2 to 64), PSP of letters (2 to 32).
pub fn validate_vpa(vpa: &str) -> Result<()> {
    let (handle, psp) = vpa
        .split_once('@')
        .ok_or(Error::invalid("upi id", "must be handle@psp"))?;
    let handle_ok = (2..=64).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    let psp_ok = (2..=32).contains(&psp.len()) && psp.bytes().all(|b| b.is_ascii_alphabetic());
    if handle_ok && psp_ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "upi id",
            "must be handle@psp with letters, digits, '.', '-', '_'",
        ))
    }
}

/// Validate a UPI transaction reference as the payer's app shows it: the
/// 12-digit UTR (RRN) that NPCI assigns to every UPI transaction.
pub fn validate_utr(txn_ref: &str) -> Result<()> {
    if txn_ref.len() == UTR_DIGITS && txn_ref.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "UPI transaction reference",
            "must be the 12-digit UTR the payer's app shows",
        ))
    }
}

/// Digits in a UPI transaction reference (UTR).
pub const UTR_DIGITS: usize = 12;

/// A payment request for one item and attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpiRequest {
    /// Payee VPA.
    pub payee_vpa: String,
    /// Payee name shown in the payer's app.
    pub payee_name: String,
    /// Amount in paise.
    pub amount_paise: u64,
    /// Transaction reference, unique per item and attempt (at most 35 characters).
    pub txn_ref: String,
    /// Note shown to the payer.
    pub note: String,
}

/// A QR code as a square of modules, row-major, `true` = dark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrModules {
    /// Modules per side.
    pub width: usize,
    /// `width * width` modules, row by row.
    pub modules: Vec<bool>,
}

impl QrModules {
    /// The modules of `code`: what a screen or a terminal draws.
    pub fn of(code: &qrcode::QrCode) -> QrModules {
        QrModules {
            width: code.width(),
            modules: code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect(),
        }
    }
}

impl UpiRequest {
    /// A validated request.
    pub fn new(
        payee_vpa: &str,
        payee_name: &str,
        amount_paise: u64,
        txn_ref: &str,
        note: &str,
    ) -> Result<UpiRequest> {
        validate_vpa(payee_vpa)?;
        if amount_paise == 0 || amount_paise > MAX_AMOUNT_PAISE {
            return Err(Error::invalid(
                "amount",
                "must be 1 paisa to 1 crore rupees",
            ));
        }
        if txn_ref.is_empty()
            || txn_ref.len() > 35
            || !txn_ref
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::invalid("txn_ref", "1 to 35 letters, digits or '-'"));
        }
        if payee_name.len() > 99 || note.len() > 80 {
            return Err(Error::invalid("payee name or note", "too long"));
        }
        Ok(UpiRequest {
            payee_vpa: payee_vpa.to_owned(),
            payee_name: payee_name.to_owned(),
            amount_paise,
            txn_ref: txn_ref.to_owned(),
            note: note.to_owned(),
        })
    }

    /// The amount as NPCI expects it: rupees with two decimals.
    pub fn amount_rupees(&self) -> String {
        format!("{}.{:02}", self.amount_paise / 100, self.amount_paise % 100)
    }

    /// The `upi://pay` deep link.
    pub fn uri(&self) -> String {
        format!(
            "upi://pay?pa={}&pn={}&am={}&cu=INR&tr={}&tn={}",
            encode(&self.payee_vpa),
            encode(&self.payee_name),
            self.amount_rupees(),
            encode(&self.txn_ref),
            encode(&self.note)
        )
    }

    /// The QR code of [`uri`](Self::uri), error correction level M.
    pub fn qr_modules(&self) -> Result<QrModules> {
        let code = qrcode::QrCode::with_error_correction_level(self.uri(), qrcode::EcLevel::M)
            .map_err(|_| Error::Encoding("UPI URI does not fit a QR code"))?;
        Ok(QrModules::of(&code))
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters and `@`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utr_validation() {
        assert!(validate_utr("612345678901").is_ok());
        for bad in [
            "",
            "61234567890",
            "6123456789012",
            "61234567890a",
            "ABC",
            "٦١٢٣٤٥٦٧٨٩٠١",
        ] {
            assert!(validate_utr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vpa_validation() {
        validate_vpa("india.post@sbi").unwrap();
        assert!(validate_vpa("nope").is_err());
        assert!(validate_vpa("a@b").is_err());
        assert!(validate_vpa("x y@sbi").is_err());
        assert!(validate_vpa("abc@sb1").is_err());
    }

    #[test]
    fn encoding_and_amounts() {
        let r = UpiRequest::new("pp@upi", "A&B=C", 5, "T1", "n").unwrap();
        assert!(r.uri().contains("pn=A%26B%3DC"));
        assert!(r.uri().contains("am=0.05"));
        assert!(UpiRequest::new("pp@upi", "x", 0, "T1", "n").is_err());
        assert!(UpiRequest::new("pp@upi", "x", 1, "T 1", "n").is_err());
        assert!(UpiRequest::new("pp@upi", "x", 1, &"T".repeat(36), "n").is_err());
    }

    #[test]
    fn qr_has_finder_patterns() {
        let r = UpiRequest::new("pp@upi", "x", 100, "T1", "n").unwrap();
        let qr = r.qr_modules().unwrap();
        // Top-left finder: a dark 7x7 ring.
        for i in 0..7 {
            assert!(qr.modules[i]);
            assert!(qr.modules[i * qr.width]);
        }
        assert!(!qr.modules[qr.width + 1]);
    }
}
