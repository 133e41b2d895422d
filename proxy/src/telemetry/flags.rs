//! Envoy's response flags as a bit set, rendered the way Envoy joins them (`UF,URX`) into the
//! `response_flags` label. Rendering never allocates on the request path: each combination is
//! formatted once and kept.

use std::sync::OnceLock;

/// A set of Envoy response flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseFlags(u16);

/// Flags in Envoy's rendering order (`ResponseFlagUtils::ALL_RESPONSE_STRINGS_FLAGS`).
const NAMES: [&str; 12] = [
    "UH", "UT", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "DC", "URX", "NC",
];

impl ResponseFlags {
    /// No healthy upstream.
    pub const UH: ResponseFlags = ResponseFlags(1);
    /// Upstream request timeout.
    pub const UT: ResponseFlags = ResponseFlags(1 << 1);
    /// Upstream remote reset.
    pub const UR: ResponseFlags = ResponseFlags(1 << 2);
    /// Upstream connection failure.
    pub const UF: ResponseFlags = ResponseFlags(1 << 3);
    /// Upstream connection termination.
    pub const UC: ResponseFlags = ResponseFlags(1 << 4);
    /// Upstream overflow (circuit breaking).
    pub const UO: ResponseFlags = ResponseFlags(1 << 5);
    /// No route.
    pub const NR: ResponseFlags = ResponseFlags(1 << 6);
    /// Delay injected.
    pub const DI: ResponseFlags = ResponseFlags(1 << 7);
    /// Fault (abort) injected.
    pub const FI: ResponseFlags = ResponseFlags(1 << 8);
    /// Downstream connection termination.
    pub const DC: ResponseFlags = ResponseFlags(1 << 9);
    /// Upstream retry limit exceeded.
    pub const URX: ResponseFlags = ResponseFlags(1 << 10);
    /// No cluster found.
    pub const NC: ResponseFlags = ResponseFlags(1 << 11);

    pub const NONE: ResponseFlags = ResponseFlags(0);

    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The label value: `-` when empty, else the flags joined by commas.
    pub fn as_str(self) -> &'static str {
        static RENDERED: OnceLock<Vec<OnceLock<&'static str>>> = OnceLock::new();
        let table =
            RENDERED.get_or_init(|| (0..1 << NAMES.len()).map(|_| OnceLock::new()).collect());
        let Some(slot) = table.get(usize::from(self.0)) else {
            return "-";
        };
        slot.get_or_init(|| {
            if self.0 == 0 {
                return "-";
            }
            let joined = NAMES
                .iter()
                .enumerate()
                .filter(|(bit, _)| self.0 & (1 << bit) != 0)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(",");
            Box::leak(joined.into_boxed_str())
        })
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = ResponseFlags;
    fn bitor(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, other: ResponseFlags) {
        self.0 |= other.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_envoy_order() {
        assert_eq!(ResponseFlags::NONE.as_str(), "-");
        assert_eq!(ResponseFlags::URX.as_str(), "URX");
        assert_eq!((ResponseFlags::URX | ResponseFlags::UF).as_str(), "UF,URX");
        assert_eq!((ResponseFlags::FI | ResponseFlags::DI).as_str(), "DI,FI");
        let flags = ResponseFlags::UO;
        assert!(std::ptr::eq(flags.as_str(), flags.as_str()));
    }
}
