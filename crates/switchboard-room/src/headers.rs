//! A request's headers as rooms and the edge see them: names in lower case,
//! in the order sent, all in one text buffer with a list of where each name
//! and value ends. A handshake builds it once, in two allocations rather
//! than two per header, and the edge's checks and the room read the same
//! copy.

/// Request headers: `(name, value)` pairs, names in lower case.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Every name and value, one after the other.
    text: String,
    /// Where each header's name ends and its value ends in `text` (the
    /// name starts where the previous value ended).
    ends: Vec<(u32, u32)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Room for `count` headers of `bytes` bytes of names and values in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Headers {
        Headers { text: String::with_capacity(bytes), ends: Vec::with_capacity(count) }
    }

    /// Adds a header; the name is stored in lower case.
    pub fn push(&mut self, name: &str, value: &str) {
        let from = self.text.len();
        self.text.push_str(name);
        self.text[from..].make_ascii_lowercase();
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end as u32, self.text.len() as u32));
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The headers in order, names in lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|&(_, value_end)| value_end));
        starts
            .zip(&self.ends)
            .map(|(from, &(name_end, value_end))| (&self.text[from as usize..name_end as usize], &self.text[name_end as usize..value_end as usize]))
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
    fn an_empty_list_has_nothing() {
        let headers = Headers::new();
        assert!(headers.is_empty());
        assert_eq!(headers.iter().count(), 0);
        assert_eq!(format!("{headers:?}"), "[]");
    }
}
