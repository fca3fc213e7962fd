//! The language(s) of a recipient's messages: a booking's `language`
//! column, `office.toml`'s default, and the SMS templates they choose.

use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// The language(s) of a recipient's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Language {
    /// English.
    #[serde(rename = "en")]
    En,
    /// Hindi.
    #[serde(rename = "hi")]
    Hi,
    /// Hindi, then English, in one message.
    #[serde(rename = "hi+en")]
    HiEn,
}

impl Language {
    /// The stored and written name: `en`, `hi`, `hi+en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Hi => "hi",
            Language::HiEn => "hi+en",
        }
    }

    /// The template files it uses, in order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Language::En => &["en"],
            Language::Hi => &["hi"],
            Language::HiEn => &["hi", "en"],
        }
    }
}

impl FromStr for Language {
    type Err = Error;
    fn from_str(s: &str) -> Result<Language> {
        match s.trim() {
            "en" => Ok(Language::En),
            "hi" => Ok(Language::Hi),
            "hi+en" => Ok(Language::HiEn),
            _ => Err(Error::Language),
        }
    }
}
