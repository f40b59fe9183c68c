//! A property definition: the JSON-Schema subset Glance's metadefs describe a property with.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};

crate::image::name_enum!(
    /// The JSON type a property's values have.
    PropertyType, "property type" {
        /// A list.
        Array => "array",
        /// true or false.
        Boolean => "boolean",
        /// A whole number.
        Integer => "integer",
        /// Any number.
        Number => "number",
        /// A JSON object.
        Object => "object",
        /// Text.
        String => "string",
    }
);

/// What an array property's items are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Items {
    /// The items' type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub item_type: Option<PropertyType>,
    /// The values an item may take.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

/// One property's definition, without its name (the key it is kept under).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Property {
    /// A name for people.
    pub title: String,
    /// The values' JSON type.
    #[serde(rename = "type")]
    pub value_type: PropertyType,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How a scheduler may compare it (`<or>`, `<in>`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operators: Option<Vec<String>>,
    /// Names of required sub-properties (for object values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Vec<String>>,
    /// Smallest number allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<serde_json::Number>,
    /// Largest number allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<serde_json::Number>,
    /// Longest text allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Shortest text allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// A regular expression texts match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The values allowed.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Whether resources may not change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    /// The value when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// An array's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
    /// Most items allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// Fewest items allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    /// Whether items must differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_items: Option<bool>,
    /// Whether items beyond those described are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_items: Option<bool>,
}

impl Property {
    /// A definition from its JSON form (without `name`): every field of the right type, no
    /// field Glance does not define, and bounds that can be met.
    pub fn from_json(value: Value) -> DomainResult<Self> {
        // (serde would also read a struct from a JSON array, by position.)
        let Value::Object(map) = &value else {
            return Err(DomainError::Invalid(
                "A property definition must be a JSON object".into(),
            ));
        };
        super::document::refuse_nulls(map)?;
        match map.get("items") {
            None | Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(DomainError::Invalid(
                    "A property's 'items' must be a JSON object".into(),
                ));
            }
        }
        if let Some(Value::Object(items)) = map.get("items") {
            super::document::refuse_nulls(items)?;
        }
        let property: Property = serde_json::from_value(value)
            .map_err(|e| DomainError::Invalid(format!("Invalid property definition: {e}")))?;
        property.check()?;
        Ok(property)
    }

    fn check(&self) -> DomainResult<()> {
        let crossed = |low: Option<f64>, high: Option<f64>| matches!((low, high), (Some(l), Some(h)) if l > h);
        let number =
            |n: &Option<serde_json::Number>| n.as_ref().and_then(serde_json::Number::as_f64);
        let count = |n: Option<u64>| n.map(|n| n as f64);
        if crossed(number(&self.minimum), number(&self.maximum))
            || crossed(count(self.min_length), count(self.max_length))
            || crossed(count(self.min_items), count(self.max_items))
        {
            return Err(DomainError::Invalid(
                "Invalid property definition: a minimum is above its maximum".into(),
            ));
        }
        if self.title.is_empty() {
            return Err(DomainError::Invalid(
                "Invalid property definition: the title may not be empty".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_keeps_the_json_schema_spelling() {
        let raw = json!({
            "title": "Cores", "type": "integer", "minimum": 1, "maxLength": 4,
            "enum": [1, 2], "items": {"type": "string"}, "uniqueItems": true
        });
        let property = Property::from_json(raw.clone()).unwrap();
        assert_eq!(property.value_type, PropertyType::Integer);
        assert_eq!(serde_json::to_value(&property).unwrap(), raw);
    }

    #[test]
    fn unknown_fields_wrong_types_and_crossed_bounds_are_refused() {
        for bad in [
            json!({"title": "T", "type": "string", "colour": "red"}),
            json!({"title": "T", "type": "text"}),
            json!({"title": "T"}),
            json!({"type": "string"}),
            json!({"title": "T", "type": "integer", "minimum": 5, "maximum": 1}),
            json!({"title": "T", "type": "string", "minLength": 5, "maxLength": 1}),
            json!({"title": "T", "type": "string", "maxLength": -1}),
            json!({"title": "T", "type": "string", "uniqueItems": null}),
            json!({"title": "T", "type": "array", "items": {"type": null}}),
            json!({"title": "T", "type": "array", "items": [null, null]}),
            json!(["T", "string"]),
        ] {
            assert!(
                matches!(
                    Property::from_json(bad.clone()),
                    Err(DomainError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
