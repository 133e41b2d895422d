//! A small stable hash (FNV-1a, 64 bit) for config versions: the same documents always give
//! the same version, on every platform and Rust release.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(OFFSET)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    /// The hash as 16 lowercase hex digits.
    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut empty = Fnv::default();
        empty.write(b"");
        assert_eq!(empty.hex(), "cbf29ce484222325");
        let mut a = Fnv::default();
        a.write(b"a");
        assert_eq!(a.hex(), "af63dc4c8601ec8c");
    }
}
