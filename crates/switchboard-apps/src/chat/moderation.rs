//! The chat's profanity filter: which message texts are refused.
//!
//! Refused: profanity, slurs, explicit sexual words and severe insults
//! ("kill yourself"), also when spelled to slip past a filter ("f u c k",
//! "sh1t", "a$$hole", "fUcK", "FuckYou", "ni88er", "kIlL yOuRsElF"). Not
//! refused: mild words ("damn", "hell", "crap"), words that merely contain a
//! bad one ("Scunthorpe", "shiitake", "spicy", "Pakistan"), and numbers,
//! hashes and ids ("3f2a9c", "B7fGx2"). The judgement is `rustrict`'s, with
//! a short list of slurs of our own ([`SLURS`]); this module chooses which
//! of rustrict's ratings count and what text it is shown.
//!
//! The ratings that count ([`refused_types`]), and why:
//! - profane, moderate or severe: "shit", "fuck", "asshole". Mild profanity
//!   is everyday speech.
//! - offensive, moderate or severe: the slurs. rustrict's mild tier is mostly
//!   neutral words about groups ("gay", "jewish", "asians") that it keeps an
//!   eye on; refusing them refuses people talking about themselves. The few
//!   slurs it rates mild ("spic", "gook", "paki") are refused by name
//!   instead: [`SLURS`].
//! - sexual, severe only: "porn", "blowjob". The moderate tier mixes explicit
//!   slang with "pregnant", "lesbian", "breast" and "sex".
//! - mean, severe only, as in rustrict's own default: "shut up" and "loser"
//!   are rude, not banned.
//! - evasive and spam, never: they are rustrict's guesses from the shape of
//!   the text (letters swapped for digits, repeats, gibberish), and hashes
//!   and ids have exactly that shape. Evasions of a real word are still
//!   caught, as that word.
//!
//! What rustrict is shown: it reads digits as letters (3 as e, 9 as g) and
//! skips over them, and it finds short bad words inside longer runs of
//! letters, so on their own it refuses a good share of random hex strings
//! and ids. So the text is cut into runs of ASCII letters and digits first:
//! - numbers, and hex strings (six or more hex digits with a decimal digit
//!   among them, or eight or more), are left out: they are data, not words;
//! - codes, runs with a digit or with mixed case other than a capital first
//!   letter ("sh1t", "fUcK", "iPhone", "B7fGx2"), are shown as a word when
//!   they are one but for their case ("kIlL", "iPhone") or a word of six
//!   letters or more and a number ("kikekiller99"): the letters, lowercased,
//!   so that a phrase is judged whole ("kIlL yOuRsElF"). Not when rustrict
//!   refuses those lowercased letters on their own: random ids are mixed
//!   case letters too ("FagrDE" holds "fag"), so such a code is judged as
//!   the others are;
//! - other codes are left out of the text and judged alone: refused only
//!   if, read as lowercase letters with each digit as the letter it stands
//!   for, the whole run is a refused word, maybe with an ending such as -s or
//!   -ing ("n1ggas"), or the run is such a word and a number ("fuck123"). A
//!   bad fragment inside such a code does not count;
//! - everything else (words, punctuation, other scripts) goes to rustrict as
//!   it is, with all of its evasion matching;
//! - and any run but data that is one of [`SLURS`], maybe plural or followed
//!   by a number, in any case and with each digit read as any letter it
//!   stands for ("Pakis", "ni88er", "gook99"), is refused. Only whole runs:
//!   as fragments these are inside everyday words.
//!
//! The cost: a code that spells profanity only in part ("FuckingIdiot")
//! passes, as does a phrase spelled with digits, judged word by word ("k1ll
//! y0urself"); and an id that happens to be all letters in one case
//! ("fagebv"), or six letters or more and a number, is a word like any
//! other, so a few random ids are still refused.

use std::sync::LazyLock;

use rustrict::{Censor, Replacements, Trie, Type};

