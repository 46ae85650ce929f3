//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split over frames, and a frame over reads, at any
//! byte, including inside a character. The validator keeps at most three
//! bytes of an unfinished character between calls and fails as soon as the
//! bytes seen so far cannot be the start of valid UTF-8 (Autobahn 6.4.*
//! checks that the connection fails at the first bad byte, not at the end).
//! The bulk of each piece is checked by `simdutf8`.

use simdutf8::compat::from_utf8;

/// The input can no longer be valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream fed in arbitrary pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece. Errors as soon as a sequence cannot be completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = char_width(self.partial[0]);
            let take = (need - have).min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            self.partial_len = (have + take) as u8;
            data = &data[take..];
            match from_utf8(&self.partial[..have + take]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => return Ok(()),
                Err(_) => return Err(InvalidUtf8),
            }
        }
        // Most text is ASCII; core's check reads it a word at a time, which
        // beats simdutf8's setup on the short messages that dominate.
        if data.is_ascii() {
            return Ok(());
        }
        match from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                // At most three bytes: the start of an unfinished character.
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the stream: an unfinished character is an error. Resets for reuse.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// True when no character is unfinished: then ASCII bytes fed next are
    /// valid without a look at them.
    pub fn is_between_characters(&self) -> bool {
        self.partial_len == 0
    }

    /// Forgets any unfinished character.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// Length of the sequence a lead byte starts. Only called on bytes that
/// `from_utf8` already accepted as the start of an incomplete sequence.
fn char_width(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], at: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(&data[..at])?;
        v.feed(&data[at..])?;
        v.finish()
    }

    #[test]
    fn valid_text_passes_at_every_split_and_byte_by_byte() {
        let text = "κόσμε Hello-µ@ßöäüàá-UTF-8!! 𝄞 €".as_bytes();
        for at in 0..=text.len() {
            assert_eq!(feed_split(text, at), Ok(()), "split {at}");
        }
        let mut v = Utf8Validator::new();
        for b in text {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn fails_fast_on_the_first_impossible_byte() {
        // "κόσμε" followed by an encoded surrogate start (ED A0 80): fails at A0.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(InvalidUtf8));
    }

    #[test]
    fn a_code_point_above_u10ffff_fails_at_its_second_byte() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn invalid_sequences_fail_at_every_split() {
        for bad in [&[0xff][..], &[0xc0, 0x80], &[0xe0, 0x80, 0x80], &[0xed, 0xa0, 0x80], &[0x80], &[0xce, 0xba, 0xe1, 0xbd]] {
            let mut data = b"ab".to_vec();
            data.extend_from_slice(bad);
            for at in 0..=data.len() {
                assert_eq!(feed_split(&data, at), Err(InvalidUtf8), "{bad:x?} split {at}");
            }
        }
    }

    #[test]
    fn an_unfinished_character_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        // and the validator is reusable afterwards
        v.feed(b"ok").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }
}
