//! Short links: the table of slugs, each owned by one account, with its
//! target URL and optional per-country targets.
//!
//! The table lives in the server's database file (or in memory), or in
//! cluster mode in a shared table every node reads (`links_store`), and is
//! mirrored in an in-memory index that redirects and clicks rooms read,
//! so a redirect never waits on a disk or the network. Creating and
//! deleting go to the table first, then to the index. Slugs are unique
//! across all accounts.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rand::Rng;
use serde::Deserialize;
use switchboard_apps::clicks::{LinkBook, LinkInfo};
use switchboard_cluster::Tables;

use crate::accounts::now_ms;
use crate::links_store::LinkStore;

/// Longest slug.
pub const MAX_SLUG_LEN: usize = 64;
/// Longest target URL: what browsers and proxies handle everywhere.
pub const MAX_URL_LEN: usize = 2048;
/// Most per-country targets of one link (there are fewer countries).
pub const MAX_GEO_TARGETS: usize = 250;
/// Most links per account: bounds an account's share of memory, its
/// dashboards' snapshot and its room's state.
pub const MAX_LINKS_PER_ACCOUNT: usize = 10_000;
/// Length of a generated slug: 62^7 slugs, so collisions (retried) stay rare.
const GENERATED_SLUG_LEN: usize = 7;

/// A short link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The owning account.
    pub account: String,
    /// The link as dashboards see it.
    pub info: LinkInfo,
}

impl Link {
    /// Where a visitor from `country` goes.
    pub fn target(&self, country: Option<&str>) -> &str {
        country.and_then(|c| self.info.geo.get(c)).unwrap_or(&self.info.url)
    }
}

/// A link to create, as `POST /api/links` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// The default target.
    pub url: String,
    /// The wanted slug; generated when absent.
    #[serde(default)]
    pub slug: Option<String>,
    /// Per-country targets (ISO 3166-1 alpha-2 code → URL).
    #[serde(default)]
    pub geo: Option<BTreeMap<String, String>>,
}

/// Why a link call failed; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Bad input (400), with what is wrong.
    Invalid(String),
    /// The slug is taken, by this account or another (409).
    Taken(String),
    /// No such link for this account (404).
    NotFound,
    /// The account has [`MAX_LINKS_PER_ACCOUNT`] links (403).
    TooMany,
    /// The database failed (500).
    Database(String),
    /// The cluster's shared table cannot be reached (503): NATS is down.
    Unavailable(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Invalid(why) => f.write_str(why),
            LinkError::Taken(slug) => write!(f, "the slug {slug:?} is taken"),
            LinkError::NotFound => f.write_str("no such link"),
            LinkError::TooMany => write!(f, "an account has at most {MAX_LINKS_PER_ACCOUNT} links"),
            LinkError::Database(e) => write!(f, "database error: {e}"),
            LinkError::Unavailable(e) => write!(f, "the cluster's link table is unavailable, try again: {e}"),
        }
    }
}

impl From<rusqlite::Error> for LinkError {
    fn from(e: rusqlite::Error) -> LinkError {
        LinkError::Database(e.to_string())
    }
}

/// True for `[A-Za-z0-9_-]{1,64}`.
pub fn is_slug(slug: &str) -> bool {
    (1..=MAX_SLUG_LEN).contains(&slug.len()) && slug.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An absolute `http`/`https` URL of printable ASCII (non-ASCII must be
/// percent-encoded: it goes into a `Location` header as it is) with a host.
fn check_url(url: &str, what: &str) -> Result<(), LinkError> {
    let invalid = |why: &str| Err(LinkError::Invalid(format!("{what}: {why}")));
    if url.len() > MAX_URL_LEN {
        return invalid(&format!("URLs are limited to {MAX_URL_LEN} bytes"));
    }
    if !url.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return invalid("URLs are printable ASCII without spaces (percent-encode the rest)");
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) else {
        return invalid("only http:// and https:// URLs can be linked to");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return invalid("the URL has no host");
    }
    Ok(())
}

fn check(new: &NewLink) -> Result<BTreeMap<String, String>, LinkError> {
    check_url(&new.url, "url")?;
    if let Some(slug) = &new.slug {
        if !is_slug(slug) {
            return Err(LinkError::Invalid(format!("slugs are 1-{MAX_SLUG_LEN} characters of A-Z a-z 0-9 _ -")));
        }
    }
    let geo = new.geo.clone().unwrap_or_default();
    if geo.len() > MAX_GEO_TARGETS {
        return Err(LinkError::Invalid(format!("geo: at most {MAX_GEO_TARGETS} countries")));
    }
    let mut checked = BTreeMap::new();
    for (country, url) in geo {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(LinkError::Invalid(format!("geo: {country:?} is not a two-letter country code (ISO 3166-1 alpha-2)")));
        }
        check_url(&url, &format!("geo.{country}"))?;
        checked.insert(country.to_ascii_uppercase(), url);
    }
    Ok(checked)
}

fn generated_slug() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..GENERATED_SLUG_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// The in-memory index of every link by slug, with the revision it was
/// stored at (0 in SQLite), which redirects and clicks rooms read.
#[derive(Default)]
pub(crate) struct LinkIndex {
    links: RwLock<HashMap<String, (u64, Arc<Link>)>>,
}

impl LinkIndex {
    pub(crate) fn get(&self, slug: &str) -> Option<(u64, Arc<Link>)> {
        self.links.read().unwrap_or_else(PoisonError::into_inner).get(slug).cloned()
    }

