//! Bookings CSV: the day's items as the booking counter recorded them.
//!
//! Post: `reference,service,addressee,address,mobile,cod_paise`
//! (reference an S10 article number; service `registered`, `speed_post` or
//! `parcel`; `cod_paise` empty or 0 when not cash on delivery).
//!
//! Vaccination: `reference,name,year_of_birth,vaccine,dose,slot,mobile`,
//! with an optional `beneficiary_ref` column (the reference is used when it
//! is absent).
//!
//! Both take an optional `language` column: `en`, `hi` or `hi+en`, the
//! language of the recipient's SMS (empty: the office's default).
//!
//! A header row is required; columns may come in any order; extra columns
//! are refused so a misspelt name cannot be silently ignored. The whole file
//! is checked before anything is issued; the first bad cell is reported by
//! line (1-based, the header is line 1) and column.
//!
//! ```
//! use handover_core::codes::Programme;
//! use handover_office::bookings::{parse, CodPayee};
//! let csv = "reference,service,addressee,address,mobile,cod_paise\n\
//!            RR287043775IN,parcel,A. Kumar,12 MG Road,9876543210,150000\n";
//! let rows = parse(Programme::Post, csv.as_bytes(), &CodPayee::default(), 2026).unwrap();
//! assert_eq!(rows[0].mobile, "9876543210");
//! let bad = csv.replace("775IN", "776IN");
//! let err = parse(Programme::Post, bad.as_bytes(), &CodPayee::default(), 2026).unwrap_err();
//! assert!(err.to_string().starts_with("bookings line 2, column reference"));
//! ```

use std::collections::{HashMap, HashSet};

use handover_core::codes::{check_reference, Programme};
use handover_core::manifest::{
    CashOnDelivery, ItemDetails, PostDetails, PostService, VaccinationDetails,
};
use handover_core::rules::{check_text, limits};
use handover_core::{s10, upi};

use crate::error::{Error, Result};

/// Where cash-on-delivery payments go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodPayee {
    /// Payee UPI id.
    pub upi: String,
    /// Payee name shown in the payer's app.
    pub name: String,
}

impl Default for CodPayee {
    fn default() -> Self {
        CodPayee {
            upi: "indiapost.cod@sbi".into(),
            name: "India Post".into(),
        }
    }
}

/// One booked item. `Debug` shows the line and reference only.
#[derive(Clone, PartialEq)]
pub struct Booking {
    /// Line in the file.
    pub line: u64,
    /// Article number or appointment id.
    pub reference: String,
    /// The full mobile number (stays at the office; the manifest gets the last digits).
    pub mobile: String,
    /// What goes into the manifest.
    pub details: ItemDetails,
    /// The language of the recipient's SMS, if the file says.
    pub language: Option<crate::language::Language>,
}

impl std::fmt::Debug for Booking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booking")
            .field("line", &self.line)
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

const POST: &[&str] = &[
    "reference",
    "service",
    "addressee",
    "address",
    "mobile",
    "cod_paise",
];
const VACCINATION: &[&str] = &[
    "reference",
    "name",
    "year_of_birth",
    "vaccine",
    "dose",
    "slot",
    "mobile",
];
const POST_OPTIONAL: &[&str] = &["language"];
const VACCINATION_OPTIONAL: &[&str] = &["beneficiary_ref", "language"];

