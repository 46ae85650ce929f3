//! Random two-word names ("Brave Otter"), unique among the users online.

use rand::Rng;

const ADJECTIVES: [&str; 64] = [
    "Agile", "Amber", "Bold", "Brave", "Bright", "Brisk", "Calm", "Clever", "Cosmic", "Crisp", "Curious", "Daring", "Dapper", "Eager", "Early", "Fancy",
    "Fearless", "Gentle", "Gifted", "Glad", "Golden", "Grand", "Happy", "Hardy", "Honest", "Humble", "Jolly", "Keen", "Kind", "Lively", "Lucky", "Mellow",
    "Merry", "Mighty", "Misty", "Modest", "Nimble", "Noble", "Patient", "Plucky", "Polite", "Proud", "Quick", "Quiet", "Rapid", "Ready", "Rustic", "Shiny",
    "Silent", "Silver", "Sleepy", "Smart", "Snowy", "Steady", "Sunny", "Swift", "Tidy", "Vivid", "Warm", "Wild", "Wise", "Witty", "Zany", "Zesty",
];

const ANIMALS: [&str; 64] = [
    "Albatross",
    "Badger",
    "Beaver",
    "Bison",
    "Camel",
    "Cheetah",
    "Condor",
    "Coyote",
    "Crane",
    "Dingo",
    "Dolphin",
    "Eagle",
    "Falcon",
    "Ferret",
    "Finch",
    "Fox",
    "Gazelle",
    "Gecko",
    "Gibbon",
    "Heron",
    "Hedgehog",
    "Ibis",
    "Impala",
    "Jackal",
    "Jaguar",
    "Kestrel",
    "Kiwi",
    "Koala",
    "Lemur",
    "Lynx",
    "Magpie",
    "Marmot",
    "Meerkat",
    "Mole",
    "Moose",
    "Narwhal",
    "Newt",
    "Ocelot",
    "Octopus",
    "Osprey",
    "Otter",
    "Owl",
    "Panda",
    "Parrot",
    "Pelican",
    "Penguin",
    "Puffin",
    "Quail",
    "Rabbit",
    "Raven",
    "Robin",
    "Salmon",
    "Seal",
    "Sparrow",
    "Squid",
    "Stork",
    "Tapir",
    "Tiger",
    "Toucan",
    "Turtle",
    "Walrus",
    "Weasel",
    "Wombat",
    "Yak",
];

/// Random draws before falling back to numbered names.
const DRAWS: usize = 32;

/// A random name that `taken` does not hold.
pub fn unique_name(rng: &mut impl Rng, taken: impl Fn(&str) -> bool) -> String {
    let draw = |rng: &mut dyn rand::RngCore| format!("{} {}", ADJECTIVES[rng.random_range(0..ADJECTIVES.len())], ANIMALS[rng.random_range(0..ANIMALS.len())]);
    for _ in 0..DRAWS {
        let name = draw(rng);
        if !taken(&name) {
            return name;
        }
    }
    // A crowded room: number the name. At most `users` numbers are taken,
    // so this ends within `users + 2` steps.
    let base = draw(rng);
    (2u64..).map(|n| format!("{base} {n}")).find(|name| !taken(name)).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn words_are_distinct_single_words() {
        for list in [&ADJECTIVES[..], &ANIMALS[..]] {
            let set: HashSet<_> = list.iter().collect();
            assert_eq!(set.len(), list.len());
            assert!(list.iter().all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic())));
        }
    }

    #[test]
    fn names_never_repeat_even_when_most_are_taken() {
        let mut rng = rand::rng();
        let mut taken = HashSet::new();
        // More users than there are two-word combinations.
        for _ in 0..(ADJECTIVES.len() * ANIMALS.len() + 500) {
            let name = unique_name(&mut rng, |n| taken.contains(n));
            assert!(taken.insert(name));
        }
    }

    #[test]
    fn a_name_is_two_capitalised_words() {
        let name = unique_name(&mut rand::rng(), |_| false);
        let words: Vec<&str> = name.split(' ').collect();
        assert_eq!(words.len(), 2, "{name}");
        assert!(ADJECTIVES.contains(&words[0]) && ANIMALS.contains(&words[1]));
    }
}