/// Everyday words rustrict takes for profanity, added to its own list of
/// false positives (which already holds "assassin", "cocktail", "grape" and
/// the like).
const FALSE_POSITIVES: [&str; 2] = [
    // The mushroom; read as "shit" with a doubled i.
    "shiitake", // A surname.
    "hancock",
];

/// Slurs refused whatever rustrict rates them: it rates these "mild", with
/// the neutral words it watches. A few it rates higher are here too, so
/// that every reading of a digit counts for them ("ni88er" has 8 as g).
/// Matched only as a whole run, with [`SLUR_ENDINGS`]: as fragments they are
/// inside everyday words ("spicy", "Pakistan", "spooky").
const SLURS: [&str; 11] = ["darkie", "faggot", "gook", "kike", "nigga", "nigger", "paki", "raghead", "spic", "towelhead", "wetback"];

/// Plural endings of [`SLURS`]; no longer ones, which make words ("spices",
/// "spicy").
const SLUR_ENDINGS: [&str; 3] = ["", "s", "z"];

/// Letters a code needs before its number to be read as a word and a
/// number, the shape of a user name ("kikekiller99"). Random ids are short:
/// letters and a number in one ("hojn64") are shown to rustrict only if
/// they spell a refused word in full, as other codes are.
const NAME_LETTERS: usize = 6;

/// Endings after which a word refused in full stays refused inside a code.
const ENDINGS: [&str; 11] = ["", "s", "es", "z", "y", "ty", "ed", "er", "ers", "ing", "in"];

/// Marks censored characters in rustrict's output. rustrict drops
/// private-use characters from its input, so every one in its output is a
/// censored character.
const CENSORED: char = '\u{E000}';

/// rustrict's word list with [`FALSE_POSITIVES`].
static WORDS: LazyLock<Trie> = LazyLock::new(|| {
    let mut words = Trie::default();
    for word in FALSE_POSITIVES {
        words.set(word, Type::NONE);
    }
    words
});

/// No look-alike letters: a code is read as exactly the letters it spells.
static LITERAL: LazyLock<Replacements> = LazyLock::new(Replacements::new);

/// The ratings that get a message refused (reasons in the module doc).
fn refused_types() -> Type {
    (Type::PROFANE | Type::OFFENSIVE) & Type::MODERATE_OR_HIGHER | (Type::SEXUAL | Type::MEAN) & Type::SEVERE
}

/// What a run of ASCII letters and digits is taken for.
#[derive(Debug, PartialEq, Eq)]
enum Run {
    /// A number or a hex string: left out.
    Data,
    /// Judged alone by [`spells_refused`].
    Code,
    /// Shown to rustrict with the rest of the text.
    Word,
}

impl Run {
    fn of(run: &str) -> Run {
        let bytes = run.as_bytes();
        let digit = bytes.iter().any(u8::is_ascii_digit);
        let hex = bytes.iter().all(u8::is_ascii_hexdigit);
        if bytes.iter().all(u8::is_ascii_digit) || hex && (bytes.len() >= 8 || digit && bytes.len() >= 6) {
            return Run::Data;
        }
        let lower = bytes.iter().any(u8::is_ascii_lowercase);
        let inner_upper = bytes.iter().skip(1).any(u8::is_ascii_uppercase);
        if digit || lower && inner_upper {
            Run::Code
        } else {
            Run::Word
        }
    }
}

/// Whether the chat refuses a message with this text.
pub fn is_refused(text: &str) -> bool {
    let mut shown = String::with_capacity(text.len());
    let mut codes = Vec::new();
    let mut start = 0;
    // Pieces end only next to an ASCII byte, which is never inside a
    // multi-byte character, so every slice below is on a char boundary.
    for piece in text.as_bytes().chunk_by(|a, b| a.is_ascii_alphanumeric() == b.is_ascii_alphanumeric()) {
        let piece_text = &text[start..start + piece.len()];
        start += piece.len();
        let run = piece[0].is_ascii_alphanumeric().then(|| Run::of(piece_text));
        if run.as_ref().is_some_and(|run| *run != Run::Data) && is_slur(piece_text) {
            return true;
        }
        match run {
            None | Some(Run::Word) => shown.push_str(piece_text),
            Some(Run::Data) => shown.push(' '),
            Some(Run::Code) => match as_word(piece_text) {
                Some(word) => {
                    shown.push_str(&word);
                    shown.push(' ');
                }
                None => {
                    codes.push(piece_text);
                    shown.push(' ');
                }
            },
        }
    }
    judged_refused(&shown) || codes.into_iter().any(spells_refused)
}

