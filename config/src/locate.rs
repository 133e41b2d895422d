//! Maps a [`FieldPath`] to its line and column in a YAML document.
//!
//! The document is parsed again with a probe that walks down the path and fails on purpose at
//! the target node; the YAML deserializer attaches the node's position to that error. This
//! reuses the real parser (anchors, flow style and quoting all work) and costs one parse per
//! located finding, which only happens for findings.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::path::{FieldPath, Segment};

const MARKER: &str = "\u{1}weft-locate-marker";

/// The 1-based (line, column) of `path` in `text` (a single YAML document), or of its nearest
/// ancestor that exists. A path ending in a key points at the key, one ending in an index at
/// the element. `None` only when the document does not parse.
pub(crate) fn locate(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let segments = path.segments();
    for depth in (0..=segments.len()).rev() {
        if let Some(position) = probe(text, &segments[..depth]) {
            return Some(position);
        }
    }
    None
}

fn probe(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match (Probe { path }).deserialize(deserializer) {
        Ok(()) => None,
        Err(error) if error.to_string().contains(MARKER) => error
            .location()
            .map(|location| (location.line(), location.column())),
        Err(_) => None,
    }
}

struct Probe<'p> {
    path: &'p [Segment],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn found<E: de::Error>() -> E {
    E::custom(MARKER)
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(found());
        };
        let Segment::Key(wanted) = first else {
            return Ok(());
        };
        let seed = KeySeed {
            wanted,
            raise: rest.is_empty(),
        };
        while let Some(matched) = map.next_key_seed(seed)? {
            if matched {
                return map.next_value_seed(Probe { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(found());
        };
        let Segment::Index(wanted) = first else {
            return Ok(());
        };
        let mut index = 0;
        loop {
            if index == *wanted {
                return match seq.next_element_seed(Probe { path: rest })? {
                    Some(()) | None => Ok(()),
                };
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
}

impl Probe<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(found())
        } else {
            Ok(())
        }
    }
}

/// Deserializes a mapping key and says whether it is the wanted one; when it is and `raise` is
/// set, fails with the marker so the position is the key's.
#[derive(Clone, Copy)]
struct KeySeed<'p> {
    wanted: &'p str,
    raise: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl KeySeed<'_> {
    fn compare<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let matched = key == self.wanted;
        if matched && self.raise {
            Err(found())
        } else {
            Ok(matched)
        }
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        self.compare(key)
    }
    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.compare(&key.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.compare("null")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: v1
kind: VirtualService
spec:
  hosts:
  - a
  - b
  http:
  - name: first
    route:
    - destination: {host: a, subset: v1}
      weight: 10
";

    #[test]
    fn finds_keys_elements_and_ancestors() {
        let spec = FieldPath::root().key("spec");
        let cases = [
            (FieldPath::root(), (1, 1)),
            (spec.clone(), (3, 1)),
            (spec.key("hosts"), (4, 3)),
            (spec.key("hosts").index(1), (6, 5)),
            (spec.key("http").index(0).key("name"), (8, 5)),
            (
                spec.key("http")
                    .index(0)
                    .key("route")
                    .index(0)
                    .key("weight"),
                (11, 7),
            ),
            (
                spec.key("http")
                    .index(0)
                    .key("route")
                    .index(0)
                    .key("destination")
                    .key("subset"),
                (10, 30),
            ),
            // Missing: the nearest ancestor that exists.
            (spec.key("http").index(0).key("timeout"), (8, 5)),
            (spec.key("tcp"), (3, 1)),
        ];
        for (path, expected) in cases {
            assert_eq!(locate(DOC, &path), Some(expected), "{path}");
        }
    }
}
