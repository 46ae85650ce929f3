//! Geo lookups: the location of a client IP from a MaxMind-format database
//! (GeoLite2 / GeoIP2 City or Country, DB-IP, or the flat layout of the
//! `ip-location-db` packages).
//!
//! Several files may be loaded (the `ip-location-db` packages ship IPv4 and
//! IPv6 separately); they are asked in order and the first match wins. Files
//! are read into memory once at startup. Without any, every location is
//! unknown; a lookup never fails a connection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;
use switchboard_room::Geo;

/// The loaded geo database files.
#[derive(Default)]
pub struct GeoDb {
    readers: Vec<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<&str> = self.readers.iter().map(|r| r.metadata().database_type.as_str()).collect();
        f.debug_struct("GeoDb").field("types", &types).finish()
    }
}

/// Fields of the nested (MaxMind, DB-IP) and the flat layouts; every one optional.
#[derive(Deserialize)]
struct Record {
    country: Option<Country>,
    registered_country: Option<Country>,
    city: Option<City>,
    location: Option<Location>,
    country_code: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum City {
    Names { names: BTreeMap<String, String> },
    Flat(String),
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

fn country_code(code: Option<String>) -> Option<String> {
    code.filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())).map(|c| c.to_ascii_uppercase())
}

impl GeoDb {
    /// No files yet: every lookup is `None`.
    pub fn new() -> GeoDb {
        GeoDb::default()
    }

    /// Reads the database file at `path` and asks it after the ones added
    /// before. Returns its type, e.g. `GeoLite2-City`.
    pub fn add(&mut self, path: &Path) -> Result<String, String> {
        let reader = Reader::open_readfile(path).map_err(|e| format!("cannot read the geo database {}: {e}", path.display()))?;
        let kind = reader.metadata().database_type.clone();
        self.readers.push(reader);
        Ok(kind)
    }

    /// True when no file is loaded.
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Where `ip` is, or `None` when no database knows it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        self.readers.iter().find_map(|reader| GeoDb::lookup_in(reader, ip))
    }

    fn lookup_in(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<Geo> {
        let record: Record = reader.lookup(ip).ok()?.decode().ok()??;
        let country = record.country.and_then(|c| c.iso_code).or(record.registered_country.and_then(|c| c.iso_code)).or(record.country_code);
        let city = record.city.and_then(|c| match c {
            City::Names { mut names } => names.remove("en").or_else(|| names.into_values().next()),
            City::Flat(name) => Some(name),
        });
        let (latitude, longitude) = match record.location {
            Some(l) => (l.latitude, l.longitude),
            None => (record.latitude, record.longitude),
        };
        let geo = Geo { country: country_code(country), city: city.filter(|c| !c.is_empty()), latitude, longitude };
        (geo != Geo::default()).then_some(geo)
    }
}
