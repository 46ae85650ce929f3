//! A tiny MaxMind-format geo database for tests: loopback is in New Zealand,
//! two documentation networks use the nested (MaxMind) and the flat
//! (ip-location-db) record layouts, and one IPv6 network is in France.

use mmdb_writer::Writer;
use serde_json::json;

/// Every network of the fixture with the country it maps to.
#[allow(dead_code)] // printed by the example, not read by every test
pub const COUNTRIES: &[(&str, &str)] = &[("127.0.0.0/8", "NZ"), ("203.0.113.0/24", "DE"), ("198.51.100.0/24", "JP"), ("2001:db8::/32", "FR")];

/// The database's bytes.
pub fn database() -> Vec<u8> {
    let mut writer = Writer::new("switchboard-test-City");
    let nested = |iso: &str, city: &str, lat: f64, lon: f64| json!({"country": {"iso_code": iso}, "city": {"names": {"en": city}}, "location": {"latitude": lat, "longitude": lon}});
    let records = [
        ("127.0.0.0/8", nested("NZ", "Wellington", -41.29, 174.78)),
        ("203.0.113.0/24", nested("DE", "Berlin", 52.52, 13.40)),
        ("198.51.100.0/24", json!({"country_code": "JP", "city": "Tokyo", "latitude": 35.69, "longitude": 139.69})),
        ("2001:db8::/32", nested("FR", "Paris", 48.86, 2.35)),
    ];
    for (network, record) in records {
        writer.insert(network.parse::<ipnet::IpNet>().expect("fixture network"), &record).expect("fixture record");
    }
    writer.to_bytes().expect("fixture database")
}
