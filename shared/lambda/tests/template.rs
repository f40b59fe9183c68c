//! The SAM template routes every mounted path to a function that serves it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use cloud_images_http::routes;

fn template() -> String {
    std::fs::read_to_string(format!(
        "{}/../../infra/template.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// `RouteKey: ANY <path>` → the integration it targets (`<Group>Integration`), the path
/// spelt as the router spells it: API Gateway's greedy `{name+}` is axum's `{*name}`.
fn routed(template: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = template.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter_map(|pair| {
            let path = pair[0].strip_prefix("RouteKey: ANY ")?;
            let target = pair[1].strip_prefix("Target: !Sub integrations/${")?;
            let path = match path.strip_suffix("+}").and_then(|p| p.rsplit_once('{')) {
                Some((head, name)) => format!("{head}{{*{name}}}"),
                None => path.to_owned(),
            };
            Some((path, target.trim_end_matches('}').to_owned()))
        })
        .collect()
}

#[test]
fn every_mounted_path_has_exactly_one_route_in_the_template() {
    let routed = routed(&template());
    let mounted: BTreeSet<String> = routes::mounted_paths()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let in_template: BTreeSet<String> = routed.keys().cloned().collect();
    assert_eq!(in_template, mounted);
}

#[test]
fn each_route_goes_to_the_function_of_its_route_group() {
    let routed = routed(&template());
    let groups = [
        (
            "DiscoveryIntegration",
            routes::paths(routes::discovery::table()),
        ),
        (
            "IdentityIntegration",
            routes::paths(routes::identity::table()),
        ),
        ("ImagesIntegration", routes::paths(routes::images::table())),
        (
            "ImageDataIntegration",
            routes::paths(routes::image_data::table()),
        ),
        (
            "ImageDataIntegration",
            routes::paths(routes::staging::table()),
        ),
        (
            "MembersIntegration",
            routes::paths(routes::members::table()),
        ),
        ("TasksIntegration", routes::paths(routes::tasks::table())),
        ("TasksIntegration", routes::paths(routes::imports::table())),
        (
            "ObjectsIntegration",
            routes::paths(routes::objects::table()),
        ),
        (
            "MetadefsIntegration",
            routes::paths(routes::metadefs::table()),
        ),
    ];
    for (integration, paths) in groups {
        for path in paths {
            assert_eq!(
                routed.get(path).map(String::as_str),
                Some(integration),
                "{path}"
            );
        }
    }
}

#[test]
fn every_function_in_the_template_is_a_binary_of_this_workspace() {
    let template = template();
    let binaries: Vec<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Binary: "))
        .collect();
    assert_eq!(binaries.len(), 11);
    for binary in binaries {
        let main = format!(
            "{}/../../functions/{binary}/src/main.rs",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(std::path::Path::new(&main).exists(), "{main}");
    }
}

#[test]
fn unrouted_paths_reach_the_discovery_function_for_the_services_json_404() {
    let template = template();
    let lines: Vec<&str> = template.lines().map(str::trim).collect();
    let target = lines
        .windows(2)
        .find(|pair| pair[0] == "RouteKey: $default")
        .map(|pair| pair[1]);
    assert_eq!(
        target,
        Some("Target: !Sub integrations/${DiscoveryIntegration}")
    );
}