/// Whether rustrict refuses `text` as it stands.
fn judged_refused(text: &str) -> bool {
    Censor::from_str(text).with_trie(&WORDS).analyze().is(refused_types())
}

/// The word a code is, when it differs from one only by its case or a
/// number after it ("kIlL", "yOuRsElF", "iPhone15", "kikekiller99"): its
/// letters, lowercased if their case is mixed, to be shown with the text so
/// that phrases are judged whole. `None` for any other code, for fewer than
/// [`NAME_LETTERS`] letters before a number, and for mixed case letters that
/// rustrict refuses on their own: those are judged as a code, since random
/// ids ("FagrDE") are mixed case letters too.
fn as_word(code: &str) -> Option<String> {
    let letters = code.trim_end_matches(|c: char| c.is_ascii_digit());
    let numbered = letters.len() < code.len();
    if !letters.bytes().all(|b| b.is_ascii_alphabetic()) || numbered && letters.len() < NAME_LETTERS {
        return None;
    }
    match Run::of(letters) {
        // Never data: letters that are would make the whole run data.
        Run::Word | Run::Data => Some(letters.to_owned()),
        Run::Code => Some(letters.to_ascii_lowercase()).filter(|lower| !judged_refused(lower)),
    }
}

/// Whether a run of ASCII letters and digits is one of the [`SLURS`] with
/// one of its [`SLUR_ENDINGS`], in any case, any digit read as any letter
/// it stands for, maybe followed by a number ("Paki", "sp1cs", "gook99").
fn is_slur(run: &str) -> bool {
    let lower = run.to_ascii_lowercase();
    let before_number = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    reads_as_slur(&lower) || reads_as_slur(before_number)
}

/// Whether lowercase `run` reads as a slur with an ending, letter by letter.
fn reads_as_slur(run: &str) -> bool {
    SLURS.iter().any(|slur| {
        SLUR_ENDINGS.iter().any(|ending| {
            run.len() == slur.len() + ending.len() && run.bytes().zip(slur.bytes().chain(ending.bytes())).all(|(c, l)| c == l || letters_of(c).contains(&l))
        })
    })
}

/// Whether a code spells a refused word in full: read as lowercase letters
/// with digits as letters (1 as i, or as l), or as the letters before a
/// trailing number.
fn spells_refused(code: &str) -> bool {
    let lower = code.to_ascii_lowercase();
    let before_number = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    is_refused_word(&as_letters(&lower, 'i'))
        || lower.contains('1') && is_refused_word(&as_letters(&lower, 'l'))
        || before_number.len() < lower.len() && before_number.bytes().all(|b| b.is_ascii_lowercase()) && is_refused_word(before_number)
}

/// `code` with each digit replaced by the letter it most often stands for
/// (1 by `one`).
fn as_letters(code: &str, one: char) -> String {
    code.chars()
        .map(|c| match (c, u8::try_from(c).ok().and_then(|b| letters_of(b).first())) {
            ('1', _) => one,
            (_, Some(&letter)) => char::from(letter),
            (c, None) => c,
        })
        .collect()
}

/// The letters a digit stands for, the most common first; none for
/// anything else.
fn letters_of(digit: u8) -> &'static [u8] {
    match digit {
        b'0' => b"o",
        b'1' => b"il",
        b'2' => b"z",
        b'3' => b"e",
        b'4' => b"a",
        b'5' => b"s",
        b'6' | b'8' => b"bg",
        b'7' => b"t",
        b'9' => b"g",
        _ => b"",
    }
}

