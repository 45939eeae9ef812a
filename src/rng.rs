//! Seeded random streams. Every random quantity of a run comes from a named stream derived from the run's
//! seed, so streams are independent of each other and of how many runs execute in parallel.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use sha2::{Digest, Sha256};

/// The generator behind every stream: fast, small state, and stable across rand releases.
pub type StreamRng = Xoshiro256PlusPlus;

/// The stream `name` of run seed `seed`.
///
/// ```
/// use rand::Rng;
/// let a: u64 = eigenssl::rng::stream(3, "init").random();
/// let b: u64 = eigenssl::rng::stream(3, "init").random();
/// let c: u64 = eigenssl::rng::stream(3, "data").random();
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// ```
pub fn stream(seed: u64, name: &str) -> StreamRng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    StreamRng::from_seed(digest)
}
