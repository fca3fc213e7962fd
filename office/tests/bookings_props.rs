//! Property tests of the bookings CSV parser: arbitrary bytes never panic,
//! generated valid files parse to what was written.

use handover_core::codes::Programme;
use handover_core::manifest::ItemDetails;
use handover_office::bookings::{parse, CodPayee};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_give_an_error_or_rows(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for programme in [Programme::Post, Programme::Vaccination] {
            if let Err(e) = parse(programme, &bytes, &CodPayee::default(), 2026) {
                prop_assert!(e.to_string().starts_with("bookings line "));
            }
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut csv = b"reference,service,addressee,address,mobile,cod_paise\nRR287043775IN,parcel,A. Kumar,\"12, MG Road\",+91 98765 43210,150000\n".to_vec();
        let i = pos.index(csv.len());
        csv[i] = byte;
        let _ = parse(Programme::Post, &csv, &CodPayee::default(), 2026);
    }

    #[test]
    fn generated_post_files_round_trip(
        rows in proptest::collection::vec(
            (0u32..99_999_999, "[A-Za-z][A-Za-z .]{0,30}", "[A-Za-z0-9 ,./-]{1,60}", 6_000_000_000u64..9_999_999_999, 0u64..10_000_000),
            1..20,
        )
    ) {
        let mut csv = String::from("reference,service,addressee,address,mobile,cod_paise\n");
        let mut seen = std::collections::HashSet::new();
        let mut expected = Vec::new();
        for (serial, name, address, mobile, cod) in rows {
            if !seen.insert(serial) || name.trim().is_empty() || address.trim().is_empty() {
                continue;
            }
            let reference = handover_core::s10::make("CP", serial, "IN").unwrap();
            csv.push_str(&format!("{reference},speed_post,\"{name}\",\"{address}\",{mobile},{cod}\n"));
            expected.push((reference, name.trim().to_owned(), mobile.to_string(), cod));
        }
        prop_assume!(!expected.is_empty());
        let parsed = parse(Programme::Post, csv.as_bytes(), &CodPayee::default(), 2026).unwrap();
        prop_assert_eq!(parsed.len(), expected.len());
        for (b, (reference, name, mobile, cod)) in parsed.iter().zip(expected) {
            prop_assert_eq!(&b.reference, &reference);
            prop_assert_eq!(&b.mobile, &mobile);
            let ItemDetails::Post(p) = &b.details else { panic!("post") };
            prop_assert_eq!(&p.addressee, &name);
            prop_assert_eq!(&p.mobile_last_digits, &mobile[6..]);
            prop_assert_eq!(p.cod.as_ref().map_or(0, |c| c.amount_paise), cod);
        }
    }
}
