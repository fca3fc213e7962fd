//! UPU S10 article numbers, e.g. `EE123456785IN`.
//!
//! Two letters (service indicator), eight serial digits, a check digit, and a
//! two-letter country code. The check digit weighs the serial digits by
//! `8 6 4 2 3 5 9 7`; with `S` their weighted sum, `C = 11 − (S mod 11)`,
//! where 10 becomes 0 and 11 becomes 5.
//!
//! ```
//! use handover_core::s10;
//! s10::validate("RR287043775IN").unwrap();
//! assert!(s10::validate("RR287043776IN").is_err());
//! assert_eq!(s10::check_digit(*b"28704377"), 5);
//! ```

use crate::error::{Error, Result};

const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];

/// The check digit of eight ASCII serial digits.
pub fn check_digit(serial: [u8; 8]) -> u8 {
    let sum: u32 = serial
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w)
        .sum();
    match 11 - sum % 11 {
        10 => 0,
        11 => 5,
        c => c as u8,
    }
}

/// Check the format and check digit of an S10 article number (upper case).
pub fn validate(article: &str) -> Result<()> {
    let b = article.as_bytes();
    if b.len() != 13 {
        return Err(Error::InvalidS10("must be 13 characters"));
    }
    if !b[..2].iter().all(u8::is_ascii_uppercase) {
        return Err(Error::InvalidS10("must start with two capital letters"));
    }
    if !b[2..11].iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidS10("characters 3 to 11 must be digits"));
    }
    if !b[11..].iter().all(u8::is_ascii_uppercase) {
        return Err(Error::InvalidS10("must end with a two-letter country code"));
    }
    let mut serial = [0u8; 8];
    serial.copy_from_slice(&b[2..10]);
    if b[10] - b'0' != check_digit(serial) {
        return Err(Error::InvalidS10("check digit does not match"));
    }
    Ok(())
}

/// Build a valid article number from a service indicator, a serial below
/// 10^8 and a country code (used by the demo and tests).
pub fn make(service: &str, serial: u32, country: &str) -> Result<String> {
    if serial >= 100_000_000 {
        return Err(Error::InvalidS10("serial must be below 100000000"));
    }
    let digits = format!("{serial:08}");
    let mut arr = [0u8; 8];
    arr.copy_from_slice(digits.as_bytes());
    let article = format!("{service}{digits}{}{country}", check_digit(arr));
    validate(&article)?;
    Ok(article)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_examples() {
        validate("RR287043775IN").unwrap();
        validate("EE123456785IN").unwrap();
        assert!(matches!(
            validate("RR287043774IN"),
            Err(Error::InvalidS10(_))
        ));
        assert!(validate("rr287043775IN").is_err());
        assert!(validate("RR28704377IN").is_err());
        assert!(validate("RR2870437X5IN").is_err());
    }

    #[test]
    fn special_remainders() {
        // S mod 11 == 1 -> C = 10 -> 0; S mod 11 == 0 -> C = 11 -> 5.
        for serial in 0..2000u32 {
            let a = make("CP", serial, "IN").unwrap();
            validate(&a).unwrap();
        }
        assert_eq!(check_digit(*b"00000000"), 5);
        // 8 * 7 = 56 ≡ 1 (mod 11) -> C = 10 -> 0.
        assert_eq!(check_digit(*b"00000008"), 0);
        // 3 * 5 = 15 ≡ 4 -> C = 7.
        assert_eq!(check_digit(*b"00000300"), 7);
    }

    #[test]
    fn single_digit_errors_are_caught_except_the_known_blind_spot() {
        // Every wrong check digit is caught. A wrong serial digit is caught
        // unless it moves S mod 11 between 0 and 6: both give check digit 5
        // (C = 11 -> 5 and C = 5), the S10 scheme's one collision.
        let good = "RR287043775IN";
        let mut undetected = 0;
        for pos in 2..11 {
            for d in b'0'..=b'9' {
                let mut b = good.as_bytes().to_vec();
                if b[pos] == d {
                    continue;
                }
                b[pos] = d;
                let s = String::from_utf8(b).unwrap();
                if validate(&s).is_ok() {
                    assert!(pos < 10 && s.as_bytes()[10] == b'5', "{s}");
                    undetected += 1;
                }
            }
        }
        // RR287043775IN has S = 231 ≡ 0; each serial position has exactly
        // one digit change that lands on S ≡ 6.
        assert!(undetected <= 8, "{undetected}");
    }
}
