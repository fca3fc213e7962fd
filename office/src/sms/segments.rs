//! How many SMS segments a text costs: what the office pays for.
//!
//! * **GSM-7** (3GPP TS 23.038) when every character is in the default
//!   alphabet or its extension table; an extension character (`^ { } \ [ ~
//!   ] | €` and form feed) takes two septets (an escape and the character).
//!   One segment holds 160 septets; a longer text goes in parts of 153, and
//!   an escape pair is never split across parts.
//! * **UCS-2** otherwise (Hindi, for one): one segment holds 70 UTF-16 code
//!   units; a longer text goes in parts of 67, and a surrogate pair is never
//!   split.
//!
//! ```
//! use handover_office::sms::segments::{count, Encoding};
//! assert_eq!(count(&"a".repeat(160)), (Encoding::Gsm7, 1));
//! assert_eq!(count(&"a".repeat(161)), (Encoding::Gsm7, 2));
//! assert_eq!(count("नमस्ते"), (Encoding::Ucs2, 1));
//! ```

use serde::Serialize;

/// How a text is encoded on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The GSM 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    Ucs2,
}

const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets a character takes in GSM-7, or `None` if it has no GSM-7 form.
fn septets(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Pack units of the given sizes into parts of at most `cap`, never
/// splitting a unit.
fn parts(sizes: impl Iterator<Item = usize>, cap: usize) -> usize {
    let (mut parts, mut used) = (1, 0);
    for s in sizes {
        if used + s > cap {
            parts += 1;
            used = 0;
        }
        used += s;
    }
    parts
}

/// The encoding of `text` and the segments it takes (0 for an empty text).
pub fn count(text: &str) -> (Encoding, usize) {
    if text.is_empty() {
        return (Encoding::Gsm7, 0);
    }
    if let Some(sizes) = text.chars().map(septets).collect::<Option<Vec<usize>>>() {
        let total: usize = sizes.iter().sum();
        let n = if total <= 160 {
            1
        } else {
            parts(sizes.into_iter(), 153)
        };
        return (Encoding::Gsm7, n);
    }
    let units: Vec<usize> = text.chars().map(char::len_utf16).collect();
    let total: usize = units.iter().sum();
    let n = if total <= 70 {
        1
    } else {
        parts(units.into_iter(), 67)
    };
    (Encoding::Ucs2, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(count(""), (Encoding::Gsm7, 0));
        assert_eq!(count("Hello"), (Encoding::Gsm7, 1));
        assert_eq!(count(&"a".repeat(160)).1, 1);
        assert_eq!(count(&"a".repeat(161)).1, 2);
        assert_eq!(count(&"a".repeat(306)).1, 2);
        assert_eq!(count(&"a".repeat(307)).1, 3);
        assert_eq!(count(&"a".repeat(459)).1, 3);
        assert_eq!(count(&"a".repeat(460)).1, 4);
    }

    #[test]
    fn gsm7_escapes_count_twice_and_are_never_split() {
        // 80 euro signs are 160 septets: one segment.
        assert_eq!(count(&"€".repeat(80)), (Encoding::Gsm7, 1));
        // 81 are 162 septets: parts of 153 hold 76 pairs (152 septets), so
        // two parts, not a pair torn in half.
        assert_eq!(count(&"€".repeat(81)), (Encoding::Gsm7, 2));
        // 152 plain septets then a pair: the pair would straddle 153, so it
        // starts the second part; 152 + 2 + 7 = 161 > 160.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(7));
        assert_eq!(count(&text), (Encoding::Gsm7, 2));
        // 153 + 153 + 1 with an escape at the join still makes three parts.
        let text = format!("{}{{{}", "a".repeat(152), "a".repeat(155));
        assert_eq!(count(&text), (Encoding::Gsm7, 3));
    }

    #[test]
    fn ucs2_boundaries() {
        let deva = "क";
        assert_eq!(count(&deva.repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(count(&deva.repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(count(&deva.repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(count(&deva.repeat(135)), (Encoding::Ucs2, 3));
        // One character outside GSM-7 turns the whole text to UCS-2.
        assert_eq!(count(&format!("{}क", "a".repeat(69))), (Encoding::Ucs2, 1));
        assert_eq!(count(&format!("{}क", "a".repeat(70))), (Encoding::Ucs2, 2));
        // A surrogate pair is two units and is never split.
        let text = format!("{}😀", "a".repeat(66));
        assert_eq!(count(&text), (Encoding::Ucs2, 1), "68 units fit in 70");
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(3));
        // 66 + 2 + 3 = 71 > 70: parts of 67 cannot take the pair at 66, so
        // it moves to the second part.
        assert_eq!(count(&text), (Encoding::Ucs2, 2));
    }
}
