//! A request's headers as rooms and the edge see them: names in lower case,
//! in the order sent, all in one text buffer with a list of where each name
//! and value is. A handshake builds it once, in two allocations rather than
//! two per header, from a copy of the request head as it came
//! ([`Headers::from_text`]: names are lower-cased in place, nothing else is
//! copied), and the edge's checks and the room read the same copy.

use std::ops::Range;

/// Request headers: `(name, value)` pairs, names in lower case.
#[derive(Clone, Default)]
pub struct Headers {
    /// The text the names and values are in; it may hold more (the
    /// request line, the separators) when it is a request head.
    text: String,
    /// Where each header's name and value are in `text`: name from, name
    /// to, value from, value to.
    at: Vec<[u32; 4]>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Room for `count` headers of `bytes` bytes of names and values in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Headers {
        Headers { text: String::with_capacity(bytes), at: Vec::with_capacity(count) }
    }

    /// The headers found in `text` (a request head, say) at `fields`, in
    /// order: each a name's range and its value's. The text is kept as it
    /// is, apart from the names, which are lower-cased in place. `None`
    /// when a range is not in `text`, does not fall on character
    /// boundaries, or is past what positions can say (4 GiB).
    pub fn from_text(mut text: String, fields: impl IntoIterator<Item = (Range<usize>, Range<usize>)>) -> Option<Headers> {
        let fields = fields.into_iter();
        let mut at = Vec::with_capacity(fields.size_hint().0);
        u32::try_from(text.len()).ok()?;
        for (name, value) in fields {
            for range in [&name, &value] {
                if range.start > range.end || !text.is_char_boundary(range.start) || !text.is_char_boundary(range.end) {
                    return None;
                }
            }
            text[name.clone()].make_ascii_lowercase();
            at.push([name.start as u32, name.end as u32, value.start as u32, value.end as u32]);
        }
        Some(Headers { text, at })
    }

    /// Adds a header; the name is stored in lower case.
    pub fn push(&mut self, name: &str, value: &str) {
        let from = self.text.len();
        self.text.push_str(name);
        self.text[from..].make_ascii_lowercase();
        let name_end = self.text.len();
        self.text.push_str(value);
        self.at.push([from as u32, name_end as u32, name_end as u32, self.text.len() as u32]);
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The headers in order, names in lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let part = |from: u32, to: u32| &self.text[from as usize..to as usize];
        self.at.iter().map(move |&[name_from, name_to, value_from, value_to]| (part(name_from, name_to), part(value_from, value_to)))
    }

    /// Every value of header `name` (lower case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The first value of header `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in pairs {
            headers.push(name.as_ref(), value.as_ref());
        }
        headers
    }
}

/// Equal when the same headers are there in the same order, however each
/// was built.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Headers;

    #[test]
    fn names_are_lower_case_and_values_as_given_in_order() {
        let headers: Headers = [("Host", "a.example"), ("X-Forwarded-For", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8, 9.9.9.9"), ("Empty", "")]
            .into_iter()
            .collect();
        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(pairs, [("host", "a.example"), ("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8, 9.9.9.9"), ("empty", "")]);
        assert_eq!(headers.len(), 4);
        assert_eq!(headers.get("host"), Some("a.example"));
        assert_eq!(headers.get("empty"), Some(""));
        assert_eq!(headers.get("cookie"), None);
        assert_eq!(headers.get_all("x-forwarded-for").collect::<Vec<_>>(), ["1.2.3.4", "5.6.7.8, 9.9.9.9"]);
    }

    #[test]
    fn headers_in_a_request_head_are_read_where_they_are() {
        let head = "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 1.2.3.4\r\nEmpty: \r\n\r\n";
        let field = |name: &str, value: &str| {
            let from = head.find(&format!("{name}: {value}\r\n")).unwrap();
            (from..from + name.len(), from + name.len() + 2..from + name.len() + 2 + value.len())
        };
        let fields = [field("Host", "a.example"), field("X-Forwarded-For", "1.2.3.4"), field("Empty", "")];
        let headers = Headers::from_text(head.to_owned(), fields.clone()).unwrap();
        let pushed: Headers = [("Host", "a.example"), ("X-Forwarded-For", "1.2.3.4"), ("Empty", "")].into_iter().collect();
        assert_eq!(headers, pushed);
        assert_eq!(headers.get("x-forwarded-for"), Some("1.2.3.4"));
        assert_eq!(headers.len(), 3);
        // Ranges past the text or inside a character are refused.
        assert!(Headers::from_text(head.to_owned(), [(0..3, 4..head.len() + 1)]).is_none());
        assert!(Headers::from_text("é: x".to_owned(), [(0..1, 4..5)]).is_none());
        let (from, to) = (5, 4);
        assert!(Headers::from_text(head.to_owned(), [(from..to, 6..7)]).is_none());
    }

    #[test]
    fn an_empty_list_has_nothing() {
        let headers = Headers::new();
        assert!(headers.is_empty());
        assert_eq!(headers.iter().count(), 0);
        assert_eq!(format!("{headers:?}"), "[]");
    }
}
