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
//! language of the recipient's SMS (empty: the office's default); and an
//! optional `digipin` column: the address's DIGIPIN (for vaccination, the
//! session site's), hyphens optional, against which the office places the
//! fixes of doorstep events (presence evidence).
//!
//! A header row is required; columns may come in any order, names in any
//! case; extra columns are refused so a misspelt name cannot be silently
//! ignored. The whole file is checked before anything is issued; every bad
//! row (up to [`MAX_PROBLEMS`]) is reported by line (1-based, the header is
//! line 1) and column, with what to fix.
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

/// Where cash-on-delivery payments go. The default is "not set up": COD
/// items then carry no payee, the device shows no UPI request for them, and
/// the amount is collected in cash. There is no made-up payee to fall back
/// on: money paid to a wrong UPI id is lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodPayee {
    /// Payee UPI id; empty when not set up.
    pub upi: String,
    /// Payee name shown in the payer's app; empty when not set up.
    pub name: String,
}

impl CodPayee {
    /// Whether UPI payments have a payee.
    pub fn is_set_up(&self) -> bool {
        !self.upi.is_empty()
    }

    /// Check a payee before it is recorded: a valid UPI id with a name, or
    /// both empty (not set up).
    pub fn check(&self) -> Result<()> {
        if self.upi.is_empty() && self.name.is_empty() {
            return Ok(());
        }
        handover_core::upi::validate_vpa(&self.upi)?;
        check_text("payee name", &self.name, limits::PAYEE_NAME)?;
        Ok(())
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
    /// The DIGIPIN of the address (for vaccination, the session site's),
    /// if the file gives one: ten symbols, no hyphens.
    pub digipin: Option<String>,
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
const POST_OPTIONAL: &[&str] = &["language", "digipin"];
const VACCINATION_OPTIONAL: &[&str] = &["beneficiary_ref", "language", "digipin"];

/// Most row problems one error lists; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

/// One bad row of a bookings file: where, and what to fix. Never the
/// cell's value (it may be a name or a mobile number).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Line in the file (1-based; the header is line 1).
    pub line: u64,
    /// Column name (`-` for the row as a whole).
    pub column: String,
    /// What is wrong and what to fix.
    pub why: String,
}

/// Parse and check a bookings file. `this_year` bounds years of birth.
///
/// A header problem is reported alone ([`Error::Bookings`]); bad rows are
/// all reported, up to [`MAX_PROBLEMS`] ([`Error::BookingRows`]), the
/// first bad cell of each. What spreadsheets add is accepted: a byte-order
/// mark, header and service names in any case (`Speed Post`), rows left
/// empty, `91` before a 10-digit mobile number.
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
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
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
        let name = h.to_ascii_lowercase().replace(' ', "_");
        if name.is_empty() && i + 1 == headers.len() {
            // A spreadsheet's trailing empty column.
            continue;
        }
        if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            return Err(bad(
                1,
                h,
                format!("unknown column; expected {}", required.join(",")),
            ));
        }
        if index.insert(name, i).is_some() {
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
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut seen = HashSet::new();
    for record in reader.records() {
        let row = match record {
            Ok(record) if record.iter().all(str::is_empty) => continue,
            Ok(record) => parse_row(programme, &record, &index, cod, this_year, &mut seen),
            Err(e) => Err(Problem {
                line: e.position().map_or(0, |p| p.line()),
                column: "-".into(),
                why: csv_why(&e),
            }),
        };
        match row {
            Ok(booking) => out.push(booking),
            Err(p) if problems.len() < MAX_PROBLEMS => problems.push(p),
            Err(_) => more += 1,
        }
    }
    if !problems.is_empty() {
        return Err(Error::BookingRows { problems, more });
    }
    if out.is_empty() {
        return Err(bad(2, "-", "no bookings after the header".into()));
    }
    Ok(out)
}

/// One row, or its first bad cell.
fn parse_row(
    programme: Programme,
    record: &csv::StringRecord,
    index: &HashMap<String, usize>,
    cod: &CodPayee,
    this_year: i32,
    seen: &mut HashSet<String>,
) -> std::result::Result<Booking, Problem> {
    let line = record.position().map_or(0, |p| p.line());
    let bad = |column: &str, why: String| Problem {
        line,
        column: column.to_owned(),
        why,
    };
    let cell = |col: &str| index.get(col).and_then(|i| record.get(*i)).unwrap_or("");
    let check = |col: &str, r: handover_core::Result<()>| r.map_err(|e| bad(col, e.to_string()));

    let reference = cell("reference").to_owned();
    match programme {
        Programme::Post => check("reference", s10::validate(&reference))?,
        Programme::Vaccination => check("reference", check_reference(&reference))?,
    }
    if !seen.insert(reference.clone()) {
        return Err(bad("reference", "appears twice in this file".into()));
    }
    let mobile = normalise_mobile(cell("mobile")).ok_or_else(|| {
        let text = cell("mobile");
        if text.contains(['E', 'e']) && text.contains('.') {
            bad(
                "mobile",
                "the spreadsheet wrote the number in scientific notation (like 9.87E+09), \
                 which loses digits: format the column as text and export again"
                    .into(),
            )
        } else {
            bad("mobile", "must be a 10-digit Indian mobile number".into())
        }
    })?;
    let details = match programme {
        Programme::Post => {
            let service: PostService = cell("service")
                .to_ascii_lowercase()
                .replace([' ', '-'], "_")
                .parse()
                .map_err(|e: handover_core::Error| bad("service", e.to_string()))?;
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
                        "cod_paise",
                        "must be a whole number of paise, or empty".into(),
                    )
                })?
            };
            if amount > upi::MAX_AMOUNT_PAISE {
                return Err(bad("cod_paise", "more than one crore rupees".into()));
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
                        "year_of_birth",
                        format!("must be a year from 1900 to {this_year}"),
                    )
                })?;
            let dose: u8 = cell("dose")
                .parse()
                .ok()
                .filter(|d| (1..=9).contains(d))
                .ok_or_else(|| bad("dose", "must be a dose number from 1 to 9".into()))?;
            let beneficiary_ref = Some(cell("beneficiary_ref"))
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
    let language = match cell("language") {
        "" => None,
        l => Some(
            l.to_ascii_lowercase()
                .parse()
                .map_err(|_| bad("language", "must be en, hi or hi+en".into()))?,
        ),
    };
    let digipin = match cell("digipin") {
        "" => None,
        pin => Some(
            handover_core::digipin::normalise(pin).map_err(|e| bad("digipin", format!("{e}")))?,
        ),
    };
    Ok(Booking {
        line,
        reference,
        mobile,
        details,
        language,
        digipin,
    })
}

/// `+91 98765 43210`, `919876543210`, `098765 43210` or `9876543210` →
/// `9876543210`.
pub fn normalise_mobile(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits
        .strip_prefix("+91")
        .or_else(|| digits.strip_prefix("0").filter(|d| d.len() == 10))
        .or_else(|| digits.strip_prefix("91").filter(|d| d.len() == 10))
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
