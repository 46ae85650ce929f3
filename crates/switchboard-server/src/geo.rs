//! Geo lookups: the location of a client IP from a MaxMind-format database
//! (GeoLite2 / GeoIP2 City or Country, DB-IP, or the flat layout of the
//! `ip-location-db` packages).
//!
//! The database is read into memory once at startup. Without one every
//! location is unknown; a lookup never fails a connection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;
use switchboard_room::Geo;

/// A loaded geo database.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("type", &self.reader.metadata().database_type).finish()
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
    /// Reads the database at `path`.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        let reader = Reader::open_readfile(path).map_err(|e| format!("cannot read the geo database {}: {e}", path.display()))?;
        Ok(GeoDb { reader })
    }

    /// The database's type, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Where `ip` is, or `None` when the database does not know it.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        let record: Record = self.reader.lookup(ip).ok()?.decode().ok()??;
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
