//! Images: identifiers, enumerations, the entity and its lifecycle.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::identity::TenantId;

/// Identifies an image: a UUID, written in its hyphenated lowercase form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(uuid::Uuid);

impl ImageId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses a caller-supplied id; anything but a UUID is `Invalid`.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| DomainError::Invalid(format!("'{raw}' is not a valid image id (a UUID)")))
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Declares a closed set of lowercase names with parsing and display.
macro_rules! name_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The API spellings of every value, comma separated, for error messages.
            pub fn allowed() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::DomainError;
            fn from_str(s: &str) -> $crate::error::DomainResult<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::error::DomainError::Invalid(format!(
                        "'{other}' is not a valid {}; allowed: {}", $what, Self::allowed()
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use name_enum;

name_enum!(
    /// Where an image is in its lifecycle.
    ImageStatus, "status" {
        /// A record without data.
        Queued => "queued",
        /// Data is arriving.
        Saving => "saving",
        /// Usable.
        Active => "active",
        /// An upload failed and left the data unusable.
        Killed => "killed",
        /// Removed.
        Deleted => "deleted",
        /// Data is arriving through the import flow.
        Uploading => "uploading",
        /// Being imported.
        Importing => "importing",
        /// Awaiting delayed deletion.
        PendingDelete => "pending_delete",
        /// Usable as metadata, data download refused to non-admins.
        Deactivated => "deactivated",
    }
);

name_enum!(
    /// Who may see and use an image.
    Visibility, "visibility" {
        /// Everyone, listed for everyone; setting it needs admin.
        Public => "public",
        /// The owner only.
        Private => "private",
        /// The owner and the tenants it was shared with.
        Shared => "shared",
        /// Everyone may use it; listed only when asked for.
        Community => "community",
    }
);

name_enum!(
    /// The algorithm of `os_hash_value`.
    HashAlgo, "hash algorithm" {
        /// SHA-256.
        Sha256 => "sha256",
        /// SHA-384.
        Sha384 => "sha384",
        /// SHA-512, Glance's default.
        Sha512 => "sha512",
    }
);

// name_enum! owns the derive list, so the default is written out.
#[allow(clippy::derivable_impls)]
impl Default for HashAlgo {
    fn default() -> Self {
        Self::Sha512
    }
}

name_enum!(
    /// The format of the disk image's bytes.
    DiskFormat, "disk_format" {
        /// Amazon kernel-less machine image.
        Ami => "ami",
        /// Amazon ramdisk.
        Ari => "ari",
        /// Amazon kernel.
        Aki => "aki",
        /// Virtual Hard Disk.
        Vhd => "vhd",
        /// Hyper-V's VHDX.
        Vhdx => "vhdx",
        /// VMware disk.
        Vmdk => "vmdk",
        /// Raw bytes.
        Raw => "raw",
        /// QEMU copy-on-write v2/v3.
        Qcow2 => "qcow2",
        /// VirtualBox disk.
        Vdi => "vdi",
        /// ISO 9660 optical disc.
        Iso => "iso",
        /// Virtuozzo ploop.
        Ploop => "ploop",
    }
);

name_enum!(
    /// The envelope around the disk image.
    ContainerFormat, "container_format" {
        /// Amazon machine image.
        Ami => "ami",
        /// Amazon ramdisk.
        Ari => "ari",
        /// Amazon kernel.
        Aki => "aki",
        /// No container.
        Bare => "bare",
        /// Open Virtualization Format.
        Ovf => "ovf",
        /// OVF archive.
        Ova => "ova",
        /// Docker tarball.
        Docker => "docker",
        /// Compressed archive.
        Compressed => "compressed",
    }
);

/// An image record. Field names follow the Images v2 API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Identifier.
    pub id: ImageId,
    /// Display name.
    pub name: Option<String>,
    /// Lifecycle status.
    pub status: ImageStatus,
    /// Who may see it.
    pub visibility: Visibility,
    /// Refuses deletion while true.
    pub protected: bool,
    /// Left out of default lists while true.
    pub os_hidden: bool,
    /// Owning tenant (any string an admin set; normally a tenant id).
    pub owner: Option<TenantId>,
    /// MD5 of the data, hex.
    pub checksum: Option<String>,
    /// Algorithm of `os_hash_value`.
    pub os_hash_algo: Option<String>,
    /// Multihash of the data, hex.
    pub os_hash_value: Option<String>,
    /// Size of the data in bytes.
    pub size: Option<u64>,
    /// Size of the virtual disk in bytes, when the format declares it.
    pub virtual_size: Option<u64>,
    /// Container format.
    pub container_format: Option<ContainerFormat>,
    /// Disk format.
    pub disk_format: Option<DiskFormat>,
    /// RAM needed to boot, MB.
    pub min_ram: u64,
    /// Disk needed to boot, GB.
    pub min_disk: u64,
    /// Tags, unique, in the order first given.
    pub tags: Vec<String>,
    /// Additional properties.
    pub properties: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every stored change; the compare-and-set token.
    pub version: u64,
}

impl Image {
    /// A new image record without data, as a create request starts it.
    pub fn new_queued(id: ImageId, owner: Option<TenantId>, at: DateTime<Utc>) -> Self {
        Self {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            owner,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            size: None,
            virtual_size: None,
            container_format: None,
            disk_format: None,
            min_ram: 0,
            min_disk: 0,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    /// Whether `tenant` owns the image.
    pub fn is_owned_by(&self, tenant: &str) -> bool {
        self.owner.as_deref() == Some(tenant)
    }
}