    pub(crate) fn insert(&self, revision: u64, link: Arc<Link>) {
        self.links.write().unwrap_or_else(PoisonError::into_inner).insert(link.info.slug.clone(), (revision, link));
    }

    pub(crate) fn remove(&self, slug: &str) {
        self.links.write().unwrap_or_else(PoisonError::into_inner).remove(slug);
    }

    fn of_account(&self, account: &str) -> Vec<Arc<Link>> {
        self.links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|(_, l)| l.account == account)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// The link table and its in-memory index.
pub struct Links {
    index: Arc<LinkIndex>,
    store: LinkStore,
}

impl Links {
    /// Opens the table in the database file at `path` (or in memory) and
    /// loads the index.
    pub fn open(path: Option<&Path>) -> Result<Links, LinkError> {
        let index = Arc::new(LinkIndex::default());
        let store = LinkStore::open_sqlite(path, &index)?;
        Ok(Links { index, store })
    }

    /// Opens the cluster's shared link table (docs/cluster.md, "Accounts
    /// and links") and loads the index, which a watch keeps current.
    pub async fn open_shared(tables: &Tables) -> Result<Links, LinkError> {
        let index = Arc::new(LinkIndex::default());
        let store = LinkStore::open_shared(tables, &index).await?;
        Ok(Links { index, store })
    }

    /// The link with this slug, whoever owns it.
    pub fn get(&self, slug: &str) -> Option<Arc<Link>> {
        self.index.get(slug).map(|(_, link)| link)
    }

    /// The account's links, oldest first.
    pub fn of_account(&self, account: &str) -> Vec<Arc<Link>> {
        let mut links = self.index.of_account(account);
        links.sort_by(|a, b| (a.info.created, &a.info.slug).cmp(&(b.info.created, &b.info.slug)));
        links
    }

    /// Creates a link for `account`: stored first, then in the index.
    pub async fn create(&self, account: &str, new: &NewLink) -> Result<Arc<Link>, LinkError> {
        let geo = check(new)?;
        if self.of_account(account).len() >= MAX_LINKS_PER_ACCOUNT {
            return Err(LinkError::TooMany);
        }
        let created = now_ms();
        // A generated slug that happens to be taken is drawn again.
        let attempts = if new.slug.is_some() { 1 } else { 8 };
        for _ in 0..attempts {
            let slug = new.slug.clone().unwrap_or_else(generated_slug);
            let link = Arc::new(Link { account: account.to_owned(), info: LinkInfo { slug: slug.clone(), url: new.url.clone(), geo: geo.clone(), created } });
            if self.store.insert(link.clone(), &self.index).await? {
                return Ok(link);
            }
            if new.slug.is_some() {
                return Err(LinkError::Taken(slug));
            }
        }
        Err(LinkError::Database("could not draw a free slug".into()))
    }

    /// Deletes the account's link; another account's slug is `NotFound`.
    pub async fn delete(&self, account: &str, slug: &str) -> Result<(), LinkError> {
        if self.get(slug).is_none_or(|l| l.account != account) {
            return Err(LinkError::NotFound);
        }
        if self.store.remove(account, slug, &self.index).await? {
            Ok(())
        } else {
            Err(LinkError::NotFound)
        }
    }
}

impl LinkBook for Links {
    fn links_of(&self, account: &str) -> Vec<LinkInfo> {
        self.of_account(account).iter().map(|l| l.info.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(url: &str, slug: Option<&str>) -> NewLink {
        NewLink { url: url.into(), slug: slug.map(Into::into), geo: None }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        for bad in ["ftp://x", "javascript:alert(1)", "https://", "http:///path", "https://a b", "https://ü.de", "//x.com"] {
            assert!(matches!(check_url(bad, "url"), Err(LinkError::Invalid(_))), "{bad}");
        }
        for good in ["https://example.com", "HTTP://EXAMPLE.COM/a?b#c", "https://user@host:8080/x"] {
            assert_eq!(check_url(good, "url"), Ok(()), "{good}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN)), "url").is_err());
    }

    #[tokio::test]
    async fn slugs_are_unique_across_accounts_and_private_to_delete() {
        let links = Links::open(None).unwrap();
        links.create("a", &new("https://e.com", Some("x"))).await.unwrap();
        assert_eq!(links.create("b", &new("https://e.com", Some("x"))).await, Err(LinkError::Taken("x".into())));
        assert_eq!(links.delete("b", "x").await, Err(LinkError::NotFound));
        let generated = links.create("b", &new("https://e.com", None)).await.unwrap();
        assert_eq!(generated.info.slug.len(), GENERATED_SLUG_LEN);
        assert_eq!(links.of_account("b").len(), 1);
        links.delete("a", "x").await.unwrap();
        assert!(links.get("x").is_none());
    }

    #[tokio::test]
    async fn geo_targets_are_checked_and_chosen_by_country() {
        let links = Links::open(None).unwrap();
        let mut link = new("https://e.com", Some("g"));
        link.geo = Some(BTreeMap::from([("de".into(), "https://e.de".into())]));
        let created = links.create("a", &link).await.unwrap();
        assert_eq!(created.target(Some("DE")), "https://e.de");
        assert_eq!(created.target(Some("FR")), "https://e.com");
        assert_eq!(created.target(None), "https://e.com");
        link.geo = Some(BTreeMap::from([("Germany".into(), "https://e.de".into())]));
        assert!(matches!(links.create("a", &link).await, Err(LinkError::Invalid(_))));
    }
}
