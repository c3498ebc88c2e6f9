//! The split made when the data does not say which images validate and test. An image's place
//! follows from SHA-256 over the seed and its path alone: no random-number stream whose values
//! could change with a crate's version, so a seed names the same files on every machine and in
//! every release.

use sha2::{Digest, Sha256};

/// One of a dataset's splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    /// Every split, in the order they are listed.
    pub const ALL: [Part; 3] = [Part::Train, Part::Val, Part::Test];

    /// The name a manifest's split column holds.
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }

    /// The split a manifest cell names, `None` for any other text.
    pub fn parse(text: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.name() == text)
    }
}

/// `[dataset.split]`: the fractions of images for val and test, and the seed choosing them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractions {
    pub val: f64,
    pub test: f64,
    pub seed: u64,
    /// The fractions within each class rather than over all images.
    pub stratify: bool,
}

/// The split of each item, given as (path as written, class index). In each class (or over
/// all items when not stratified) the items are ordered by SHA-256(seed ‖ path); the first
/// round(n·test) go to test, the next round(n·val) to val, the rest to train.
pub fn assign(items: &[(&str, usize)], fractions: &Fractions) -> Vec<Part> {
    let order_key = |path: &str| {
        let mut h = Sha256::new();
        h.update(fractions.seed.to_le_bytes());
        h.update(path.as_bytes());
        h.finalize()
    };
    let keys: Vec<_> = items.iter().map(|(path, _)| order_key(path)).collect();
    let group_of = |i: usize| if fractions.stratify { items[i].1 } else { 0 };
    let groups = items.iter().map(|(_, c)| c + 1).max().unwrap_or(0);
    let mut parts = vec![Part::Train; items.len()];
    for group in 0..groups {
        let mut members: Vec<usize> = (0..items.len()).filter(|&i| group_of(i) == group).collect();
        members.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(items[a].0.cmp(items[b].0)));
        let n = members.len() as f64;
        let n_test = ((n * fractions.test).round() as usize).min(members.len());
        let n_val = ((n * fractions.val).round() as usize).min(members.len() - n_test);
        for (rank, &i) in members.iter().enumerate() {
            parts[i] = if rank < n_test {
                Part::Test
            } else if rank < n_test + n_val {
                Part::Val
            } else {
                Part::Train
            };
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(per_class: &[usize]) -> Vec<(String, usize)> {
        per_class
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| (0..n).map(move |i| (format!("c{c}/img_{i:04}.png"), c)))
            .collect()
    }

    fn split(items: &[(String, usize)], f: &Fractions) -> Vec<Part> {
        let refs: Vec<(&str, usize)> = items.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        assign(&refs, f)
    }

    const F: Fractions = Fractions {
        val: 0.2,
        test: 0.1,
        seed: 0,
        stratify: true,
    };

    #[test]
    fn stratified_counts_are_within_one_image_of_the_fractions() {
        let all = items(&[101, 37, 8]);
        let parts = split(&all, &F);
        for (class, n) in [(0, 101.0), (1, 37.0), (2, 8.0)] {
            let count = |p| {
                all.iter()
                    .zip(&parts)
                    .filter(|((_, c), q)| *c == class && **q == p)
                    .count() as f64
            };
            assert!((count(Part::Val) - n * 0.2).abs() <= 1.0, "class {class}");
            assert!((count(Part::Test) - n * 0.1).abs() <= 1.0, "class {class}");
        }
    }

    #[test]
    fn the_seed_alone_decides_and_another_seed_moves_files() {
        let all = items(&[50, 50]);
        assert_eq!(split(&all, &F), split(&all, &F));
        let other = split(&all, &Fractions { seed: 1, ..F });
        assert_ne!(split(&all, &F), other);
        // an item's place does not depend on the order the items come in
        let mut reversed = all.clone();
        reversed.reverse();
        let mut back = split(&reversed, &F);
        back.reverse();
        assert_eq!(back, split(&all, &F));
    }

    #[test]
    fn the_order_is_sha256_of_seed_and_path() {
        // fixed by the hash, not by a generator's stream: this is the same in every version
        let all = items(&[5]);
        let f = Fractions {
            val: 0.4,
            test: 0.0,
            ..F
        };
        let val: Vec<&str> = all
            .iter()
            .zip(split(&all, &f))
            .filter(|(_, p)| *p == Part::Val)
            .map(|((path, _), _)| path.as_str())
            .collect();
        let mut by_hash: Vec<(Vec<u8>, &str)> = all
            .iter()
            .map(|(p, _)| {
                let mut h = Sha256::new();
                h.update(0u64.to_le_bytes());
                h.update(p.as_bytes());
                (h.finalize().to_vec(), p.as_str())
            })
            .collect();
        by_hash.sort();
        let mut expected: Vec<&str> = by_hash[..2].iter().map(|(_, p)| *p).collect();
        expected.sort_unstable();
        let mut val = val;
        val.sort_unstable();
        assert_eq!(val, expected);
    }

    #[test]
    fn unstratified_fractions_count_over_all_images() {
        let all = items(&[90, 10]);
        let parts = split(
            &all,
            &Fractions {
                stratify: false,
                ..F
            },
        );
        assert_eq!(parts.iter().filter(|p| **p == Part::Val).count(), 20);
        assert_eq!(parts.iter().filter(|p| **p == Part::Test).count(), 10);
    }
}
