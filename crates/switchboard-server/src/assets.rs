//! The web pages and the browser client, embedded from `web/` at build time
//! so the binary serves every app with no files beside it.
//!
//! `/X` serves `web/X`; a path ending in `/` serves its `index.html`, and a
//! directory without the slash is redirected to it. `/client.js` and
//! `/client.d.ts` are the browser client and its types. Responses carry a
//! strong ETag (the file's SHA-256), so browsers revalidate cheaply.

use bytes::Bytes;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Web;

/// What the HTTP layer should answer for a path.
pub(crate) enum Asset {
    /// A file.
    File { body: Bytes, content_type: &'static str, etag: String },
    /// A directory asked for without its trailing slash.
    Redirect(String),
}

/// Short aliases for the client library.
fn alias(path: &str) -> &str {
    match path {
        "client.js" => "switchboard.js",
        "client.d.ts" => "switchboard.d.ts",
        other => other,
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "ts" => "text/plain; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The asset at request path `path` (already percent-decoded is not needed:
/// embedded names are plain ASCII, anything else simply does not match).
pub(crate) fn lookup(path: &str) -> Option<Asset> {
    let relative = path.strip_prefix('/')?;
    if relative.split('/').any(|segment| segment == ".." || segment == ".") {
        return None;
    }
    let file = if relative.is_empty() || relative.ends_with('/') { format!("{relative}index.html") } else { alias(relative).to_owned() };
    match Web::get(&file) {
        Some(found) => {
            let etag = format!("\"{}\"", hex(&found.metadata.sha256_hash()[..16]));
            Some(Asset::File { body: Bytes::from(found.data.into_owned()), content_type: content_type(&file), etag })
        }
        None if Web::get(&format!("{relative}/index.html")).is_some() => Some(Asset::Redirect(format!("{path}/"))),
        None => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_and_the_landing_page_are_embedded() {
        let Some(Asset::File { content_type, body, .. }) = lookup("/client.js") else { panic!("no /client.js") };
        assert_eq!(content_type, "text/javascript; charset=utf-8");
        assert!(!body.is_empty());
        assert!(matches!(lookup("/"), Some(Asset::File { content_type: "text/html; charset=utf-8", .. })));
    }

    #[test]
    fn directories_redirect_and_traversal_finds_nothing() {
        assert!(matches!(lookup("/apps/chat"), Some(Asset::Redirect(to)) if to == "/apps/chat/"));
        assert!(lookup("/apps/../Cargo.toml").is_none());
        assert!(lookup("/../Cargo.toml").is_none());
        assert!(lookup("/nope.html").is_none());
    }
}
