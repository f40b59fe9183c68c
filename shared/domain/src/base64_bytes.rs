//! Bytes as one base64 string in serde formats (`#[serde(with = "base64_bytes")]`): a third
//! larger, where a JSON array of numbers is up to four times. Resume points carry hash
//! states and the inspector's sample this way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the bytes as base64.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

/// Reads base64 back into bytes whose capacity is their length (the inspector's memory
/// bound counts capacity; the decoder over-allocates a little).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    let mut bytes = STANDARD
        .decode(text.as_bytes())
        .map_err(serde::de::Error::custom)?;
    bytes.shrink_to_fit();
    Ok(bytes)
}
