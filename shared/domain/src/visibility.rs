//! Who sees an image: the one rule behind showing, using and listing images. The service
//! applies [`sees`] to single images; each store's list query is a translation of
//! [`listed`], and a contract test (testkit) checks every store's lists against it on
//! generated images, tenants and memberships.

use crate::image::{Image, Visibility};
use crate::listing::{ListQuery, MemberStatusFilter, VisibilityFilter};
use crate::member::MemberStatus;
use crate::ports::Viewer;

/// Whether `viewer` may see (show, download, use) `image`, given its membership of it if it
/// has one: administrators and owners always; everyone for public and community images;
/// members of a shared image whatever their status (a member may use an image before
/// accepting it).
pub fn sees(viewer: &Viewer, image: &Image, membership: Option<MemberStatus>) -> bool {
    viewer.is_admin
        || image.is_owned_by(&viewer.tenant)
        || matches!(image.visibility, Visibility::Public | Visibility::Community)
        || (image.visibility == Visibility::Shared && membership.is_some())
}

/// Whether `image` belongs in `viewer`'s list under the query's visibility scope (the other
/// filters aside: see [`crate::listing::matches`]).
///
/// - default: own images (any visibility), public ones, and shared ones whose membership
///   has the asked `member_status` (accepted by default), as Glance unions them;
/// - `visibility=all`: the default and every community image;
/// - `visibility=public|community`: every image of that visibility;
/// - `visibility=shared`: own shared images and those shared with the viewer whose
///   membership has the asked `member_status` (accepted by default);
/// - `visibility=private`: own private images;
/// - administrators: every image, of the asked visibility if one is asked.
pub fn listed(
    viewer: &Viewer,
    query: &ListQuery,
    image: &Image,
    membership: Option<MemberStatus>,
) -> bool {
    let own = image.is_owned_by(&viewer.tenant);
    let offered = image.visibility == Visibility::Shared
        && membership.is_some_and(|status| member_status_wanted(query.member_status, status));
    if viewer.is_admin {
        return match query.visibility {
            VisibilityFilter::Only(v) => image.visibility == v,
            VisibilityFilter::Default | VisibilityFilter::All => true,
        };
    }
    match query.visibility {
        VisibilityFilter::Default => own || image.visibility == Visibility::Public || offered,
        VisibilityFilter::All => {
            own || matches!(image.visibility, Visibility::Public | Visibility::Community) || offered
        }
        VisibilityFilter::Only(v @ (Visibility::Public | Visibility::Community)) => {
            image.visibility == v
        }
        VisibilityFilter::Only(Visibility::Shared) => {
            image.visibility == Visibility::Shared && (own || offered)
        }
        VisibilityFilter::Only(Visibility::Private) => {
            own && image.visibility == Visibility::Private
        }
    }
}

fn member_status_wanted(filter: MemberStatusFilter, status: MemberStatus) -> bool {
    match filter {
        MemberStatusFilter::All => true,
        MemberStatusFilter::Accepted => status == MemberStatus::Accepted,
        MemberStatusFilter::Pending => status == MemberStatus::Pending,
        MemberStatusFilter::Rejected => status == MemberStatus::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageId;
    use crate::listing::{PageLimits, parse_list_query};

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut image = Image::new_queued(
            ImageId::random(),
            Some(crate::identity::TenantId::from_trusted(owner)),
            chrono::Utc::now(),
        );
        image.visibility = visibility;
        image
    }

    fn viewer(tenant: &str, is_admin: bool) -> Viewer {
        Viewer {
            tenant: crate::identity::TenantId::from_trusted(tenant),
            is_admin,
        }
    }

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        parse_list_query(&pairs, PageLimits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_member_sees_a_shared_image_whatever_its_status_but_lists_it_only_accepted() {
        let shared = image("producer", Visibility::Shared);
        let consumer = viewer("consumer", false);
        for status in [MemberStatus::Pending, MemberStatus::Rejected] {
            assert!(sees(&consumer, &shared, Some(status)));
            assert!(!listed(&consumer, &query(&[]), &shared, Some(status)));
        }
        assert!(listed(
            &consumer,
            &query(&[]),
            &shared,
            Some(MemberStatus::Accepted)
        ));
        assert!(!sees(&consumer, &shared, None));
        let pending = query(&[("visibility", "shared"), ("member_status", "pending")]);
        assert!(listed(
            &consumer,
            &pending,
            &shared,
            Some(MemberStatus::Pending)
        ));
    }

    #[test]
    fn member_status_picks_the_shared_images_of_the_default_and_all_lists_too() {
        let shared = image("producer", Visibility::Shared);
        let consumer = viewer("consumer", false);
        for scope in [None, Some("all")] {
            let asked = |status: &'static str| {
                let mut pairs = vec![("member_status", status)];
                pairs.extend(scope.map(|scope| ("visibility", scope)));
                query(&pairs)
            };
            let listed_as = |query: &ListQuery, status| listed(&consumer, query, &shared, status);
            assert!(listed_as(&asked("pending"), Some(MemberStatus::Pending)));
            assert!(!listed_as(&asked("pending"), Some(MemberStatus::Accepted)));
            assert!(listed_as(&asked("rejected"), Some(MemberStatus::Rejected)));
            for status in [
                MemberStatus::Pending,
                MemberStatus::Accepted,
                MemberStatus::Rejected,
            ] {
                assert!(
                    listed_as(&asked("all"), Some(status)),
                    "{status:?} under all"
                );
            }
            assert!(!listed_as(&asked("all"), None), "no membership, no listing");
        }
    }

    #[test]
    fn community_images_are_seen_by_all_but_listed_only_when_asked() {
        let community = image("producer", Visibility::Community);
        let stranger = viewer("stranger", false);
        assert!(sees(&stranger, &community, None));
        assert!(!listed(&stranger, &query(&[]), &community, None));
        assert!(listed(
            &stranger,
            &query(&[("visibility", "all")]),
            &community,
            None
        ));
        assert!(listed(
            &stranger,
            &query(&[("visibility", "community")]),
            &community,
            None
        ));
        assert!(
            listed(&viewer("producer", false), &query(&[]), &community, None),
            "its owner"
        );
    }

    #[test]
    fn private_images_are_the_owners_and_the_admins_alone() {
        let private = image("producer", Visibility::Private);
        assert!(!sees(&viewer("stranger", false), &private, None));
        assert!(!sees(
            &viewer("stranger", false),
            &private,
            Some(MemberStatus::Accepted)
        ));
        assert!(sees(&viewer("anyone", true), &private, None));
        assert!(listed(&viewer("anyone", true), &query(&[]), &private, None));
        assert!(!listed(
            &viewer("anyone", true),
            &query(&[("visibility", "public")]),
            &private,
            None
        ));
    }
}
