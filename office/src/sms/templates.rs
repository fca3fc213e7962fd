//! SMS templates: data, one file per language (`office/templates/*.toml`),
//! checked when they load: every programme has every purpose it needs, and
//! no template names a placeholder the renderer does not know.

use std::collections::BTreeMap;

use handover_core::codes::{Code, Programme};
use serde::Deserialize;

use super::Purpose;
use crate::error::{Error, Result};
use crate::language::Language;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "reference",
    "code",
    "when",
    "vaccine",
    "dose",
    "beneficiary",
    "care",
];

/// The files: `(language, text)`.
pub const FILES: &[(&str, &str)] = &[
    ("en", include_str!("../../templates/en.toml")),
    ("hi", include_str!("../../templates/hi.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    post: Post,
    vaccination: Vaccination,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Post {
    code: String,
    confirmation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vaccination {
    code: String,
    confirmation: String,
    certificate: String,
}

/// What fills the placeholders. `Debug` hides the code.
#[derive(Clone, Default)]
pub struct Values<'a> {
    /// Article number or appointment id.
    pub reference: &'a str,
    /// The code (code messages only).
    pub code: Option<&'a Code>,
    /// When it was handed over, as the recipient reads it.
    pub when: Option<String>,
    /// Vaccine.
    pub vaccine: Option<&'a str>,
    /// Dose number.
    pub dose: Option<u8>,
    /// Beneficiary reference.
    pub beneficiary: Option<&'a str>,
    /// Customer-care number.
    pub care: &'a str,
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "reference" => Some(self.reference.to_owned()),
            "code" => self.code.map(|c| c.as_str().to_owned()),
            "when" => self.when.clone(),
            "vaccine" => self.vaccine.map(str::to_owned),
            "dose" => self.dose.map(|d| d.to_string()),
            "beneficiary" => self.beneficiary.map(str::to_owned),
            "care" => Some(self.care.to_owned()),
            _ => None,
        }
    }
}

/// The loaded templates.
#[derive(Clone, Debug)]
pub struct Templates {
    texts: BTreeMap<(Programme, Purpose, &'static str), String>,
}

/// The placeholders `text` names, in order.
pub fn placeholders(text: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or(Error::Template("a '{' is not closed"))?;
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(Error::Template("a '}' has no '{'"));
    }
    Ok(out)
}

impl Templates {
    /// The templates shipped in `office/templates/`.
    pub fn builtin() -> Result<Templates> {
        Templates::parse(FILES)
    }

    /// Templates from `(language, toml)` pairs, checked.
    pub fn parse(files: &[(&'static str, &str)]) -> Result<Templates> {
        let mut texts = BTreeMap::new();
        for (lang, toml_text) in files {
            let file: File = toml::from_str(toml_text)
                .map_err(|_| Error::Template("a template file is not the expected TOML"))?;
            let entries = [
                (Programme::Post, Purpose::Code, file.post.code),
                (
                    Programme::Post,
                    Purpose::Confirmation,
                    file.post.confirmation,
                ),
                (Programme::Vaccination, Purpose::Code, file.vaccination.code),
                (
                    Programme::Vaccination,
                    Purpose::Confirmation,
                    file.vaccination.confirmation,
                ),
                (
                    Programme::Vaccination,
                    Purpose::Certificate,
                    file.vaccination.certificate,
                ),
            ];
            for (programme, purpose, text) in entries {
                for p in placeholders(&text)? {
                    if !PLACEHOLDERS.contains(&p) {
                        return Err(Error::Template("a template names an unknown placeholder"));
                    }
                }
                if purpose == Purpose::Code && !text.contains("{code}") {
                    return Err(Error::Template("a code template does not carry {code}"));
                }
                texts.insert((programme, purpose, *lang), text);
            }
        }
        Ok(Templates { texts })
    }

    /// The text of one message, in `language` (both, Hindi first, for `hi+en`).
    pub fn render(
        &self,
        programme: Programme,
        purpose: Purpose,
        language: Language,
        values: &Values<'_>,
    ) -> Result<String> {
        let parts: Vec<String> = language
            .files()
            .iter()
            .map(|lang| {
                let text = self
                    .texts
                    .get(&(programme, purpose, *lang))
                    .ok_or(Error::Template(
                        "no template for this programme, purpose and language",
                    ))?;
                let mut out = String::with_capacity(text.len() + 32);
                let mut rest = text.as_str();
                while let Some(start) = rest.find('{') {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 1..];
                    let end = after
                        .find('}')
                        .ok_or(Error::Template("a '{' is not closed"))?;
                    let value = values.get(&after[..end]).ok_or(Error::Template(
                        "a template needs a value the message lacks",
                    ))?;
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Ok(out)
            })
            .collect::<Result<_>>()?;
        Ok(parts.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::segments::{count, Encoding};

    fn values(code: &Code) -> Values<'_> {
        Values {
            reference: "EE123456785IN",
            code: Some(code),
            when: Some("23-11-2026 14:05 IST".into()),
            vaccine: Some("Covishield"),
            dose: Some(2),
            beneficiary: Some("B-1234"),
            care: "1800 266 6868",
        }
    }

    #[test]
    fn every_template_renders_in_every_language() {
        let t = Templates::builtin().unwrap();
        let code = Code::parse("042917", 6).unwrap();
        for programme in [Programme::Post, Programme::Vaccination] {
            let purposes: &[Purpose] = match programme {
                Programme::Post => &[Purpose::Code, Purpose::Confirmation],
                Programme::Vaccination => {
                    &[Purpose::Code, Purpose::Confirmation, Purpose::Certificate]
                }
            };
            for purpose in purposes {
                for language in [Language::En, Language::Hi, Language::HiEn] {
                    let text = t
                        .render(programme, *purpose, language, &values(&code))
                        .unwrap();
                    assert!(!text.contains('{') && !text.contains('}'), "{text}");
                    assert_eq!(text.contains("042917"), *purpose == Purpose::Code);
                }
            }
        }
    }

    #[test]
    fn an_unknown_placeholder_is_refused() {
        let bad = FILES[0].1.replace("{care}", "{helpline}");
        assert!(matches!(
            Templates::parse(&[("en", &bad)]),
            Err(Error::Template(_))
        ));
        let unclosed = FILES[0].1.replace("{care}", "{care");
        assert!(Templates::parse(&[("en", &unclosed)]).is_err());
        let no_code = FILES[0].1.replace("is {code}.", "is ready.");
        assert!(Templates::parse(&[("en", &no_code)]).is_err());
    }

    #[test]
    fn hindi_and_english_texts_and_their_segments() {
        let t = Templates::builtin().unwrap();
        let code = Code::parse("042917", 6).unwrap();
        let v = values(&code);
        let en = t
            .render(Programme::Post, Purpose::Code, Language::En, &v)
            .unwrap();
        assert_eq!(
            en,
            "India Post: your delivery code for article EE123456785IN is 042917. Tell it only to the postman at your door, when you receive the article."
        );
        // 139 characters, all GSM-7: one segment (160 at most).
        assert_eq!(en.chars().count(), 139);
        assert_eq!(count(&en), (Encoding::Gsm7, 1));
        let hi = t
            .render(Programme::Post, Purpose::Code, Language::Hi, &v)
            .unwrap();
        assert!(hi.starts_with("भारतीय डाक: वस्तु EE123456785IN के लिए आपका डिलीवरी कोड 042917 है।"));
        assert!(hi.contains("डाकिये"), "the safety advice is there");
        // 134 UTF-16 units: over 70, so parts of 67: exactly two segments.
        assert_eq!(hi.encode_utf16().count(), 134);
        assert_eq!(count(&hi), (Encoding::Ucs2, 2));
        let both = t
            .render(Programme::Post, Purpose::Code, Language::HiEn, &v)
            .unwrap();
        assert_eq!(both, format!("{hi}\n{en}"));
        // 134 + 1 + 139 = 274 units in UCS-2: parts of 67, five segments.
        assert_eq!(both.encode_utf16().count(), 274);
        assert_eq!(count(&both), (Encoding::Ucs2, 5));
    }
}
