//! The one place this crate asks the operating system for anything.

/// The operating system's random number generator failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomUnavailable;

impl core::fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the system random number generator is unavailable")
    }
}

impl core::error::Error for RandomUnavailable {}

pub(crate) fn fill(buffer: &mut [u8]) -> Result<(), RandomUnavailable> {
    getrandom::fill(buffer).map_err(|_| RandomUnavailable)
}