/// Parse and check a bookings file. `this_year` bounds years of birth.
pub fn parse(
    programme: Programme,
    bytes: &[u8],
    cod: &CodPayee,
    this_year: i32,
) -> Result<Vec<Booking>> {
    let bad = |line: u64, column: &str, why: String| Error::Bookings {
        line,
        column: column.to_owned(),
        why,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(1, "-", "empty file: expected a header row".into()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| bad(1, "-", format!("unreadable header: {}", csv_why(&e))))?
        .clone();
    let (required, optional) = match programme {
        Programme::Post => (POST, POST_OPTIONAL),
        Programme::Vaccination => (VACCINATION, VACCINATION_OPTIONAL),
    };
    let mut index = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if !required.contains(&h) && !optional.contains(&h) {
            return Err(bad(
                1,
                h,
                format!("unknown column; expected {}", required.join(",")),
            ));
        }
        if index.insert(h.to_owned(), i).is_some() {
            return Err(bad(1, h, "column appears twice".into()));
        }
    }
    if let Some(missing) = required.iter().find(|c| !index.contains_key(**c)) {
        return Err(bad(
            1,
            missing,
            format!("missing column; expected {}", required.join(",")),
        ));
    }

    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(line, "-", csv_why(&e))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |col: &str| record.get(index[col]).unwrap_or("");
        let check =
            |col: &str, r: handover_core::Result<()>| r.map_err(|e| bad(line, col, e.to_string()));

        let reference = cell("reference").to_owned();
        match programme {
            Programme::Post => check("reference", s10::validate(&reference))?,
            Programme::Vaccination => check("reference", check_reference(&reference))?,
        }
        if !seen.insert(reference.clone()) {
            return Err(bad(line, "reference", "appears twice in this file".into()));
        }
        let mobile = normalise_mobile(cell("mobile")).ok_or_else(|| {
            bad(
                line,
                "mobile",
                "must be a 10-digit Indian mobile number".into(),
            )
        })?;
        let details = match programme {
            Programme::Post => {
                let service: PostService = cell("service")
                    .parse()
                    .map_err(|e: handover_core::Error| bad(line, "service", e.to_string()))?;
                check(
                    "addressee",
                    check_text("addressee", cell("addressee"), limits::ADDRESSEE),
                )?;
                check(
                    "address",
                    check_text("address", cell("address"), limits::ADDRESS),
                )?;
                let amount = cell("cod_paise");
                let amount: u64 = if amount.is_empty() {
                    0
                } else {
                    amount.parse().map_err(|_| {
                        bad(
                            line,
                            "cod_paise",
                            "must be a whole number of paise, or empty".into(),
                        )
                    })?
                };
                if amount > upi::MAX_AMOUNT_PAISE {
                    return Err(bad(line, "cod_paise", "more than one crore rupees".into()));
                }
                ItemDetails::Post(PostDetails {
                    service,
                    addressee: cell("addressee").to_owned(),
                    address: cell("address").to_owned(),
                    mobile_last_digits: mobile[mobile.len() - 4..].to_owned(),
                    cod: (amount > 0).then(|| CashOnDelivery {
                        amount_paise: amount,
                        payee_upi: cod.upi.clone(),
                        payee_name: cod.name.clone(),
                    }),
                })
            }
            Programme::Vaccination => {
                check("name", check_text("name", cell("name"), limits::NAME))?;
                check(
                    "vaccine",
                    check_text("vaccine", cell("vaccine"), limits::VACCINE),
                )?;
                check("slot", check_text("slot", cell("slot"), limits::SLOT))?;
                let year: u16 = cell("year_of_birth")
                    .parse()
                    .ok()
                    .filter(|y| (1900..=this_year).contains(&i32::from(*y)))
                    .ok_or_else(|| {
                        bad(
                            line,
                            "year_of_birth",
                            format!("must be a year from 1900 to {this_year}"),
                        )
                    })?;
                let dose: u8 = cell("dose")
                    .parse()
                    .ok()
                    .filter(|d| (1..=9).contains(d))
                    .ok_or_else(|| bad(line, "dose", "must be a dose number from 1 to 9".into()))?;
                let beneficiary_ref = index
                    .get("beneficiary_ref")
                    .and_then(|i| record.get(*i))
                    .filter(|s| !s.is_empty())
                    .unwrap_or(&reference)
                    .to_owned();
                check(
                    "beneficiary_ref",
                    check_text("beneficiary_ref", &beneficiary_ref, limits::BENEFICIARY_REF),
                )?;
                ItemDetails::Vaccination(VaccinationDetails {
                    beneficiary_ref,
                    name: cell("name").to_owned(),
                    year_of_birth: year,
                    vaccine: cell("vaccine").to_owned(),
                    dose,
                    slot: cell("slot").to_owned(),
                })
            }
        };
        let language = match index.get("language").and_then(|i| record.get(*i)) {
            None | Some("") => None,
            Some(l) => Some(
                l.parse()
                    .map_err(|_| bad(line, "language", "must be en, hi or hi+en".into()))?,
            ),
        };
        out.push(Booking {
            line,
            reference,
            mobile,
            details,
            language,
        });
    }
    if out.is_empty() {
        return Err(bad(2, "-", "no bookings after the header".into()));
    }
    Ok(out)
}

/// `+91 98765 43210`, `098765 43210` or `9876543210` → `9876543210`.
pub fn normalise_mobile(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits
        .strip_prefix("+91")
        .or_else(|| digits.strip_prefix("0").filter(|d| d.len() == 10))
        .unwrap_or(&digits);
    (digits.len() == 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(digits.as_bytes()[0], b'6'..=b'9'))
    .then(|| digits.to_owned())
}

fn csv_why(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("row has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => "not a readable CSV row".into(),
    }
}
