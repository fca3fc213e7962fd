//! Rules the device and the office share, each defined once here: the clock
//! tolerance, time arithmetic that cannot overflow, identifier and text
//! checks, field limits, and constant-time comparison.
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use handover_core::rules::{check_id, later, clock_tolerance};
//! assert!(check_id("office_id", "PO-560001").is_ok());
//! assert!(check_id("office_id", "PO 560001").is_err());
//! // Time arithmetic saturates instead of panicking at the ends of time.
//! assert_eq!(later(DateTime::<Utc>::MAX_UTC, clock_tolerance()), DateTime::<Utc>::MAX_UTC);
//! ```

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};

/// How far a clock may stray, in minutes: for validity windows, for
/// detecting a clock set back, and for the office's own clock checks.
pub const CLOCK_TOLERANCE_MINUTES: i64 = 5;

/// [`CLOCK_TOLERANCE_MINUTES`] as a duration.
pub fn clock_tolerance() -> Duration {
    Duration::minutes(CLOCK_TOLERANCE_MINUTES)
}

/// `t + d`, saturating at the ends of representable time.
pub fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `t - d`, saturating at the ends of representable time.
pub fn earlier(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
}

/// Longest texts the manifest carries, in characters.
pub mod limits {
    /// Assignee (postman or vaccinator) names.
    pub const ASSIGNEE: usize = 80;
    /// Addressee names.
    pub const ADDRESSEE: usize = 120;
    /// Postal addresses.
    pub const ADDRESS: usize = 300;
    /// Beneficiary names.
    pub const NAME: usize = 120;
    /// Vaccine names.
    pub const VACCINE: usize = 60;
    /// Vaccination slots.
    pub const SLOT: usize = 40;
    /// Beneficiary references.
    pub const BENEFICIARY_REF: usize = 64;
    /// UPI payee names.
    pub const PAYEE_NAME: usize = 99;
    /// Identifiers ([`super::check_id`]).
    pub const ID: usize = 64;
}

/// Check an identifier (office, device, manifest, key, policy names): 1 to
/// 64 ASCII letters, digits or `-_./:`.
pub fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > limits::ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
    {
        return Err(Error::invalid(field, "1 to 64 letters, digits or -_./:"));
    }
    Ok(())
}

/// Check a free-text field: 1 to `max` characters, not blank, no control
/// characters.
pub fn check_text(field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(Error::invalid(field, "too long"));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Equality whose time depends only on the lengths (codes, tags).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arithmetic_saturates() {
        let max = DateTime::<Utc>::MAX_UTC;
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(later(max, Duration::days(1)), max);
        assert_eq!(earlier(min, Duration::days(1)), min);
        assert_eq!(later(min, -Duration::days(1)), min);
        assert_eq!(earlier(max, -Duration::days(1)), max);
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(later(t, Duration::seconds(5)).timestamp(), 1_800_000_005);
        assert_eq!(earlier(t, Duration::seconds(5)).timestamp(), 1_799_999_995);
    }

    #[test]
    fn ids_and_texts() {
        assert!(check_id("x", "a-b_c.d/e:f").is_ok());
        assert!(check_id("x", "").is_err());
        assert!(check_id("x", &"a".repeat(65)).is_err());
        assert!(check_text("x", "  ", 10).is_err());
        assert!(check_text("x", "a\nb", 10).is_err());
        assert!(check_text("x", "नमस्ते", 6).is_ok());
        assert!(constant_time_eq(b"1234", b"1234"));
        assert!(!constant_time_eq(b"1234", b"1235"));
        assert!(!constant_time_eq(b"1234", b"12345"));
    }
}
