//! [`Caps`]: a capability word list (§1.1 "Caps encoding": capability *n* is bit `n % 32`
//! of word `n / 32`).

use serde::{Deserialize, Serialize};

use super::error::WireError;

/// A list of capability words, at most [`Caps::MAX_WORDS`] long (the bound spice-server
/// enforces per kind in `reds_handle_read_link_done`, §1.1).
///
/// Serializes as the list of words. Equality is word-wise: `[0x0b]` and `[0x0b, 0]` differ,
/// as they do on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u32>", into = "Vec<u32>")]
pub struct Caps {
    words: Vec<u32>,
}

impl Caps {
    /// Most words per kind (§1.1).
    pub const MAX_WORDS: usize = 1024;
    /// Highest bit number a [`Caps`] can hold, plus one.
    pub const MAX_BITS: u32 = Self::MAX_WORDS as u32 * 32;

    /// No capability (zero words).
    pub const fn new() -> Self {
        Caps { words: Vec::new() }
    }

    /// One word, e.g. `Caps::single(0x0b)` for the usual client common caps.
    pub fn single(word: u32) -> Self {
        Caps { words: vec![word] }
    }

    /// These words, if there are at most [`Caps::MAX_WORDS`].
    pub fn from_words(words: &[u32]) -> Result<Self, WireError> {
        if words.len() > Self::MAX_WORDS {
            return Err(WireError::TooManyCaps {
                count: words.len() as u64,
                max: Self::MAX_WORDS,
            });
        }
        Ok(Caps {
            words: words.to_vec(),
        })
    }

    /// The smallest word list with exactly these bits set.
    pub fn from_bits(bits: &[u32]) -> Result<Self, WireError> {
        let mut caps = Caps::new();
        for &bit in bits {
            caps.set(bit)?;
        }
        Ok(caps)
    }

    /// The words, in wire order.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there is no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether bit `bit` is set (false past the last word).
    pub fn test(&self, bit: u32) -> bool {
        let word = (bit / 32) as usize;
        self.words
            .get(word)
            .is_some_and(|w| w & (1u32 << (bit % 32)) != 0)
    }

    /// Set bit `bit`, growing the list as needed; fails past [`Caps::MAX_BITS`].
    pub fn set(&mut self, bit: u32) -> Result<(), WireError> {
        if bit >= Self::MAX_BITS {
            return Err(WireError::TooManyCaps {
                count: u64::from(bit / 32) + 1,
                max: Self::MAX_WORDS,
            });
        }
        let word = (bit / 32) as usize;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        if let Some(w) = self.words.get_mut(word) {
            *w |= 1u32 << (bit % 32);
        }
        Ok(())
    }

    /// Clear bit `bit` (the list keeps its length).
    pub fn clear(&mut self, bit: u32) {
        if let Some(w) = self.words.get_mut((bit / 32) as usize) {
            *w &= !(1u32 << (bit % 32));
        }
    }

    /// Append the words little-endian.
    pub(crate) fn write_words(&self, out: &mut Vec<u8>) {
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Read `count` little-endian words from `bytes` (the caller has checked the length and
    /// the bound, so the allocation is at most `bytes.len()`).
    pub(crate) fn read_words(bytes: &[u8]) -> Caps {
        Caps {
            words: bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }
}

impl TryFrom<Vec<u32>> for Caps {
    type Error = WireError;
    fn try_from(words: Vec<u32>) -> Result<Self, WireError> {
        if words.len() > Self::MAX_WORDS {
            return Err(WireError::TooManyCaps {
                count: words.len() as u64,
                max: Self::MAX_WORDS,
            });
        }
        Ok(Caps { words })
    }
}

impl From<Caps> for Vec<u32> {
    fn from(caps: Caps) -> Self {
        caps.words
    }
}
