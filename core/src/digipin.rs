//! DIGIPIN: India Post's 10-character code for a cell of about 4 m × 4 m
//! ("Digital Postal Index Number: National Level Addressing Grid",
//! Department of Posts, technical document, March 2025).
//!
//! India's bounding box (latitude 2.5° to 38.5° N, longitude 63.5° to 99.5°
//! E) is divided into 4 × 4 cells, each cell again into 4 × 4, ten times.
//! Each level adds one symbol from the grid below (rows from north to south,
//! columns from west to east); hyphens after the third and sixth symbols
//! are for reading only.
//!
//! ```text
//!   F C 9 8
//!   J 3 2 7
//!   K 4 5 6
//!   L M P T
//! ```
//!
//! ```
//! use handover_core::digipin;
//! // Dak Bhawan, New Delhi: the specification's own example.
//! assert_eq!(digipin::encode(28.622788, 77.213033).unwrap(), "39J-49L-L8T4");
//! let (lat, lon) = digipin::decode("39J49LL8T4").unwrap();
//! assert!((lat - 28.622788).abs() < 0.0001 && (lon - 77.213033).abs() < 0.0001);
//! ```

use crate::error::{Error, Result};

const GRID: [[u8; 4]; 4] = [
    [b'F', b'C', b'9', b'8'],
    [b'J', b'3', b'2', b'7'],
    [b'K', b'4', b'5', b'6'],
    [b'L', b'M', b'P', b'T'],
];
const MIN_LAT: f64 = 2.5;
const MAX_LAT: f64 = 38.5;
const MIN_LON: f64 = 63.5;
const MAX_LON: f64 = 99.5;
/// Symbols in a DIGIPIN.
pub const LEN: usize = 10;

/// The DIGIPIN (with its hyphens) of the cell holding `lat`, `lon`, as the
/// reference implementation computes it; outside India's box is an error.
pub fn encode(lat: f64, lon: f64) -> Result<String> {
    if !(MIN_LAT..=MAX_LAT).contains(&lat) || !(MIN_LON..=MAX_LON).contains(&lon) {
        return Err(Error::invalid(
            "location",
            "outside the DIGIPIN area (India)",
        ));
    }
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) = (MIN_LAT, MAX_LAT, MIN_LON, MAX_LON);
    let mut out = String::with_capacity(LEN + 2);
    for level in 1..=LEN {
        let lat_div = (max_lat - min_lat) / 4.0;
        let lon_div = (max_lon - min_lon) / 4.0;
        // Rows count from the north; the reference clamps to the grid.
        let row = (3.0 - ((lat - min_lat) / lat_div).floor()).clamp(0.0, 3.0) as usize;
        let col = ((lon - min_lon) / lon_div).floor().clamp(0.0, 3.0) as usize;
        out.push(char::from(GRID[row][col]));
        if level == 3 || level == 6 {
            out.push('-');
        }
        max_lat = min_lat + lat_div * (4 - row) as f64;
        min_lat += lat_div * (3 - row) as f64;
        min_lon += lon_div * col as f64;
        max_lon = min_lon + lon_div;
    }
    Ok(out)
}

/// The centre of the cell `pin` names (hyphens optional, any case).
pub fn decode(pin: &str) -> Result<(f64, f64)> {
    let pin = normalise(pin)?;
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) = (MIN_LAT, MAX_LAT, MIN_LON, MAX_LON);
    for b in pin.bytes() {
        let (row, col) = position(b).ok_or(Error::invalid("DIGIPIN", "not a DIGIPIN symbol"))?;
        let lat_div = (max_lat - min_lat) / 4.0;
        let lon_div = (max_lon - min_lon) / 4.0;
        let lat1 = max_lat - lat_div * (row + 1) as f64;
        let lon1 = min_lon + lon_div * col as f64;
        (min_lat, max_lat) = (lat1, lat1 + lat_div);
        (min_lon, max_lon) = (lon1, lon1 + lon_div);
    }
    Ok(((min_lat + max_lat) / 2.0, (min_lon + max_lon) / 2.0))
}

/// `pin` checked and written the one way: ten symbols of the grid, upper
/// case, hyphens (and spaces) removed; refused if it is not one.
pub fn normalise(pin: &str) -> Result<String> {
    let symbols: String = pin
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if symbols.len() != LEN {
        return Err(Error::invalid(
            "DIGIPIN",
            "must be 10 symbols, e.g. 39J-49L-L8T4",
        ));
    }
    if !symbols.bytes().all(|b| position(b).is_some()) {
        return Err(Error::invalid(
            "DIGIPIN",
            "uses only 2-9, C, F, J, K, L, M, P and T",
        ));
    }
    // The first symbol's cells outside India's land are valid codes too
    // (the grid covers the sea); every ten-symbol string of the alphabet
    // names a cell of the box.
    Ok(symbols)
}

fn position(symbol: u8) -> Option<(usize, usize)> {
    GRID.iter()
        .enumerate()
        .find_map(|(r, row)| row.iter().position(|s| *s == symbol).map(|c| (r, c)))
}

/// Great-circle distance in metres between two points (haversine, mean
/// Earth radius): what a presence finding compares with the fix's accuracy.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    const R: f64 = 6_371_008.8;
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}