/// Whether rustrict refuses `word` (lowercase ASCII letters) as a whole: it
/// censors all of it but one of the [`ENDINGS`], not just a fragment.
fn is_refused_word(word: &str) -> bool {
    let censored = Censor::from_str(word)
        .with_trie(&WORDS)
        .with_replacements(&LITERAL)
        .with_censor_threshold(refused_types())
        .with_censor_first_character_threshold(Type::ANY)
        .with_censor_replacement(CENSORED)
        .censor();
    let covered = censored.chars().take_while(|&c| c == CENSORED).count();
    covered > 0 && word.get(covered..).is_some_and(|rest| ENDINGS.contains(&rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn profanity_and_slurs_are_refused() {
        let profane = [
            "fuck",
            "FUCK",
            "what the fuck is this shit",
            "fuck you",
            "go fuck yourself",
            "shit",
            "bullshit",
            "piece of shit",
            "asshole",
            "motherfucker",
            "fucking idiot",
            "cunt",
            "you are a bitch",
            "dickhead",
            "kill yourself",
            "porn",
            "nigger",
            "nigga",
            "faggot",
            "faggots",
            "kike",
            "chink",
            "coon",
            "retard",
            "tranny",
            "whore",
            "slut",
            // Rated mild by rustrict; refused by name.
            "spic",
            "gook",
            "paki",
            "Pakis",
            "GOOKS",
            "wetback",
            "raghead",
            "towelhead",
            "darkie",
            "what a spic",
        ];
        let disguised = [
            "f u c k",
            "f.u.c.k",
            "f-u-c-k",
            "f*ck",
            "fuuuuck",
            "fvck",
            "fuk",
            "sh1t",
            "5h1t",
            "sh!t",
            "a$$hole",
            "assho1e",
            "n1gger",
            "n1gg3r",
            "n1ggas",
            "f4gg0t",
            "c0ck",
            "b1tch",
            "fUcK yOu",
            "FuckYou",
            "MotherFucker",
            "fuck123",
            "ｆｕｃｋ",
            "fück",
            "shithole",
            "fuck 3f2a9c",
            "ni88er",
            "N1GG3RS",
            "s1ut",
            "sp1c",
            "g00ks",
            "p4ki",
            "paki123",
            "kikekiller99",
            "kIlL yOuRsElF",
            "KiLl YoUrSeLf now",
        ];
        let passed: Vec<&str> = profane.into_iter().chain(disguised).filter(|text| !is_refused(text)).collect();
        assert!(passed.is_empty(), "not refused: {passed:?}");
    }

    #[test]
    fn everyday_messages_pass() {
        let everyday = [
            "hello world",
            "Hello, World!",
            "shiitake mushrooms",
            "Shiitake",
            "my invite code is 3f2a9c",
            "Scunthorpe",
            "assessment",
            "cocktail",
            "grape",
            "a classic assassin",
            "the bass player passed the class",
            "cockpit",
            "Essex and Sussex",
            "Charles Dickens",
            "John Hancock",
            "what the hell",
            "damn it",
            "oh crap",
            "shut up",
            "I'm pregnant",
            "breast cancer awareness",
            "I am a lesbian",
            "gay rights",
            "I am Jewish",
            "Nguyen",
            "Siobhan",
            "Björk Guðmundsdóttir",
            "Penelope Cruz",
            "spicy food and spices",
            "Spicer",
            "Pakistan and Pakistani cuisine",
            "pakistan2024",
            "Japan2024",
            "spooky",
            "gooey",
            "doo-wop",
            "gOoD mOrNiNg",
            "iPhone15 and PlayStation5",
            "iPhone, YouTube, McDonald's, JavaScript",
            "COVID19 and x86_64 on HTTP2",
            "see https://example.com/a/B7fGx2?ref=9fA3kQ",
            "http://localhost:8080/apps/chat/?room=lobby",
            "commit 3f2a9c1d0e",
            "9b74c9897bac770ffc029102a200c5de",
            "550e8400-e29b-41d4-a716-446655440000",
            "call me at +44 20 7946 0958",
            "order #80085 shipped",
            "#ff00ff",
            "v1.2.3",
            "Bonjour, ça va ?",
            "¿Dónde está la biblioteca?",
            "Guten Morgen, wie geht's?",
            "Привет, как дела?",
            "こんにちは",
            "你好，世界",
            "مرحبا",
            "नमस्ते दुनिया",
        ];
        let refused: Vec<&str> = everyday.into_iter().filter(|text| is_refused(text)).collect();
        assert!(refused.is_empty(), "refused: {refused:?}");
    }

    #[test]
    fn runs_are_sorted_into_data_codes_and_words() {
        for data in ["42", "80085", "3f2a9c", "DEADBEEF", "9b74c989"] {
            assert_eq!(Run::of(data), Run::Data, "{data}");
        }
        for code in ["sh1t", "fUcK", "iPhone", "B7fGx2", "ab12", "route66"] {
            assert_eq!(Run::of(code), Run::Code, "{code}");
        }
        for word in ["shit", "SHIT", "Shit", "facade", "a", "I"] {
            assert_eq!(Run::of(word), Run::Word, "{word}");
        }
    }

    #[test]
    fn a_code_counts_only_when_it_spells_a_refused_word_in_full() {
        for code in ["sh1t", "fUcKeRs", "fuck2", "n1gg4s"] {
            assert!(spells_refused(code), "{code}");
        }
        // Random ids in which rustrict alone finds "fag", "sex" and "dick".
        for code in ["FagrDE", "QqQsEx", "dic35d"] {
            assert!(!spells_refused(code), "{code}");
        }
    }

    #[test]
    fn a_code_is_shown_as_the_word_it_is_but_for_its_case_or_a_number() {
        assert_eq!(as_word("kIlL").as_deref(), Some("kill"));
        assert_eq!(as_word("iPhone15").as_deref(), Some("iphone"));
        assert_eq!(as_word("kikekiller99").as_deref(), Some("kikekiller"));
        // Digits inside, mixed case letters rustrict refuses alone, or too
        // few letters before the number: judged as codes.
        for code in ["sh1t", "B7fGx2", "FagrDE", "FuCk", "ab12"] {
            assert_eq!(as_word(code), None, "{code}");
        }
        // Random ids of letters and a number that rustrict, shown their
        // letters, would refuse.
        for id in ["Hohs52", "hojn64", "fvolo9", "SHTIO4"] {
            assert!(!is_refused(id), "{id}");
        }
    }

    #[test]
    fn slurs_by_name_match_whole_runs_only() {
        for run in ["spic", "SPICS", "sp1c", "gook99", "Pakiz", "ni88ers", "n1gg4z"] {
            assert!(is_slur(run), "{run}");
        }
        for run in ["spicy", "spices", "Spicer", "pakistan", "gooky", "gookie", "nigg", "kikes2go"] {
            assert!(!is_slur(run), "{run}");
        }
    }

    #[test]
    fn random_hex_strings_and_ids_pass() {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let hex: Vec<String> = (0..20_000).map(|_| format!("{:08x}", rng.random::<u32>())).collect();
        let ids: Vec<String> = (0..20_000).map(|_| (0..6).map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())])).collect()).collect();
        let refused_hex: Vec<&String> = hex.iter().filter(|s| is_refused(s)).collect();
        assert!(refused_hex.is_empty(), "hex strings refused: {refused_hex:?}");
        // Not none: some ids have no digit and are in one case or
        // capitalised, exactly the shape of a word, and a few of those begin
        // with or contain what rustrict reads as profanity ("fagebv"). A word
        // is refused for that, as "shithole" must be.
        let refused_ids: Vec<&String> = ids.iter().filter(|s| is_refused(s)).collect();
        assert!(refused_ids.len() <= 8, "{} of 20,000 ids refused: {refused_ids:?}", refused_ids.len());
    }
}
