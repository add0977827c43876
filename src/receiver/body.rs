//! The bounded parse of a body: the item and token limits applied while parsing.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The two members of a collection the receiver reads, parsed with the item and token limits
/// applied while parsing. The items are the body's own bytes, checked to be JSON but not parsed
/// into a tree: each is typed later, on its own (in parallel for a large body).
pub(super) struct RawCollection<'a> {
    pub(super) value: Option<Vec<&'a RawValue>>,
    pub(super) validation_tokens: Option<Value>,
}

/// Parses a body as a collection, counting `value` elements and tokens as they arrive: past a
/// limit the parse stops at once with [`Error::TooMany`].
pub(super) fn parse_collection(
    body: &[u8],
    max_items: usize,
    max_tokens: usize,
) -> Result<RawCollection<'_>> {
    let exceeded = std::cell::Cell::new(None);
    let seed = CollectionSeed {
        max_items,
        max_tokens,
        exceeded: &exceeded,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = seed.deserialize(&mut de).and_then(|c| de.end().map(|()| c));
    match (parsed, exceeded.get()) {
        (_, Some((what, limit))) => Err(Error::TooMany { what, limit }),
        (Ok(c), None) => Ok(c),
        (Err(e), None) if e.is_data() && e.to_string().starts_with(NOT_AN_ARRAY) => {
            Err(Error::malformed("value", "not an array"))
        }
        (Err(e), None) => Err(crate::model::BodyShape::not_a_collection(body, Some(&e))),
    }
}

#[derive(Clone, Copy)]
pub(super) struct CollectionSeed<'a> {
    max_items: usize,
    max_tokens: usize,
    exceeded: &'a std::cell::Cell<Option<(&'static str, usize)>>,
}

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_> {
    type Value = RawCollection<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<RawCollection<'de>, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = RawCollection<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with `value` (a changeNotificationCollection)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCollection<'de>, A::Error> {
        let mut out = RawCollection {
            value: None,
            validation_tokens: None,
        };
        let (mut seen_value, mut seen_tokens) = (false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "value" => {
                    if std::mem::replace(&mut seen_value, true) {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    out.value = map.next_value_seed(Counted {
                        what: "items",
                        limit: self.max_items,
                        exceeded: self.exceeded,
                        lenient: None,
                        element: std::marker::PhantomData,
                    })?;
                }
                "validationTokens" => {
                    if std::mem::replace(&mut seen_tokens, true) {
                        return Err(de::Error::duplicate_field("validationTokens"));
                    }
                    // `null` is kept as such: Graph sends it when it cannot issue tokens
                    // (SPEC §9), and the rejection says why.
                    out.validation_tokens = Some(
                        map.next_value_seed(Counted {
                            what: "validation tokens",
                            limit: self.max_tokens,
                            exceeded: self.exceeded,
                            lenient: Some(|value| value),
                            element: std::marker::PhantomData,
                        })?
                        .map_or(Value::Null, Value::Array),
                    );
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `null` or an array of at most `limit` JSON values, each a `T`. Anything else is an error,
/// or, when `lenient`, a list of that one value (a `validationTokens` that is not an array counts
/// as one malformed token, which fails validation like any other).
pub(super) struct Counted<'a, T> {
    what: &'static str,
    limit: usize,
    exceeded: &'a std::cell::Cell<Option<(&'static str, usize)>>,
    lenient: Option<fn(Value) -> T>,
    element: std::marker::PhantomData<T>,
}

impl<T> Counted<'_, T> {
    fn other<E: de::Error>(self, value: Value) -> Result<Option<Vec<T>>, E> {
        match self.lenient {
            Some(element) => Ok(Some(vec![element(value)])),
            None => Err(E::custom(NOT_AN_ARRAY)),
        }
    }
}

pub(super) const NOT_AN_ARRAY: &str = "value: not an array";

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Counted<'_, T> {
    type Value = Option<Vec<T>>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Counted<'_, T> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {}", self.what)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(value) = seq.next_element::<T>()? {
            if out.len() >= self.limit {
                self.exceeded.set(Some((self.what, self.limit)));
                return Err(de::Error::custom("too many elements"));
            }
            out.push(value);
        }
        Ok(Some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.other(value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.other(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }
}
