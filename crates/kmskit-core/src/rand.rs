//! Random bytes from the operating system, through `rand_core`'s `OsRng`.

use rand_core::{OsRng, RngCore};

/// Fills `buf` from the OS RNG.
///
/// # Panics
/// Only if the operating system cannot supply randomness at all, which no key service can survive.
pub fn fill(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    OsRng
        .try_fill_bytes(buf)
        .expect("the operating system random number generator failed");
}

/// Returns `N` random bytes from the OS RNG.
pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}
