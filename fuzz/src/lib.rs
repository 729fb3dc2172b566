//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! The layers under test are tower services whose futures complete without
//! I/O when their inner service does, so a target polls them once with a
//! no-op waker instead of running an async runtime per input.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

/// The output of a future that must complete on its first poll. A future
/// that stays pending is a harness bug (or a layer waiting on I/O that the
/// target did not expect), so it fails the input loudly.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("future did not complete without I/O"),
    }
}

/// Splits `data` at the first `sep`: (before, after). Without one, all of
/// `data` and an empty tail.
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A tiny deterministic generator (xorshift64*) for choices derived from an
/// input's bytes, such as where to split a stream into chunks. The same
/// input always gives the same choices, so crashes reproduce.
#[derive(Debug, Clone)]
pub struct Choices(u64);

impl Choices {
    /// Seeded from `seed`; an all-zero seed still yields a sequence.
    pub fn new(seed: &[u8]) -> Self {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for &b in seed {
            state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        Choices(state | 1)
    }

    /// The next value in `1..=max` (`max` at least 1).
    pub fn next_in(&mut self, max: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // `max` is small (a chunk length); the modulo bias does not matter.
        (r % max.max(1) as u64) as usize + 1
    }
}
