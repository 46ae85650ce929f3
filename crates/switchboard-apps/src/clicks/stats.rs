//! An account's click statistics: totals per link and per country, per link
//! totals by country and by city, and clicks per minute over the last 24
//! hours (for the account and per link). Pure data, no I/O: the room loads
//! it from and stores it to one storage key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Click;

/// How far back the per-minute series reaches: 24 hours.
pub const SERIES_MINUTES: u64 = 24 * 60;

/// Distinct cities counted per link; clicks from further cities count
/// under [`OTHER_CITIES`], so a link clicked from everywhere cannot grow
/// the room's state without bound.
pub const MAX_CITIES_PER_LINK: usize = 1000;

/// The bucket of cities past [`MAX_CITIES_PER_LINK`].
pub const OTHER_CITIES: &str = "(other)";

/// The country code of clicks whose country is unknown.
pub const UNKNOWN_COUNTRY: &str = "??";

const MINUTE_MS: u64 = 60_000;

/// Adds one to `key`'s count; the key is copied only the first time.
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// Everything counted for one account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Clicks ever recorded (links deleted since included).
    pub total: u64,
    /// Clicks per country code ([`UNKNOWN_COUNTRY`] when unknown).
    pub countries: BTreeMap<String, u64>,
    /// Clicks per minute (start of the minute, Unix ms), last 24 h.
    pub minutes: BTreeMap<u64, u64>,
    /// Per link, by slug. Stored under a key of each link's own, so a
    /// click rewrites its link's counts and the account's, not every link's.
    #[serde(skip)]
    pub links: BTreeMap<String, LinkStats>,
}

/// What is counted for one link.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Clicks on the link.
    pub total: u64,
    /// Clicks per country code.
    pub countries: BTreeMap<String, u64>,
    /// Clicks per city, keyed `CC/City` (cities of the same name exist in
    /// several countries).
    pub cities: BTreeMap<String, u64>,
    /// Clicks per minute (start of the minute, Unix ms), last 24 h.
    pub minutes: BTreeMap<u64, u64>,
}

impl Stats {
    /// Counts one click.
    pub fn record(&mut self, click: &Click) {
        let minute = click.time - click.time % MINUTE_MS;
        let country = click.country.as_deref().unwrap_or(UNKNOWN_COUNTRY);
        self.total += 1;
        count(&mut self.countries, country);
        *self.minutes.entry(minute).or_default() += 1;
        if !self.links.contains_key(&click.slug) {
            self.links.insert(click.slug.clone(), LinkStats::default());
        }
        let link = self.links.get_mut(&click.slug).expect("inserted above");
        link.total += 1;
        count(&mut link.countries, country);
        *link.minutes.entry(minute).or_default() += 1;
        if let Some(city) = &click.city {
            let key = format!("{country}/{city}");
            let key = if link.cities.contains_key(&key) || link.cities.len() < MAX_CITIES_PER_LINK { key.as_str() } else { OTHER_CITIES };
            count(&mut link.cities, key);
        }
    }

    /// Drops the minutes older than 24 h before `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        let oldest = (now_ms - now_ms % MINUTE_MS).saturating_sub((SERIES_MINUTES - 1) * MINUTE_MS);
        self.minutes = self.minutes.split_off(&oldest);
        for link in self.links.values_mut() {
            link.minutes = link.minutes.split_off(&oldest);
        }
    }

    /// Forgets a deleted link's own counts (the account's totals keep them).
    pub fn forget_link(&mut self, slug: &str) -> bool {
        self.links.remove(slug).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(time: u64, slug: &str, country: Option<&str>, city: Option<&str>) -> Click {
        Click { time, slug: slug.into(), country: country.map(Into::into), city: city.map(Into::into), ..Click::default() }
    }

    #[test]
    fn clicks_count_per_link_country_city_and_minute() {
        let mut stats = Stats::default();
        stats.record(&click(60_000 * 10 + 5, "a", Some("DE"), Some("Berlin")));
        stats.record(&click(60_000 * 10 + 59_999, "a", Some("DE"), Some("Berlin")));
        stats.record(&click(60_000 * 11, "b", None, None));
        assert_eq!(stats.total, 3);
        assert_eq!(stats.countries, BTreeMap::from([("DE".into(), 2), (UNKNOWN_COUNTRY.into(), 1)]));
        assert_eq!(stats.minutes, BTreeMap::from([(600_000, 2), (660_000, 1)]));
        assert_eq!(stats.links["a"].cities, BTreeMap::from([("DE/Berlin".into(), 2)]));
        assert!(stats.links["b"].cities.is_empty());
    }

    #[test]
    fn the_series_keeps_24_hours() {
        let mut stats = Stats::default();
        let day = SERIES_MINUTES * MINUTE_MS;
        stats.record(&click(0, "a", None, None));
        stats.record(&click(MINUTE_MS, "a", None, None));
        stats.prune(day);
        assert_eq!(stats.minutes.keys().copied().collect::<Vec<_>>(), [MINUTE_MS], "the minute a full day ago is gone");
        assert_eq!(stats.links["a"].minutes.len(), 1);
        assert_eq!(stats.total, 2, "totals are kept");
    }

    #[test]
    fn cities_past_the_limit_share_one_bucket() {
        let mut stats = Stats::default();
        for i in 0..MAX_CITIES_PER_LINK + 5 {
            stats.record(&click(0, "a", Some("US"), Some(&format!("c{i}"))));
        }
        let cities = &stats.links["a"].cities;
        assert_eq!(cities.len(), MAX_CITIES_PER_LINK + 1);
        assert_eq!(cities[OTHER_CITIES], 5);
    }
}
