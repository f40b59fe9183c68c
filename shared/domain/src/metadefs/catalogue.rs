//! The stock catalogue: the resource types Glance names and the namespaces describing the
//! properties this service gives meaning to, loaded into an empty store on first start.

use chrono::{DateTime, Utc};

use super::document::namespace_from;
use super::{Contents, Namespace, ResourceType};
use crate::error::DomainResult;

/// The resource types Glance's own catalogue associates namespaces with, so associations
/// by those names find a type (an association naming another type creates it).
pub const STOCK_RESOURCE_TYPES: &[&str] = &[
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Nova::Flavor",
    "OS::Nova::Aggregate",
    "OS::Nova::Server",
    "OS::Trove::Instance",
];

/// The owner of the stock namespaces, as Glance's loader names it.
pub const STOCK_OWNER: &str = "admin";

const STOCK_NAMESPACES: &[&str] = &[
    include_str!("catalogue/operating-system.json"),
    include_str!("catalogue/boot-requirements.json"),
    include_str!("catalogue/libvirt-image.json"),
];

/// What the catalogue holds: resource types and whole namespaces.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Resource types.
    pub resource_types: Vec<ResourceType>,
    /// Namespaces with their contents.
    pub namespaces: Vec<(Namespace, Contents)>,
}

/// The stock catalogue as of `at`.
pub fn stock_catalogue(at: DateTime<Utc>) -> DomainResult<Catalogue> {
    let mut namespaces = Vec::new();
    for text in STOCK_NAMESPACES {
        let value = serde_json::from_str(text).map_err(|e| {
            crate::error::DomainError::Invalid(format!("stock metadefs catalogue: {e}"))
        })?;
        let (header, associations, contents) = namespace_from(value, true, at)?;
        let mut namespace = header.create(STOCK_OWNER, at);
        namespace.resource_type_associations = associations;
        namespaces.push((namespace, contents));
    }
    let resource_types = STOCK_RESOURCE_TYPES
        .iter()
        .map(|name| ResourceType {
            name: (*name).to_owned(),
            created_at: at,
            updated_at: at,
        })
        .collect();
    Ok(Catalogue {
        resource_types,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_rules::OS_DISTROS;

    #[test]
    fn the_stock_catalogue_parses_and_names_only_stock_resource_types() {
        let catalogue = stock_catalogue(Utc::now()).expect("the stock catalogue parses");
        assert_eq!(catalogue.namespaces.len(), STOCK_NAMESPACES.len());
        for (namespace, _) in &catalogue.namespaces {
            for association in &namespace.resource_type_associations {
                assert!(STOCK_RESOURCE_TYPES.contains(&association.name.as_str()));
            }
        }
    }

    #[test]
    fn the_stock_os_distro_enum_is_the_one_images_are_checked_against() {
        let catalogue = stock_catalogue(Utc::now()).expect("the stock catalogue parses");
        let (_, contents) = catalogue
            .namespaces
            .iter()
            .find(|(n, _)| n.namespace == "OS::OperatingSystem")
            .expect("the operating system namespace is stock");
        let allowed = contents.properties["os_distro"]
            .definition
            .allowed
            .clone()
            .expect("os_distro has an enum");
        let allowed: Vec<&str> = allowed.iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(allowed, OS_DISTROS);
    }
}
