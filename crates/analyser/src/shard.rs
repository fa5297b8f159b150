//! Which labels this analyser replica judges: a stable hash of the label modulo the shard
//! count, so every replica agrees without talking to the others and a label's entities
//! always stay together (the population check compares them).

use crate::configuration::ShardSettings;

/// 64-bit FNV-1a of the label's UTF-8 bytes: stable across versions and platforms.
pub fn fnv1a(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ShardSettings {
    pub fn owns(&self, label: &str) -> bool {
        self.count <= 1 || fnv1a(label) % u64::from(self.count) == u64::from(self.index)
    }

    /// The shard's name in the cursor table and the pull lock: `index/count`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_label_belongs_to_exactly_one_shard() {
        for label in ["checkout", "visit", "price", "é", "label42"] {
            let owners = (0..3)
                .filter(|&index| ShardSettings { index, count: 3 }.owns(label))
                .count();
            assert_eq!(owners, 1, "{label}");
        }
        assert!(ShardSettings { index: 0, count: 1 }.owns("anything"));
    }
}
