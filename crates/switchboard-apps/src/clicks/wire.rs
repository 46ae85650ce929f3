//! What a clicks room sends its dashboards, and the clicks and links it
//! is told about (docs/clicks.md has examples of each).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One click on a short link, as recorded: never the visitor's IP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Click {
    /// When, in Unix milliseconds.
    pub time: u64,
    /// The link's slug.
    pub slug: String,
    /// ISO 3166-1 alpha-2 country code of the visitor, if known.
    pub country: Option<String>,
    /// The visitor's city, if known.
    pub city: Option<String>,
    /// Latitude of the visitor's location, if known.
    pub lat: Option<f64>,
    /// Longitude of the visitor's location, if known.
    pub lon: Option<f64>,
    /// The host of the page the visitor came from, if any.
    pub referrer: Option<String>,
}

/// A short link as the dashboards show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// The slug: the link is `/l/{slug}`.
    pub slug: String,
    /// Where it sends visitors by default.
    pub url: String,
    /// Destinations for visitors from some countries (code → URL).
    pub geo: BTreeMap<String, String>,
    /// When it was created, in Unix milliseconds.
    pub created: u64,
}

/// A link with its click total.
#[derive(Debug, Serialize)]
pub(crate) struct LinkTotal<'a> {
    #[serde(flatten)]
    pub(crate) link: &'a LinkInfo,
    pub(crate) clicks: u64,
}

/// Server → dashboard.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToDashboard<'a> {
    /// On connect: the whole picture.
    Snapshot {
        account: &'a str,
        total: u64,
        countries: &'a BTreeMap<String, u64>,
        /// `[minute start in Unix ms, clicks]`, oldest first, last 24 h.
        series: Vec<(u64, u64)>,
        links: Vec<LinkTotal<'a>>,
        /// The latest clicks, oldest first.
        recent: Vec<&'a Click>,
    },
    /// A click, as it happens, with the account's new total.
    Click {
        #[serde(flatten)]
        click: &'a Click,
        total: u64,
    },
    /// Clicks recorded together, oldest first, with the account's total
    /// after the last of them.
    Clicks { clicks: &'a [Click], total: u64 },
    /// The account's links changed (created or deleted).
    Links { links: Vec<LinkTotal<'a>> },
    /// Something the dashboard sent was not understood.
    Error { error: &'a str },
}

impl ToDashboard<'_> {
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("dashboard messages serialize")
    }
}
